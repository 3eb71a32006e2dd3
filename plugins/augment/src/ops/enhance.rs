//! Pillow's `ImageEnhance` (Brightness, Color, Contrast, Sharpness): a blend between a
//! "degenerate" image and the original, `out = degenerate + factor (img - degenerate)`,
//! computed as Pillow's `ImagingBlend` computes it: in single precision with the factor
//! rounded to `f32`, truncated to u8 (and clipped to 0..=255 when the factor is outside
//! [0, 1]). The marks (Pillow's alpha channel) are left as they are, and uncovered pixels
//! are blended like any other (their values take part, as in Pillow's RGBA images).

use super::scratch;
use rolekd_core::plugin::image::Image;

/// One blended value, as `ImagingBlend` computes it: `deg + alpha (img - deg)` in single
/// precision, clipped to 0..=255 and truncated. (Pillow clips only when alpha is outside
/// [0, 1]; inside, the single-precision value cannot leave [0, 255], so clipping always is
/// the same.)
#[inline(always)]
fn blend_px(deg: u8, img: u8, alpha: f32) -> u8 {
    let (d, i) = (deg as i32 as f32, img as i32 as f32);
    let v = d + alpha * (i - d);
    // Clip (NaN, possible only for infinite alpha, gives 0 as in Pillow), then truncate
    // without a float-to-int conversion, which does not vectorise: round to an integer
    // with the 2^23 trick, step down if that rounded up, and read the integer off the bits.
    let v = if v > 0.0 { v } else { 0.0 };
    let v = if v < 255.0 { v } else { 255.0 };
    const MAGIC: f32 = 8_388_608.0; // 2^23: adding it rounds [0, 2^22] to integers
    let r = (v + MAGIC) - MAGIC;
    let t = if r > v { r - 1.0 } else { r };
    (t + MAGIC).to_bits() as u8
}

/// Pillow's blend of `data` (the image) with `deg` (the degenerate image), value by value.
fn blend_slices(data: &mut [u8], deg: &[u8], alpha: f32) {
    if alpha == 0.0 {
        data.copy_from_slice(deg);
        return;
    }
    for (v, &d) in data.iter_mut().zip(deg) {
        *v = blend_px(d, *v, alpha);
    }
}

/// Blends every value with one degenerate value `deg`, through a 256-entry table.
fn blend_const(img: &mut Image, alpha: f32, deg: u8) {
    let mut lut = [0u8; 256];
    for (i, v) in lut.iter_mut().enumerate() {
        *v = if alpha == 0.0 {
            deg
        } else {
            blend_px(deg, i as u8, alpha)
        };
    }
    for v in img.data.iter_mut() {
        *v = lut[*v as usize];
    }
}

/// Pillow's RGB -> L conversion: `(19595 R + 38470 G + 7471 B + 0x8000) >> 16`.
#[inline]
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16) as u8
}

/// `ImageEnhance.Brightness(img).enhance(factor)`: blend with black.
pub fn brightness(img: &mut Image, factor: f64) {
    let alpha = factor as f32;
    if alpha == 1.0 {
        return;
    }
    blend_const(img, alpha, 0);
}

/// `ImageEnhance.Color(img).enhance(factor)`: blend with the image's grayscale version
/// (the identity for one-channel images).
pub fn color(img: &mut Image, factor: f64) {
    let c = img.channels;
    let alpha = factor as f32;
    if c < 3 || alpha == 1.0 {
        return;
    }
    scratch::with(|s| {
        // The degenerate image: each pixel's luma in all its channels.
        let deg = &mut s.bytes;
        deg.clear();
        deg.resize(img.data.len(), 0);
        if c == 3 {
            for (d, p) in deg.chunks_exact_mut(3).zip(img.data.chunks_exact(3)) {
                d.fill(luma(p[0], p[1], p[2]));
            }
        } else {
            for (d, p) in deg.chunks_exact_mut(c).zip(img.data.chunks_exact(c)) {
                d.fill(luma(p[0], p[1], p[2]));
            }
        }
        blend_slices(&mut img.data, deg, alpha);
    });
}

/// The mean of the grayscale image rounded as `ImageEnhance.Contrast` does:
/// `int(mean + 0.5)` over every pixel, uncovered ones included.
pub fn gray_mean(img: &Image) -> u8 {
    let n = img.pixels() as u64;
    if n == 0 {
        return 0;
    }
    let s: u64 = match img.channels {
        1 => img.data.iter().map(|&v| v as u32).sum::<u32>() as u64,
        2 => img.data.iter().step_by(2).map(|&v| v as u64).sum(),
        c => img
            .data
            .chunks_exact(c)
            .map(|p| luma(p[0], p[1], p[2]) as u64)
            .sum(),
    };
    ((s as f64 / n as f64) + 0.5) as u8
}

/// `ImageEnhance.Contrast(img).enhance(factor)`: blend with a flat image of the grayscale
/// mean.
pub fn contrast(img: &mut Image, factor: f64) {
    let alpha = factor as f32;
    if alpha == 1.0 {
        return;
    }
    let m = gray_mean(img);
    blend_const(img, alpha, m);
}

/// One interior row of SMOOTH: `out[i]` from the 3x3 neighbourhood of value i in the rows
/// `up`, `mid`, `dn` (neighbours `c` values apart), for i in `c..len - c`.
///
/// Pillow computes `0.5 + sum(v k)` in single precision with k = 1/13 (5/13 at the centre)
/// and truncates: that is `round(S / 13)` for the integer S = (sum of the nine) + 4 centre,
/// never a tie (13 is odd) and never within single precision's error (< 1e-3 here) of one
/// (>= 1/26 away), so exactly `(S + 6) / 13` in integers.
#[inline]
fn smooth_row(up: &[u8], mid: &[u8], dn: &[u8], out: &mut [u8], c: usize) {
    let n = mid.len() - 2 * c;
    let (u0, u1, u2) = (&up[..n], &up[c..c + n], &up[2 * c..2 * c + n]);
    let (m0, m1, m2) = (&mid[..n], &mid[c..c + n], &mid[2 * c..2 * c + n]);
    let (d0, d1, d2) = (&dn[..n], &dn[c..c + n], &dn[2 * c..2 * c + n]);
    let out = &mut out[c..c + n];
    for i in 0..n {
        let s = u0[i] as u16
            + u1[i] as u16
            + u2[i] as u16
            + m0[i] as u16
            + 5 * m1[i] as u16
            + m2[i] as u16
            + d0[i] as u16
            + d1[i] as u16
            + d2[i] as u16;
        out[i] = ((s + 6) / 13) as u8;
    }
}

/// SMOOTH into `out` (the image's size): interior values filtered, borders copied.
fn smooth_into(img: &Image, out: &mut Vec<u8>) {
    let (w, h, c) = (img.width, img.height, img.channels);
    out.clear();
    out.extend_from_slice(&img.data);
    if w < 3 || h < 3 {
        return;
    }
    let row = w * c;
    let d = &img.data;
    for y in 1..h - 1 {
        smooth_row(
            &d[(y - 1) * row..y * row],
            &d[y * row..(y + 1) * row],
            &d[(y + 1) * row..(y + 2) * row],
            &mut out[y * row..(y + 1) * row],
            c,
        );
    }
}

/// Pillow's `ImageFilter.SMOOTH` (3x3 kernel 1 1 1 / 1 5 1 / 1 1 1 over 13) on every
/// channel, with Pillow's results; the border rows and columns are copied unfiltered.
/// Images under 3x3 are returned unchanged.
pub fn smooth(img: &Image) -> Vec<u8> {
    let mut out = Vec::new();
    smooth_into(img, &mut out);
    out
}

/// `ImageEnhance.Sharpness(img).enhance(factor)`: blend with the SMOOTH-filtered image
/// (factor > 1 sharpens).
pub fn sharpness(img: &mut Image, factor: f64) {
    let alpha = factor as f32;
    if alpha == 1.0 {
        return;
    }
    scratch::with(|s| {
        smooth_into(img, &mut s.bytes);
        blend_slices(&mut img.data, &s.bytes, alpha);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luma_matches_itu_601_and_keeps_grays() {
        for v in [0u8, 1, 77, 128, 254, 255] {
            assert_eq!(luma(v, v, v), v);
        }
        // 0.299 * 255 = 76.245 -> 76; 0.587 * 255 = 149.685 -> 150; 0.114 * 255 = 29.07 -> 29.
        assert_eq!(luma(255, 0, 0), 76);
        assert_eq!(luma(0, 255, 0), 150);
        assert_eq!(luma(0, 0, 255), 29);
    }

    #[test]
    fn brightness_scales_and_clips() {
        let mut img = Image::new(2, 1, 1, vec![100, 200]);
        brightness(&mut img, 0.5);
        assert_eq!(img.data, vec![50, 100]);
        let mut img = Image::new(2, 1, 1, vec![100, 200]);
        brightness(&mut img, 1.5);
        assert_eq!(img.data, vec![150, 255]);
    }

    #[test]
    fn contrast_zero_gives_the_rounded_mean() {
        let mut img = Image::new(2, 1, 1, vec![10, 21]);
        contrast(&mut img, 0.0);
        // mean 15.5 -> int(16.0) = 16
        assert_eq!(img.data, vec![16, 16]);
    }

    #[test]
    fn color_on_gray_is_identity_and_zero_gives_luma() {
        let mut img = Image::new(1, 1, 1, vec![77]);
        color(&mut img, 0.1);
        assert_eq!(img.data, vec![77]);
        let mut img = Image::new(1, 1, 3, vec![255, 0, 0]);
        color(&mut img, 0.0);
        assert_eq!(img.data, vec![76, 76, 76]);
    }

    #[test]
    fn smooth_keeps_borders_and_flat_regions() {
        let mut d = vec![90u8; 25];
        d[12] = 220;
        let img = Image::new(5, 5, 1, d);
        let s = smooth(&img);
        // centre: (8 * 90 + 5 * 220) / 13 = 140
        assert_eq!(s[12], 140);
        // neighbours: (12 * 90 + 220) / 13 = 100
        assert_eq!(s[7], 100);
        assert_eq!(s[0], 90);
    }
}
