//! The original, straightforward implementations of the ops (before the fast paths), kept
//! as test oracles: the optimised ops must agree with them value for value and mark for
//! mark on random inputs.

#![allow(dead_code)]

pub mod affine {

    use rolekd_core::plugin::image::Image;

    /// Pillow's `COORD`: truncation, with every negative value mapped to -1.
    #[inline]
    fn coord(v: f64) -> i64 {
        if v < 0.0 {
            -1
        } else {
            v as i64
        }
    }

    /// Pillow's `FIX`: 16.16 fixed point, `floor(v * 65536 + 0.5)`.
    #[inline]
    fn fix(v: f64) -> i32 {
        (v * 65536.0 + 0.5).floor() as i32
    }

    fn check_fixed(a: &[f64; 6], x: f64, y: f64) -> bool {
        (x * a[0] + y * a[1] + a[2]).abs() < 32768.0 && (x * a[3] + y * a[4] + a[5]).abs() < 32768.0
    }

    /// Applies the inverse affine map `a` (Pillow's `data` for `Transform.AFFINE`) with
    /// nearest-neighbour sampling; the output has the input's size.
    pub fn affine_nearest(img: &mut Image, a: &[f64; 6]) {
        let (w, h, c) = (img.width, img.height, img.channels);
        let mut data = vec![0u8; img.data.len()];
        let mut unc = vec![true; w * h];
        {
            let mut put = |x: usize, y: usize, xin: i64, yin: i64| {
                if xin >= 0 && (xin as usize) < w && yin >= 0 && (yin as usize) < h {
                    let (xi, yi) = (xin as usize, yin as usize);
                    let (o, i) = (y * w + x, yi * w + xi);
                    data[o * c..(o + 1) * c].copy_from_slice(&img.data[i * c..(i + 1) * c]);
                    unc[o] = img.uncovered[i];
                }
            };
            if a[1] == 0.0 && a[3] == 0.0 {
                // ImagingScaleAffine: the column table first, then rows.
                let mut xo = a[2] + a[0] * 0.5;
                let mut xin = vec![0i64; w];
                for v in xin.iter_mut() {
                    *v = coord(xo);
                    xo += a[0];
                }
                let mut yo = a[5] + a[4] * 0.5;
                for y in 0..h {
                    let yi = coord(yo);
                    for (x, &xi) in xin.iter().enumerate() {
                        put(x, y, xi, yi);
                    }
                    yo += a[4];
                }
            } else if check_fixed(a, 0.0, 0.0)
                && check_fixed(a, w as f64, h as f64)
                && check_fixed(a, 0.0, h as f64)
                && check_fixed(a, w as f64, 0.0)
            {
                let (a0, a1, a3, a4) = (fix(a[0]), fix(a[1]), fix(a[3]), fix(a[4]));
                let mut a2 = fix(a[2] + a[0] * 0.5 + a[1] * 0.5);
                let mut a5 = fix(a[5] + a[3] * 0.5 + a[4] * 0.5);
                for y in 0..h {
                    let (mut xx, mut yy) = (a2, a5);
                    for x in 0..w {
                        put(x, y, (xx >> 16) as i64, (yy >> 16) as i64);
                        xx = xx.wrapping_add(a0);
                        yy = yy.wrapping_add(a3);
                    }
                    a2 = a2.wrapping_add(a1);
                    a5 = a5.wrapping_add(a4);
                }
            } else {
                let mut xo = a[2] + a[1] * 0.5 + a[0] * 0.5;
                let mut yo = a[5] + a[4] * 0.5 + a[3] * 0.5;
                for y in 0..h {
                    let (mut xx, mut yy) = (xo, yo);
                    for x in 0..w {
                        put(x, y, coord(xx), coord(yy));
                        xx += a[0];
                        yy += a[3];
                    }
                    xo += a[1];
                    yo += a[4];
                }
            }
        }
        img.data = data;
        img.uncovered = unc;
    }

    /// Python's `round(v, 15)`: the nearest double to `v` rounded to 15 decimals.
    fn round15(v: f64) -> f64 {
        format!("{v:.15}")
            .parse()
            .expect("a formatted float parses")
    }

    /// Pillow's inverse matrix for `Image.rotate(degrees)` about the centre (w/2, h/2), no
    /// expansion, no translation (angle reduced mod 360 first, as Pillow does).
    pub fn rotate_matrix(degrees: f64, w: usize, h: usize) -> [f64; 6] {
        let angle = -(degrees.rem_euclid(360.0)).to_radians();
        let (cos, sin) = (round15(angle.cos()), round15(angle.sin()));
        let mut m = [cos, sin, 0.0, round15(-angle.sin()), cos, 0.0];
        let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
        let (x, y) = (-cx, -cy);
        // Pillow: a x + b y + c with c = 0 (adding 0.0 changes nothing).
        m[2] = m[0] * x + m[1] * y;
        m[5] = m[3] * x + m[4] * y;
        m[2] += cx;
        m[5] += cy;
        m
    }

    /// `Image.rotate(degrees)` with nearest-neighbour sampling: counter-clockwise for positive
    /// angles, about the image centre; corners uncovered.
    pub fn rotate(img: &mut Image, degrees: f64) {
        let angle = degrees.rem_euclid(360.0);
        if angle == 0.0 {
            return;
        }
        if angle == 180.0 {
            rotate_180(img);
            return;
        }
        if (angle == 90.0 || angle == 270.0) && img.width == img.height {
            rotate_quarter(img, angle == 90.0);
            return;
        }
        let m = rotate_matrix(degrees, img.width, img.height);
        affine_nearest(img, &m);
    }

    fn rotate_180(img: &mut Image) {
        let c = img.channels;
        let n = img.pixels();
        for p in 0..n / 2 {
            let q = n - 1 - p;
            for k in 0..c {
                img.data.swap(p * c + k, q * c + k);
            }
            img.uncovered.swap(p, q);
        }
    }

    /// Pillow's ROTATE_90 (counter-clockwise) or ROTATE_270 transpose of a square image.
    fn rotate_quarter(img: &mut Image, ccw: bool) {
        let (n, c) = (img.width, img.channels);
        let mut data = vec![0u8; img.data.len()];
        let mut unc = vec![false; n * n];
        for y in 0..n {
            for x in 0..n {
                // ROTATE_90: out[n-1-x][y] = in[y][x]; ROTATE_270: out[x][n-1-y] = in[y][x].
                let (ox, oy) = if ccw { (y, n - 1 - x) } else { (n - 1 - y, x) };
                let (o, i) = (oy * n + ox, y * n + x);
                data[o * c..(o + 1) * c].copy_from_slice(&img.data[i * c..(i + 1) * c]);
                unc[o] = img.uncovered[i];
            }
        }
        img.data = data;
        img.uncovered = unc;
    }

    /// PBA's TranslateX: `transform(AFFINE, (1, 0, t, 0, 1, 0))`, output (x, y) = input (x + t, y).
    pub fn translate_x(img: &mut Image, t: f64) {
        affine_nearest(img, &[1.0, 0.0, t, 0.0, 1.0, 0.0]);
    }

    /// PBA's TranslateY: `transform(AFFINE, (1, 0, 0, 0, 1, t))`.
    pub fn translate_y(img: &mut Image, t: f64) {
        affine_nearest(img, &[1.0, 0.0, 0.0, 0.0, 1.0, t]);
    }

    /// PBA's ShearX: `transform(AFFINE, (1, s, 0, 0, 1, 0))`, no re-centring.
    pub fn shear_x(img: &mut Image, s: f64) {
        affine_nearest(img, &[1.0, s, 0.0, 0.0, 1.0, 0.0]);
    }

    /// PBA's ShearY: `transform(AFFINE, (1, 0, 0, s, 1, 0))`, no re-centring.
    pub fn shear_y(img: &mut Image, s: f64) {
        affine_nearest(img, &[1.0, 0.0, 0.0, s, 1.0, 0.0]);
    }
}

pub mod basic {

    use rand::Rng;
    use rolekd_core::plugin::image::Image;
    use rolekd_core::rng::StreamRng;

    /// Shifts the image by (-dx, -dy) inside a canvas padded by `pad` on each side: output pixel
    /// (x, y) is input pixel (x + dx - pad, y + dy - pad); pixels from outside the input are
    /// uncovered (value 0). This is a pad of `pad` followed by a crop at offset (dx, dy).
    pub fn pad_crop_at(img: &mut Image, pad: usize, dx: usize, dy: usize) {
        let (w, h, c) = (img.width, img.height, img.channels);
        let sx = dx as isize - pad as isize;
        let sy = dy as isize - pad as isize;
        if sx == 0 && sy == 0 {
            return;
        }
        let mut data = vec![0u8; img.data.len()];
        let mut unc = vec![true; w * h];
        for y in 0..h {
            let yi = y as isize + sy;
            if yi < 0 || yi >= h as isize {
                continue;
            }
            let yi = yi as usize;
            // The covered run of this row: x + sx in 0..w.
            let x0 = (-sx).max(0) as usize;
            let x1 = ((w as isize - sx).min(w as isize)).max(0) as usize;
            if x0 >= x1 {
                continue;
            }
            let xi0 = (x0 as isize + sx) as usize;
            let n = x1 - x0;
            data[(y * w + x0) * c..(y * w + x1) * c]
                .copy_from_slice(&img.data[(yi * w + xi0) * c..(yi * w + xi0 + n) * c]);
            unc[y * w + x0..y * w + x1]
                .copy_from_slice(&img.uncovered[yi * w + xi0..yi * w + xi0 + n]);
        }
        img.data = data;
        img.uncovered = unc;
    }

    /// Pad by `pad` and crop at a random offset: each of dx, dy is uniform in
    /// `0..=max_offset`.
    pub fn pad_crop(img: &mut Image, pad: usize, max_offset: usize, rng: &mut StreamRng) {
        let dx = rng.random_range(0..=max_offset);
        let dy = rng.random_range(0..=max_offset);
        pad_crop_at(img, pad, dx, dy);
    }

    /// Mirrors the image left-right (marks too).
    pub fn flip_lr(img: &mut Image) {
        let (w, c) = (img.width, img.channels);
        for y in 0..img.height {
            let row = &mut img.data[y * w * c..(y + 1) * w * c];
            for x in 0..w / 2 {
                let xr = w - 1 - x;
                for k in 0..c {
                    row.swap(x * c + k, xr * c + k);
                }
            }
            img.uncovered[y * w..(y + 1) * w].reverse();
        }
    }

    /// The rows and columns a cutout square of side `size` centred at (cx, cy) covers, clipped
    /// to the image: `[c - size/2, c - size/2 + size)` on each axis. For even sizes this is
    /// PBA's `[c - size//2, c + size//2)`.
    pub fn cutout_box(
        w: usize,
        h: usize,
        cx: usize,
        cy: usize,
        size: usize,
    ) -> (usize, usize, usize, usize) {
        let half = size / 2;
        let x0 = cx.saturating_sub(half);
        let y0 = cy.saturating_sub(half);
        let x1 = (cx + size - half).min(w);
        let y1 = (cy + size - half).min(h);
        (x0, y0, x1, y1)
    }

    /// Cutout at a given centre: the square's pixels become `fill` (one value per channel, the
    /// last repeated) and are marked uncovered.
    pub fn cutout_at(img: &mut Image, cx: usize, cy: usize, size: usize, fill: &[u8]) {
        if size == 0 {
            return;
        }
        let (w, c) = (img.width, img.channels);
        let (x0, y0, x1, y1) = cutout_box(w, img.height, cx, cy, size);
        for y in y0..y1 {
            for x in x0..x1 {
                let p = y * w + x;
                img.uncovered[p] = true;
                for k in 0..c {
                    img.data[p * c + k] = fill[k.min(fill.len() - 1)];
                }
            }
        }
    }

    /// Cutout with its centre uniform over the image (row first, then column, as PBA draws it).
    pub fn cutout(img: &mut Image, size: usize, fill: &[u8], rng: &mut StreamRng) {
        if size == 0 {
            return;
        }
        let cy = rng.random_range(0..img.height);
        let cx = rng.random_range(0..img.width);
        cutout_at(img, cx, cy, size, fill);
    }
}

pub mod enhance {

    use rolekd_core::plugin::image::Image;

    /// One blended value, as `ImagingBlend` computes it.
    #[inline]
    fn blend_px(deg: u8, img: u8, alpha: f32, extrapolate: bool) -> u8 {
        let v = deg as i32 as f32 + alpha * ((img as i32 - deg as i32) as f32);
        if extrapolate {
            if v <= 0.0 {
                0
            } else if v >= 255.0 {
                255
            } else {
                v as u8
            }
        } else {
            v as u8
        }
    }

    /// Blends `img.data` with a degenerate image given per value by `deg(i)`.
    fn blend_with(img: &mut Image, factor: f64, deg: impl Fn(usize) -> u8) {
        let alpha = factor as f32;
        if alpha == 1.0 {
            return;
        }
        let extrapolate = !(0.0..=1.0).contains(&alpha);
        for (i, v) in img.data.iter_mut().enumerate() {
            *v = if alpha == 0.0 {
                deg(i)
            } else {
                blend_px(deg(i), *v, alpha, extrapolate)
            };
        }
    }

    /// Pillow's RGB -> L conversion: `(19595 R + 38470 G + 7471 B + 0x8000) >> 16`.
    #[inline]
    pub fn luma(r: u8, g: u8, b: u8) -> u8 {
        ((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8
    }

    /// The grayscale value of pixel `p` (its own value for one-channel images).
    #[inline]
    fn gray(img: &Image, p: usize) -> u8 {
        match img.channels {
            1 => img.data[p],
            2 => img.data[p * 2],
            c => luma(img.data[p * c], img.data[p * c + 1], img.data[p * c + 2]),
        }
    }

    /// `ImageEnhance.Brightness(img).enhance(factor)`: blend with black.
    pub fn brightness(img: &mut Image, factor: f64) {
        blend_with(img, factor, |_| 0);
    }

    /// `ImageEnhance.Color(img).enhance(factor)`: blend with the image's grayscale version
    /// (the identity for one-channel images).
    pub fn color(img: &mut Image, factor: f64) {
        if img.channels < 3 {
            return;
        }
        let c = img.channels;
        let g: Vec<u8> = (0..img.pixels()).map(|p| gray(img, p)).collect();
        blend_with(img, factor, |i| g[i / c]);
    }

    /// The mean of the grayscale image rounded as `ImageEnhance.Contrast` does:
    /// `int(mean + 0.5)` over every pixel, uncovered ones included.
    pub fn gray_mean(img: &Image) -> u8 {
        let mut hist = [0u64; 256];
        for p in 0..img.pixels() {
            hist[gray(img, p) as usize] += 1;
        }
        let n: u64 = hist.iter().sum();
        let s: u64 = hist.iter().enumerate().map(|(v, &h)| v as u64 * h).sum();
        if n == 0 {
            return 0;
        }
        ((s as f64 / n as f64) + 0.5) as u8
    }

    /// `ImageEnhance.Contrast(img).enhance(factor)`: blend with a flat image of the grayscale
    /// mean.
    pub fn contrast(img: &mut Image, factor: f64) {
        let m = gray_mean(img);
        blend_with(img, factor, |_| m);
    }

    /// Pillow's `ImageFilter.SMOOTH` (3x3 kernel 1 1 1 / 1 5 1 / 1 1 1 over 13) on every
    /// channel, in Pillow's single-precision arithmetic; the border rows and columns are
    /// copied unfiltered. Images under 3x3 are returned unchanged.
    pub fn smooth(img: &Image) -> Vec<u8> {
        let (w, h, c) = (img.width, img.height, img.channels);
        let mut out = img.data.clone();
        if w < 3 || h < 3 {
            return out;
        }
        let k1 = 1.0f32 / 13.0f32;
        let k5 = 5.0f32 / 13.0f32;
        let d = &img.data;
        let at = |x: usize, y: usize, k: usize| d[(y * w + x) * c + k] as f32;
        for y in 1..h - 1 {
            for x in 1..w - 1 {
                for k in 0..c {
                    let mut ss = 0.0f32 + 0.5f32;
                    // Pillow sums the row below, the row itself, then the row above.
                    ss +=
                        at(x - 1, y + 1, k) * k1 + at(x, y + 1, k) * k1 + at(x + 1, y + 1, k) * k1;
                    ss += at(x - 1, y, k) * k1 + at(x, y, k) * k5 + at(x + 1, y, k) * k1;
                    ss +=
                        at(x - 1, y - 1, k) * k1 + at(x, y - 1, k) * k1 + at(x + 1, y - 1, k) * k1;
                    out[(y * w + x) * c + k] = ss.clamp(0.0, 255.0) as u8;
                }
            }
        }
        out
    }

    /// `ImageEnhance.Sharpness(img).enhance(factor)`: blend with the SMOOTH-filtered image
    /// (factor > 1 sharpens).
    pub fn sharpness(img: &mut Image, factor: f64) {
        if factor as f32 == 1.0 {
            return;
        }
        let s = smooth(img);
        blend_with(img, factor, |i| s[i]);
    }
}

pub mod point {

    use rolekd_core::plugin::image::Image;

    /// Applies one 256-entry table per channel and clears the marks.
    fn apply_luts(img: &mut Image, luts: &[[u8; 256]]) {
        let c = img.channels;
        for (i, v) in img.data.iter_mut().enumerate() {
            *v = luts[i % c][*v as usize];
        }
        img.uncovered.iter_mut().for_each(|u| *u = false);
    }

    fn same_lut(img: &mut Image, lut: [u8; 256]) {
        let luts = vec![lut; img.channels];
        apply_luts(img, &luts);
    }

    fn histograms(img: &Image) -> Vec<[u64; 256]> {
        let c = img.channels;
        let mut h = vec![[0u64; 256]; c];
        for (i, &v) in img.data.iter().enumerate() {
            h[i % c][v as usize] += 1;
        }
        h
    }

    /// `ImageOps.posterize(img, bits)`: keep the top `bits` bits (1..=8).
    pub fn posterize(img: &mut Image, bits: u32) {
        let bits = bits.clamp(1, 8);
        let mask = !((1u32 << (8 - bits)) - 1) as u8;
        let mut lut = [0u8; 256];
        for (i, v) in lut.iter_mut().enumerate() {
            *v = i as u8 & mask;
        }
        same_lut(img, lut);
    }

    /// `ImageOps.solarize(img, threshold)`: invert every value >= threshold.
    pub fn solarize(img: &mut Image, threshold: u32) {
        let mut lut = [0u8; 256];
        for (i, v) in lut.iter_mut().enumerate() {
            *v = if (i as u32) < threshold {
                i as u8
            } else {
                255 - i as u8
            };
        }
        same_lut(img, lut);
    }

    /// `ImageOps.invert(img)`.
    pub fn invert(img: &mut Image) {
        let mut lut = [0u8; 256];
        for (i, v) in lut.iter_mut().enumerate() {
            *v = 255 - i as u8;
        }
        same_lut(img, lut);
    }

    /// `ImageOps.autocontrast(img)` (no cutoff): per channel, stretch [lo, hi] to [0, 255]
    /// with `int(v * scale + offset)`, `scale = 255 / (hi - lo)`, `offset = -lo * scale`.
    pub fn autocontrast(img: &mut Image) {
        let luts: Vec<[u8; 256]> = histograms(img)
            .iter()
            .map(|h| {
                let mut lut = [0u8; 256];
                let lo = (0..256).find(|&i| h[i] > 0).unwrap_or(255);
                let hi = (0..256).rev().find(|&i| h[i] > 0).unwrap_or(0);
                if hi <= lo {
                    for (i, v) in lut.iter_mut().enumerate() {
                        *v = i as u8;
                    }
                } else {
                    let scale = 255.0 / (hi - lo) as f64;
                    let offset = -(lo as f64) * scale;
                    for (i, v) in lut.iter_mut().enumerate() {
                        let x = (i as f64 * scale + offset) as i64;
                        *v = x.clamp(0, 255) as u8;
                    }
                }
                lut
            })
            .collect();
        apply_luts(img, &luts);
    }

    /// `ImageOps.equalize(img)`: per channel, Pillow's cumulative-histogram table
    /// (`step = (n - count of the last used value) // 255`, entries `(step // 2 + cum) // step`,
    /// clipped to 255); a channel with one used value or a zero step is left as is.
    pub fn equalize(img: &mut Image) {
        let luts: Vec<[u8; 256]> = histograms(img)
            .iter()
            .map(|h| {
                let mut lut = [0u8; 256];
                for (i, v) in lut.iter_mut().enumerate() {
                    *v = i as u8;
                }
                let used: Vec<u64> = h.iter().copied().filter(|&c| c > 0).collect();
                if used.len() <= 1 {
                    return lut;
                }
                let total: u64 = used.iter().sum();
                let step = (total - used[used.len() - 1]) / 255;
                if step == 0 {
                    return lut;
                }
                let mut n = step / 2;
                for (i, v) in lut.iter_mut().enumerate() {
                    *v = (n / step).min(255) as u8;
                    n += h[i];
                }
                lut
            })
            .collect();
        apply_luts(img, &luts);
    }
}

/// The fast ops against the reference ones on random images of every shape and channel
/// count: values and marks must agree exactly.
mod equivalence {
    use crate::ops::{affine, basic, enhance, point};
    use crate::policy::finish::{CropOffsets, Finish};
    use rand::{Rng, SeedableRng};
    use rolekd_core::plugin::image::Image;
    use rolekd_core::rng::StreamRng;

    /// A random image: values over the full range, a narrow range or a couple of levels,
    /// some pixels uncovered.
    fn random_image(rng: &mut StreamRng, w: usize, h: usize, c: usize) -> Image {
        let style = rng.random_range(0..4);
        let (lo, hi) = match style {
            0 => (0u8, 255u8),
            1 => {
                let lo = rng.random_range(0..=255u8);
                (lo, lo.saturating_add(rng.random_range(0..40)))
            }
            2 => (100, 100),
            _ => (0, 255),
        };
        let data = (0..w * h * c)
            .map(|_| {
                if style == 3 {
                    [7u8, 200][rng.random_range(0..2)]
                } else {
                    rng.random_range(lo..=hi)
                }
            })
            .collect();
        let mut img = Image::new(w, h, c, data);
        let p = [0.0, 0.1, 0.5][rng.random_range(0..3)];
        for u in img.uncovered.iter_mut() {
            *u = rng.random::<f64>() < p;
        }
        img
    }

    fn shape(rng: &mut StreamRng) -> (usize, usize, usize) {
        let side = |rng: &mut StreamRng| {
            if rng.random::<f64>() < 0.5 {
                [28, 32][rng.random_range(0..2)]
            } else {
                rng.random_range(1..40)
            }
        };
        let w = side(rng);
        let h = if rng.random::<f64>() < 0.5 {
            w
        } else {
            side(rng)
        };
        (w, h, rng.random_range(1..=4))
    }

    fn same(what: &str, got: &Image, want: &Image) {
        assert_eq!(got.data, want.data, "{what}: values");
        assert_eq!(got.uncovered, want.uncovered, "{what}: marks");
    }

    /// Runs `fast` and `reference` on copies of many random images.
    fn compare(
        cases: usize,
        mut param: impl FnMut(&mut StreamRng) -> f64,
        fast: impl Fn(&mut Image, f64),
        reference: impl Fn(&mut Image, f64),
    ) {
        let mut rng = StreamRng::seed_from_u64(7);
        for case in 0..cases {
            let (w, h, c) = shape(&mut rng);
            let img = random_image(&mut rng, w, h, c);
            let p = param(&mut rng);
            let (mut a, mut b) = (img.clone(), img);
            fast(&mut a, p);
            reference(&mut b, p);
            same(&format!("case {case}: {w}x{h}x{c}, parameter {p}"), &a, &b);
        }
    }

    fn angle(rng: &mut StreamRng) -> f64 {
        match rng.random_range(0..4) {
            0 => rng.random_range(-27..=27) as f64,
            1 => [0.0, 90.0, 180.0, 270.0, -90.0, 360.0, 450.0][rng.random_range(0..7)],
            2 => rng.random_range(-720..=720) as f64,
            _ => rng.random_range(-400.0..400.0),
        }
    }

    fn shift(rng: &mut StreamRng) -> f64 {
        match rng.random_range(0..3) {
            0 => rng.random_range(-10..=10) as f64,
            1 => rng.random_range(-50..=50) as f64,
            _ => rng.random_range(-50.0..50.0),
        }
    }

    fn shear(rng: &mut StreamRng) -> f64 {
        match rng.random_range(0..3) {
            0 => rng.random_range(-9..=9) as f64 * 0.3 / 10.0,
            1 => rng.random_range(-3.0..3.0),
            _ => [0.0, 1.0, -1.0, 40000.0][rng.random_range(0..4)],
        }
    }

    #[test]
    fn geometric_ops_match() {
        compare(3000, angle, affine::rotate, super::affine::rotate);
        compare(2000, shift, affine::translate_x, super::affine::translate_x);
        compare(2000, shift, affine::translate_y, super::affine::translate_y);
        compare(2000, shear, affine::shear_x, super::affine::shear_x);
        compare(2000, shear, affine::shear_y, super::affine::shear_y);
    }

    #[test]
    fn general_affine_maps_match() {
        let mut rng = StreamRng::seed_from_u64(11);
        for case in 0..3000 {
            let (w, h, c) = shape(&mut rng);
            let img = random_image(&mut rng, w, h, c);
            let mut m = [0.0; 6];
            for v in m.iter_mut() {
                *v = match rng.random_range(0..5) {
                    0 => 0.0,
                    1 => 1.0,
                    2 => rng.random_range(-3..=3) as f64,
                    3 => rng.random_range(-2.0..2.0),
                    _ => rng.random_range(-40.0..40.0),
                };
            }
            if rng.random::<f64>() < 0.1 {
                m[2] = 1e6; // the double-precision engine
            }
            if rng.random::<f64>() < 0.4 {
                (m[1], m[3]) = (0.0, 0.0); // the scale engine
            }
            let (mut a, mut b) = (img.clone(), img);
            affine::affine_nearest(&mut a, &m);
            super::affine::affine_nearest(&mut b, &m);
            same(&format!("case {case}: {w}x{h}x{c} {m:?}"), &a, &b);
        }
    }

    fn factor(rng: &mut StreamRng) -> f64 {
        match rng.random_range(0..3) {
            0 => rng.random_range(0..10) as f64 * 1.8 / 10.0 + 0.1,
            1 => [0.0, 1.0, 2.0, -1.0, 1e30, f64::INFINITY][rng.random_range(0..6)],
            _ => rng.random_range(-1.0..3.0),
        }
    }

    #[test]
    fn enhance_ops_match() {
        compare(
            3000,
            factor,
            enhance::brightness,
            super::enhance::brightness,
        );
        compare(3000, factor, enhance::color, super::enhance::color);
        compare(3000, factor, enhance::contrast, super::enhance::contrast);
        compare(3000, factor, enhance::sharpness, super::enhance::sharpness);
        compare(
            1000,
            |_| 0.0,
            |img, _| img.data = enhance::smooth(img),
            |img, _| img.data = super::enhance::smooth(img),
        );
    }

    #[test]
    fn smooth_rounding_rule_is_exact_for_every_sum() {
        // Every neighbourhood sum S = nine values + 4 centre: Pillow's single-precision
        // value against (S + 6) / 13, over all (sum of the eight neighbours, centre) pairs
        // reached through one arrangement per pair.
        let k1 = 1.0f32 / 13.0f32;
        let k5 = 5.0f32 / 13.0f32;
        for centre in 0..=255u32 {
            for ring in 0..=8 * 255u32 {
                // Spread `ring` over the eight neighbours as evenly as possible, and also
                // as unevenly as possible: the float sum depends on the arrangement.
                for uneven in [false, true] {
                    let mut v = [0u32; 8];
                    if uneven {
                        let mut left = ring;
                        for x in v.iter_mut() {
                            *x = left.min(255);
                            left -= *x;
                        }
                    } else {
                        for (k, x) in v.iter_mut().enumerate() {
                            *x = ring / 8 + u32::from((k as u32) < ring % 8);
                        }
                    }
                    let f = |x: u32| x as f32;
                    let mut ss = 0.0f32 + 0.5f32;
                    ss += f(v[0]) * k1 + f(v[1]) * k1 + f(v[2]) * k1;
                    ss += f(v[3]) * k1 + f(centre) * k5 + f(v[4]) * k1;
                    ss += f(v[5]) * k1 + f(v[6]) * k1 + f(v[7]) * k1;
                    let s = ring + 5 * centre;
                    assert_eq!(ss.clamp(0.0, 255.0) as u32, (s + 6) / 13, "{v:?} {centre}");
                }
            }
        }
    }

    #[test]
    fn point_ops_match() {
        let bits = |rng: &mut StreamRng| rng.random_range(0..=9) as f64;
        compare(
            2000,
            bits,
            |i, b| point::posterize(i, b as u32),
            |i, b| super::point::posterize(i, b as u32),
        );
        let thr = |rng: &mut StreamRng| rng.random_range(0..=300) as f64;
        compare(
            2000,
            thr,
            |i, t| point::solarize(i, t as u32),
            |i, t| super::point::solarize(i, t as u32),
        );
        compare(
            1000,
            |_| 0.0,
            |i, _| point::invert(i),
            |i, _| super::point::invert(i),
        );
        compare(
            3000,
            |_| 0.0,
            |i, _| point::autocontrast(i),
            |i, _| super::point::autocontrast(i),
        );
        compare(
            3000,
            |_| 0.0,
            |i, _| point::equalize(i),
            |i, _| super::point::equalize(i),
        );
    }

    #[test]
    fn equalize_matches_on_large_and_skewed_images() {
        let mut rng = StreamRng::seed_from_u64(3);
        for case in 0..300 {
            let (w, h) = (rng.random_range(16..200), rng.random_range(16..200));
            let c = rng.random_range(1..=4);
            let dominant = rng.random_range(0..=255u8);
            let p = rng.random::<f64>();
            let data = (0..w * h * c)
                .map(|_| {
                    if rng.random::<f64>() < p {
                        dominant
                    } else {
                        rng.random_range(0..=255u8)
                    }
                })
                .collect();
            let img = Image::new(w, h, c, data);
            let (mut a, mut b) = (img.clone(), img);
            point::equalize(&mut a);
            super::point::equalize(&mut b);
            same(&format!("case {case}"), &a, &b);
        }
    }

    #[test]
    fn finishing_steps_match() {
        let mut rng = StreamRng::seed_from_u64(5);
        for case in 0..3000 {
            let (w, h, c) = shape(&mut rng);
            let img = random_image(&mut rng, w, h, c);
            let pad = rng.random_range(0..12);
            let (dx, dy) = (rng.random_range(0..=2 * pad), rng.random_range(0..=2 * pad));
            let what = format!("case {case}: {w}x{h}x{c} pad {pad} at {dx},{dy}");
            let (mut a, mut b) = (img.clone(), img.clone());
            basic::pad_crop_at(&mut a, pad, dx, dy);
            super::basic::pad_crop_at(&mut b, pad, dx, dy);
            same(&what, &a, &b);
            basic::flip_lr(&mut a);
            super::basic::flip_lr(&mut b);
            same(&what, &a, &b);
            let (cx, cy, size) = (
                rng.random_range(0..w + 3),
                rng.random_range(0..h + 3),
                rng.random_range(0..20),
            );
            let fills: [&[u8]; 4] = [&[0], &[125, 122, 113], &[9, 9], &[1, 2, 3, 4, 5]];
            let fill = fills[rng.random_range(0..4)];
            basic::cutout_at(&mut a, cx, cy, size, fill);
            super::basic::cutout_at(&mut b, cx, cy, size, fill);
            same(&what, &a, &b);
            // The fused pass of a policy's finish against the three steps.
            let finish = Finish {
                pad,
                crop_offsets: [CropOffsets::Full, CropOffsets::Pba][case % 2],
                flip: case % 3 != 0,
                cutout: rng.random_range(0..w.min(h) + 1),
            };
            let seed = rng.random::<u64>();
            let (mut a, mut b) = (img.clone(), img);
            finish.apply(&mut a, &mut StreamRng::seed_from_u64(seed));
            let r = &mut StreamRng::seed_from_u64(seed);
            if pad > 0 {
                super::basic::pad_crop(&mut b, pad, finish.max_offset(), r);
            }
            if finish.flip && r.random::<f64>() < 0.5 {
                super::basic::flip_lr(&mut b);
            }
            if finish.cutout > 0 {
                super::basic::cutout(&mut b, finish.cutout, &[0], r);
            }
            same(&format!("{what} {finish:?}"), &a, &b);
        }
    }
}
