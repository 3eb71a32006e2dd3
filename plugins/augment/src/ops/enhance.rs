//! Pillow's `ImageEnhance` (Brightness, Color, Contrast, Sharpness): a blend between a
//! "degenerate" image and the original, `out = degenerate + factor (img - degenerate)`,
//! computed as Pillow's `ImagingBlend` computes it: in single precision with the factor
//! rounded to `f32`, truncated to u8 (and clipped to 0..=255 when the factor is outside
//! [0, 1]). The marks (Pillow's alpha channel) are left as they are, and uncovered pixels
//! are blended like any other (their values take part, as in Pillow's RGBA images).

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
                ss += at(x - 1, y + 1, k) * k1 + at(x, y + 1, k) * k1 + at(x + 1, y + 1, k) * k1;
                ss += at(x - 1, y, k) * k1 + at(x, y, k) * k5 + at(x + 1, y, k) * k1;
                ss += at(x - 1, y - 1, k) * k1 + at(x, y - 1, k) * k1 + at(x + 1, y - 1, k) * k1;
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
