//! Pillow's nearest-neighbour affine transform (`Image.transform(size, AFFINE, data)` and
//! `Image.rotate`), reproduced operation for operation so that results match Pillow pixel
//! for pixel.
//!
//! Pillow maps each output pixel back into the input: output (x, y) samples input
//! `(a0 (x + 0.5) + a1 (y + 0.5) + a2, a3 (x + 0.5) + a4 (y + 0.5) + a5)`, truncated to a
//! pixel index. Three engines do this, chosen as Pillow chooses them:
//! - a pure scale/translate (a1 = a3 = 0): double arithmetic, accumulated per pixel;
//! - otherwise, when all four corners map inside +-32768: 16.16 fixed point (the constants
//!   rounded with `floor(v * 65536 + 0.5)`, walked by integer increments);
//! - otherwise: double arithmetic, accumulated per pixel.
//!
//! Output pixels that sample outside the input get value 0 and are marked uncovered (in
//! Pillow's RGBA images they become (0, 0, 0, 0): transparent); covered ones take the
//! input's value and mark.

use super::scratch::{self, Scratch};
use rolekd_core::plugin::image::Image;
use std::sync::OnceLock;

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

/// Copies `n` source pixels starting at pixel `from` into the destination starting at pixel
/// `to`, with their marks.
#[inline]
fn copy_run(img: &mut Image, src: &[u8], src_marks: &[bool], to: usize, from: usize, n: usize) {
    let c = img.channels;
    img.data[to * c..(to + n) * c].copy_from_slice(&src[from * c..(from + n) * c]);
    img.uncovered[to..to + n].copy_from_slice(&src_marks[from..from + n]);
}

/// Clears `n` destination pixels from pixel `to` (value 0, uncovered).
#[inline]
fn clear_run(img: &mut Image, to: usize, n: usize) {
    let c = img.channels;
    img.data[to * c..(to + n) * c].fill(0);
    img.uncovered[to..to + n].fill(true);
}

/// Writes output row `y` from per-pixel source indices (`w * h`, the zero pixel appended to
/// the source, for outside).
fn gather_row(img: &mut Image, src: &[u8], src_marks: &[bool], y: usize, idx: &[u32]) {
    let (w, c) = (img.width, img.channels);
    let data = &mut img.data[y * w * c..(y + 1) * w * c];
    let marks = &mut img.uncovered[y * w..(y + 1) * w];
    match c {
        1 => {
            for ((d, m), &i) in data.iter_mut().zip(marks.iter_mut()).zip(idx) {
                *d = src[i as usize];
                *m = src_marks[i as usize];
            }
        }
        3 => {
            for ((d, m), &i) in data.chunks_exact_mut(3).zip(marks.iter_mut()).zip(idx) {
                let i = i as usize;
                d.copy_from_slice(&src[i * 3..i * 3 + 3]);
                *m = src_marks[i];
            }
        }
        _ => {
            for ((d, m), &i) in data.chunks_exact_mut(c).zip(marks.iter_mut()).zip(idx) {
                let i = i as usize;
                d.copy_from_slice(&src[i * c..(i + 1) * c]);
                *m = src_marks[i];
            }
        }
    }
}

/// Fills `s.bytes`/`s.marks` with the source image plus one zero, uncovered pixel (index
/// `w * h`) that stands for everything outside it.
fn load_source(img: &Image, s: &mut Scratch) {
    let zeros = [0u8; 16];
    let c = img.channels;
    scratch::copy_with(&mut s.bytes, &img.data, &zeros[..c.min(16)]);
    if c > 16 {
        s.bytes.resize(img.data.len() + c, 0);
    }
    scratch::copy_with(&mut s.marks, &img.uncovered, &[true]);
}

/// Applies the inverse affine map `a` (Pillow's `data` for `Transform.AFFINE`) with
/// nearest-neighbour sampling; the output has the input's size.
pub fn affine_nearest(img: &mut Image, a: &[f64; 6]) {
    let (w, h) = (img.width, img.height);
    if w == 0 || h == 0 {
        return;
    }
    scratch::with(|s| {
        load_source(img, s);
        if a[1] == 0.0 && a[3] == 0.0 {
            scale_affine(img, a, s);
        } else if check_fixed(a, 0.0, 0.0)
            && check_fixed(a, w as f64, h as f64)
            && check_fixed(a, 0.0, h as f64)
            && check_fixed(a, w as f64, 0.0)
        {
            fixed_affine(img, a, s);
        } else {
            double_affine(img, a, s);
        }
    });
}

/// ImagingScaleAffine: the column table first, then rows. Whole-pixel shifts (a contiguous
/// column table) copy runs; anything else gathers pixel by pixel.
fn scale_affine(img: &mut Image, a: &[f64; 6], s: &mut Scratch) {
    let (w, h) = (img.width, img.height);
    let outside = (w * h) as u32;
    let Scratch {
        bytes: src,
        marks: src_marks,
        index: idx,
        index2: row,
    } = s;
    idx.clear();
    let mut xo = a[2] + a[0] * 0.5;
    for _ in 0..w {
        let xi = coord(xo);
        xo += a[0];
        idx.push(if xi >= 0 && (xi as usize) < w {
            xi as u32
        } else {
            outside
        });
    }
    // The covered columns and whether they read a contiguous run of input columns.
    let first = idx.iter().position(|&i| i != outside);
    let run = first.map(|x0| {
        let x1 = x0 + idx[x0..].iter().take_while(|&&i| i != outside).count();
        let contiguous = idx[x1..].iter().all(|&i| i == outside)
            && idx[x0..x1]
                .iter()
                .enumerate()
                .all(|(k, &i)| i == idx[x0] + k as u32);
        (x0, x1, contiguous)
    });
    let mut yo = a[5] + a[4] * 0.5;
    for y in 0..h {
        let yi = coord(yo);
        yo += a[4];
        let row_covered = yi >= 0 && (yi as usize) < h;
        match run {
            Some((x0, x1, true)) if row_covered => {
                let yi = yi as usize;
                clear_run(img, y * w, x0);
                copy_run(
                    img,
                    src,
                    src_marks,
                    y * w + x0,
                    yi * w + idx[x0] as usize,
                    x1 - x0,
                );
                clear_run(img, y * w + x1, w - x1);
            }
            Some((_, _, false)) if row_covered => {
                let base = (yi as usize * w) as u32;
                row.clear();
                row.extend(idx.iter().map(|&i| if i == outside { i } else { base + i }));
                gather_row(img, src, src_marks, y, row);
            }
            _ => clear_run(img, y * w, w),
        }
    }
}

/// The 16.16 fixed-point engine. Rows that are whole-pixel shifts of an input row (unit x
/// step, no y step along the row) copy runs; others gather pixel by pixel.
fn fixed_affine(img: &mut Image, a: &[f64; 6], s: &mut Scratch) {
    let (w, h) = (img.width, img.height);
    let outside = (w * h) as u32;
    let Scratch {
        bytes: src,
        marks: src_marks,
        index: idx,
        ..
    } = s;
    let (a0, a1, a3, a4) = (fix(a[0]), fix(a[1]), fix(a[3]), fix(a[4]));
    let mut a2 = fix(a[2] + a[0] * 0.5 + a[1] * 0.5);
    let mut a5 = fix(a[5] + a[3] * 0.5 + a[4] * 0.5);
    let shift_rows = a0 == 1 << 16 && a3 == 0;
    idx.clear();
    idx.resize(w, outside);
    for y in 0..h {
        if shift_rows && (a2 as i64 + (w as i64 - 1) * 65536) <= i32::MAX as i64 {
            // xin = x + (a2 >> 16) exactly (no wrap along the row), yin constant.
            let yi = (a5 >> 16) as i64;
            let dx = (a2 >> 16) as i64;
            let x0 = (-dx).clamp(0, w as i64) as usize;
            let x1 = (w as i64 - dx).clamp(x0 as i64, w as i64) as usize;
            if yi >= 0 && (yi as usize) < h && x0 < x1 {
                let from = yi as usize * w + (x0 as i64 + dx) as usize;
                clear_run(img, y * w, x0);
                copy_run(img, src, src_marks, y * w + x0, from, x1 - x0);
                clear_run(img, y * w + x1, w - x1);
            } else {
                clear_run(img, y * w, w);
            }
        } else {
            let (wi, hi) = (w as u32, h as u32);
            let (mut xx, mut yy) = (a2, a5);
            for v in idx.iter_mut() {
                let (xi, yi) = ((xx >> 16) as u32, (yy >> 16) as u32);
                // Negative values wrap to huge u32s and fail the bound checks.
                *v = if xi < wi && yi < hi {
                    yi * wi + xi
                } else {
                    outside
                };
                xx = xx.wrapping_add(a0);
                yy = yy.wrapping_add(a3);
            }
            gather_row(img, src, src_marks, y, idx);
        }
        a2 = a2.wrapping_add(a1);
        a5 = a5.wrapping_add(a4);
    }
}

/// The double-precision engine, accumulated per pixel.
fn double_affine(img: &mut Image, a: &[f64; 6], s: &mut Scratch) {
    let (w, h) = (img.width, img.height);
    let outside = (w * h) as u32;
    let Scratch {
        bytes: src,
        marks: src_marks,
        index: idx,
        ..
    } = s;
    idx.clear();
    idx.resize(w, outside);
    let mut xo = a[2] + a[1] * 0.5 + a[0] * 0.5;
    let mut yo = a[5] + a[4] * 0.5 + a[3] * 0.5;
    for y in 0..h {
        let (mut xx, mut yy) = (xo, yo);
        for v in idx.iter_mut() {
            let (xi, yi) = (coord(xx), coord(yy));
            *v = if xi >= 0 && (xi as usize) < w && yi >= 0 && (yi as usize) < h {
                (yi as usize * w + xi as usize) as u32
            } else {
                outside
            };
            xx += a[0];
            yy += a[3];
        }
        gather_row(img, src, src_marks, y, idx);
        xo += a[1];
        yo += a[4];
    }
}

/// Python's `round(v, 15)`: the nearest double to `v` rounded to 15 decimals.
fn round15(v: f64) -> f64 {
    format!("{v:.15}")
        .parse()
        .expect("a formatted float parses")
}

/// `(round15(cos), round15(sin), round15(-sin))` of `-angle` degrees (`angle` in 0..360, as
/// reduced by Pillow); whole angles are computed once per process.
fn rotate_trig(angle: f64) -> [f64; 3] {
    let compute = || {
        let r = -angle.to_radians();
        [round15(r.cos()), round15(r.sin()), round15(-r.sin())]
    };
    static WHOLE: [OnceLock<[f64; 3]>; 360] = [const { OnceLock::new() }; 360];
    if angle.fract() == 0.0 && (0.0..360.0).contains(&angle) {
        *WHOLE[angle as usize].get_or_init(compute)
    } else {
        compute()
    }
}

/// Pillow's inverse matrix for `Image.rotate(degrees)` about the centre (w/2, h/2), no
/// expansion, no translation (angle reduced mod 360 first, as Pillow does).
pub fn rotate_matrix(degrees: f64, w: usize, h: usize) -> [f64; 6] {
    let [cos, sin, msin] = rotate_trig(degrees.rem_euclid(360.0));
    let mut m = [cos, sin, 0.0, msin, cos, 0.0];
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

/// Reverses the order of the `c`-byte pixels of `data`.
pub(crate) fn reverse_pixels(data: &mut [u8], c: usize) {
    match c {
        1 => data.reverse(),
        _ => {
            let n = data.len() / c;
            let (left, right) = data.split_at_mut(n / 2 * c);
            let right = &mut right[(n % 2) * c..];
            for (l, r) in left.chunks_exact_mut(c).zip(right.rchunks_exact_mut(c)) {
                l.swap_with_slice(r);
            }
        }
    }
}

fn rotate_180(img: &mut Image) {
    reverse_pixels(&mut img.data, img.channels);
    img.uncovered.reverse();
}

/// Pillow's ROTATE_90 (counter-clockwise) or ROTATE_270 transpose of a square image.
fn rotate_quarter(img: &mut Image, ccw: bool) {
    let (n, c) = (img.width, img.channels);
    scratch::with(|s| {
        load_source(img, s);
        let (src, src_marks) = (&s.bytes, &s.marks);
        for y in 0..n {
            for x in 0..n {
                // ROTATE_90: out[n-1-x][y] = in[y][x]; ROTATE_270: out[x][n-1-y] = in[y][x].
                let (ox, oy) = if ccw { (y, n - 1 - x) } else { (n - 1 - y, x) };
                let (o, i) = (oy * n + ox, y * n + x);
                img.data[o * c..(o + 1) * c].copy_from_slice(&src[i * c..(i + 1) * c]);
                img.uncovered[o] = src_marks[i];
            }
        }
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn coords(w: usize, h: usize) -> Image {
        let mut d = Vec::new();
        for y in 0..h {
            for x in 0..w {
                d.extend_from_slice(&[x as u8, y as u8]);
            }
        }
        Image::new(w, h, 2, d)
    }

    #[test]
    fn translate_shifts_by_whole_pixels() {
        let mut img = coords(6, 5);
        translate_x(&mut img, 2.0);
        for y in 0..5 {
            for x in 0..6 {
                let inside = x + 2 < 6;
                assert_eq!(img.uncovered[y * 6 + x], !inside);
                if inside {
                    assert_eq!((img.at(x, y, 0), img.at(x, y, 1)), ((x + 2) as u8, y as u8));
                } else {
                    assert_eq!(img.at(x, y, 0), 0);
                }
            }
        }
        let mut img = coords(6, 5);
        translate_y(&mut img, -3.0);
        assert!(img.uncovered[2 * 6 + 1] && !img.uncovered[3 * 6 + 1]);
        assert_eq!(img.at(1, 3, 1), 0);
        assert_eq!(img.at(1, 4, 1), 1);
    }

    #[test]
    fn rotate_matrix_matches_pillow_convention() {
        // Pillow: rotate(30) on 32x32 gives cos(-30deg), sin(-30deg) rounded to 15 digits.
        let m = rotate_matrix(30.0, 32, 32);
        assert_eq!(m[0], 0.866025403784439);
        assert_eq!(m[1], -0.5);
        assert_eq!(m[3], 0.5);
        // Negative angles go through mod 360 first.
        let n = rotate_matrix(-30.0, 32, 32);
        assert_eq!(n[1], round15((-(330.0f64).to_radians()).sin()));
    }

    #[test]
    fn quarter_turns_and_half_turn() {
        let base = coords(4, 4);
        let mut img = base.clone();
        rotate(&mut img, 90.0);
        // Counter-clockwise: the top-right corner moves to the top-left.
        assert_eq!((img.at(0, 0, 0), img.at(0, 0, 1)), (3, 0));
        rotate(&mut img, 270.0);
        assert_eq!(img, base);
        rotate(&mut img, 180.0);
        assert_eq!((img.at(0, 0, 0), img.at(0, 0, 1)), (3, 3));
        assert!(img.uncovered.iter().all(|u| !u));
    }

    #[test]
    fn small_rotation_uncovers_corners_only() {
        let mut img = coords(32, 32);
        rotate(&mut img, 15.0);
        assert!(img.uncovered[0] && img.uncovered[31] && img.uncovered[32 * 31]);
        assert!(!img.uncovered[16 * 32 + 16]);
        assert_eq!((img.at(16, 16, 0), img.at(16, 16, 1)), (16, 16));
    }
}
