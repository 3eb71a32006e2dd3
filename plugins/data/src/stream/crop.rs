//! Where an image is cropped and how the crop is brought to the model's size, following
//! torchvision's definitions:
//! - training: `RandomResizedCrop(size, scale, ratio)` (`transforms.RandomResizedCrop
//!   .get_params`: 10 tries of an area fraction drawn uniformly from `scale` and an aspect
//!   ratio drawn log-uniformly from `ratio`, then a centre crop clamped to `ratio`);
//! - evaluation: `Resize(resize)` (shorter side to `resize`, the longer one truncated, as
//!   torchvision computes it) then `CenterCrop(size)`.
//!
//! The crop is resized with a bilinear filter whose support grows with the reduction
//! (antialiased, Pillow's convolution, which `torchvision.transforms` uses on PIL images).

use super::codec::Decoded;
use fast_image_resize::images::{Image as FirImage, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use rand::Rng;
use rolekd_core::rng::StreamRng;

/// A crop box in an image's pixel coordinates (fractional once scaled by a decode).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CropBox {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
}

impl CropBox {
    /// The same region in an image decoded at `1/denominator` of the original size
    /// `(w, h)`, whose decoded size is `(dw, dh)`.
    pub fn scaled(self, (w, h): (usize, usize), (dw, dh): (usize, usize)) -> CropBox {
        let sx = dw as f64 / w as f64;
        let sy = dh as f64 / h as f64;
        CropBox {
            left: self.left * sx,
            top: self.top * sy,
            width: self.width * sx,
            height: self.height * sy,
        }
    }
}

/// torchvision's `RandomResizedCrop.get_params` for a `width` x `height` image, with
/// every draw from `rng`.
pub fn random_resized_box(
    width: usize,
    height: usize,
    scale: [f64; 2],
    ratio: [f64; 2],
    rng: &mut StreamRng,
) -> CropBox {
    let area = (width * height) as f64;
    let (lo, hi) = (ratio[0].ln(), ratio[1].ln());
    for _ in 0..10 {
        let target = area * uniform(rng, scale[0], scale[1]);
        let aspect = uniform(rng, lo, hi).exp();
        let w = (target * aspect).sqrt().round_ties_even() as usize;
        let h = (target / aspect).sqrt().round_ties_even() as usize;
        if w > 0 && h > 0 && w <= width && h <= height {
            let top = rng.random_range(0..=height - h);
            let left = rng.random_range(0..=width - w);
            return whole(left, top, w, h);
        }
    }
    let in_ratio = width as f64 / height as f64;
    let (w, h) = if in_ratio < ratio[0].min(ratio[1]) {
        (
            width,
            (width as f64 / ratio[0].min(ratio[1])).round_ties_even() as usize,
        )
    } else if in_ratio > ratio[0].max(ratio[1]) {
        (
            (height as f64 * ratio[0].max(ratio[1])).round_ties_even() as usize,
            height,
        )
    } else {
        (width, height)
    };
    whole((width - w) / 2, (height - h) / 2, w, h)
}

/// `[lo, hi)` uniformly (`lo` when the range is empty, as `uniform_` gives).
fn uniform(rng: &mut StreamRng, lo: f64, hi: f64) -> f64 {
    if hi > lo {
        lo + (hi - lo) * rng.random::<f64>()
    } else {
        lo
    }
}

fn whole(left: usize, top: usize, width: usize, height: usize) -> CropBox {
    CropBox {
        left: left as f64,
        top: top as f64,
        width: width as f64,
        height: height as f64,
    }
}

/// The evaluation crop of a `width` x `height` image, in its own coordinates:
/// `Resize(resize)` then `CenterCrop(out_h, out_w)`, as a box of the original image.
pub fn center_box(width: usize, height: usize, resize: usize, out: (usize, usize)) -> CropBox {
    // torchvision: the shorter side becomes `resize`, the longer `int(resize * long / short)`.
    let (rw, rh) = if width <= height {
        (
            resize,
            (resize as f64 * height as f64 / width as f64) as usize,
        )
    } else {
        (
            (resize as f64 * width as f64 / height as f64) as usize,
            resize,
        )
    };
    let (oh, ow) = out;
    // CenterCrop: offsets `int(round((size - crop) / 2))` in the resized image.
    let top = ((rh as f64 - oh as f64) / 2.0).round_ties_even();
    let left = ((rw as f64 - ow as f64) / 2.0).round_ties_even();
    let sx = width as f64 / rw as f64;
    let sy = height as f64 / rh as f64;
    CropBox {
        left: left * sx,
        top: top * sy,
        width: ow as f64 * sx,
        height: oh as f64 * sy,
    }
}

/// The largest JPEG decode reduction (1, 2, 4 or 8) that still leaves every box at least
/// the output size in both directions, so no crop is upsampled because of it.
pub fn decode_denominator(boxes: &[CropBox], out: (usize, usize)) -> usize {
    let (oh, ow) = out;
    [8, 4, 2]
        .into_iter()
        .find(|&d| {
            boxes
                .iter()
                .all(|b| b.width / d as f64 >= ow as f64 && b.height / d as f64 >= oh as f64)
        })
        .unwrap_or(1)
}

/// `img`'s region `crop` resized to `out` (height, width) with an antialiased bilinear
/// filter. A crop that is already the output size at integer offsets is copied as is.
pub fn crop_resize(img: &Decoded, crop: CropBox, out: (usize, usize)) -> Result<Vec<u8>, String> {
    let (oh, ow) = out;
    let c = img.channels;
    let exact = crop.width == ow as f64
        && crop.height == oh as f64
        && crop.left.fract() == 0.0
        && crop.top.fract() == 0.0;
    if exact {
        let (l, t) = (crop.left as usize, crop.top as usize);
        let mut data = Vec::with_capacity(oh * ow * c);
        for y in t..t + oh {
            let row = (y * img.width + l) * c;
            data.extend_from_slice(&img.data[row..row + ow * c]);
        }
        return Ok(data);
    }
    let pixel = if c == 1 {
        PixelType::U8
    } else {
        PixelType::U8x3
    };
    let src = ImageRef::new(img.width as u32, img.height as u32, &img.data, pixel)
        .map_err(|e| e.to_string())?;
    let mut dst = FirImage::new(ow as u32, oh as u32, pixel);
    let options = ResizeOptions::new()
        .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
        .crop(crop.left, crop.top, crop.width, crop.height);
    Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| e.to_string())?;
    Ok(dst.into_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rolekd_core::rng::Seed;

    #[test]
    fn random_boxes_stay_inside_and_follow_the_scale_and_ratio_ranges() {
        let (w, h) = (400, 350);
        let mut areas = Vec::new();
        for i in 0..2000 {
            let b = random_resized_box(w, h, [0.08, 1.0], [0.75, 4.0 / 3.0], &mut Seed(i).rng());
            assert!(
                b.left + b.width <= w as f64 && b.top + b.height <= h as f64,
                "{b:?}"
            );
            assert!(b.width >= 1.0 && b.height >= 1.0);
            areas.push(b.width * b.height / (w * h) as f64);
        }
        let mean = areas.iter().sum::<f64>() / areas.len() as f64;
        // Uniform area in [0.08, 1] has mean 0.54; rejections of big, elongated boxes
        // pull it down a little.
        assert!((0.42..0.56).contains(&mean), "mean area fraction {mean}");
        assert!(areas.iter().any(|&a| a < 0.12) && areas.iter().any(|&a| a > 0.9));
    }

    #[test]
    fn impossible_ratios_fall_back_to_torchvisions_centre_crop() {
        // A 1000x10 strip cannot hold any box with ratio in [3/4, 4/3] and area >= 8%:
        // the fallback keeps the full height and the widest allowed width, centred.
        let b = random_resized_box(1000, 10, [0.08, 1.0], [0.75, 4.0 / 3.0], &mut Seed(0).rng());
        assert_eq!((b.width, b.height), (13.0, 10.0));
        assert_eq!((b.left, b.top), (493.0, 0.0));
    }

    #[test]
    fn the_evaluation_box_is_resize_then_centre_crop() {
        // 500x375 -> Resize(256) gives 341x256; CenterCrop(224) starts at (58.5 -> 58, 16).
        // Each axis maps back with its own factor (341 is truncated from 341.33).
        let b = center_box(500, 375, 256, (224, 224));
        let (sx, sy) = (500.0 / 341.0, 375.0 / 256.0);
        assert!(
            (b.left - 58.0 * sx).abs() < 1e-9 && (b.top - 16.0 * sy).abs() < 1e-9,
            "{b:?}"
        );
        assert!((b.width - 224.0 * sx).abs() < 1e-9 && (b.height - 224.0 * sy).abs() < 1e-9);
        // Already at the size: the identity box.
        assert_eq!(center_box(32, 32, 32, (32, 32)), whole(0, 0, 32, 32));
    }

    #[test]
    fn the_decode_reduction_never_upsamples_a_crop() {
        let b = whole(0, 0, 900, 1000);
        assert_eq!(decode_denominator(&[b], (224, 224)), 4);
        assert_eq!(decode_denominator(&[b], (500, 224)), 2);
        assert_eq!(decode_denominator(&[b], (501, 224)), 1);
        let small = whole(0, 0, 300, 300);
        assert_eq!(decode_denominator(&[b, small], (224, 224)), 1);
        assert_eq!(
            decode_denominator(&[whole(0, 0, 1800, 1800)], (224, 224)),
            8
        );
    }

    #[test]
    fn an_exact_crop_is_copied_and_a_constant_image_stays_constant() {
        let img = Decoded {
            width: 4,
            height: 3,
            channels: 1,
            data: (0..12).collect(),
        };
        assert_eq!(
            crop_resize(&img, whole(1, 1, 2, 2), (2, 2)).unwrap(),
            [5, 6, 9, 10]
        );
        let flat = Decoded {
            width: 50,
            height: 40,
            channels: 3,
            data: vec![77; 50 * 40 * 3],
        };
        let out = crop_resize(&flat, whole(3, 5, 37, 29), (16, 16)).unwrap();
        assert!(out.iter().all(|&v| v == 77));
    }
}
