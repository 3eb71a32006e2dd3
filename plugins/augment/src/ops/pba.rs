//! PBA's 15 operations with its level -> parameter mapping (levels 0..=9), in the gene
//! order of PBA's released logs.
//!
//! PBA defined its pixel magnitudes (translate by `l` pixels, cutout of side `2 l`) on
//! 32x32 CIFAR images. On larger images they scale with the side (`x side / 32`, in whole
//! pixels), so a schedule means the same on a 224x224 ImageNet crop as on CIFAR, as the
//! reference implementations of AutoAugment / RandAugment make translation a fraction of
//! the image; on images of 32 or fewer pixels a side (Fashion-MNIST's 28) they stay as
//! PBA wrote them, so those runs are unchanged.

use super::{affine, basic, enhance, point};
use rand::Rng;
use rolekd_core::plugin::image::Image;
use rolekd_core::rng::StreamRng;

/// The fill PBA's Cutout op paints (its alpha is 0: the pixels are uncovered). A
/// one-channel image gets its Pillow luma, 122.
pub const CUTOUT_FILL_RGB: [u8; 3] = [125, 122, 113];

/// One of PBA's ops. The discriminants are the op's index in the gene order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PbaOp {
    Rotate,
    TranslateX,
    TranslateY,
    Brightness,
    Color,
    Invert,
    Sharpness,
    Posterize,
    ShearX,
    Solarize,
    ShearY,
    Equalize,
    AutoContrast,
    Cutout,
    Contrast,
}

impl PbaOp {
    /// The 15 ops in gene order: Rotate, TranslateX, TranslateY, Brightness, Color, Invert,
    /// Sharpness, Posterize, ShearX, Solarize, ShearY, Equalize, AutoContrast, Cutout,
    /// Contrast.
    pub const ALL: [PbaOp; 15] = [
        PbaOp::Rotate,
        PbaOp::TranslateX,
        PbaOp::TranslateY,
        PbaOp::Brightness,
        PbaOp::Color,
        PbaOp::Invert,
        PbaOp::Sharpness,
        PbaOp::Posterize,
        PbaOp::ShearX,
        PbaOp::Solarize,
        PbaOp::ShearY,
        PbaOp::Equalize,
        PbaOp::AutoContrast,
        PbaOp::Cutout,
        PbaOp::Contrast,
    ];

    /// The op's name (as registered and as written in schedules).
    pub fn name(self) -> &'static str {
        match self {
            PbaOp::Rotate => "Rotate",
            PbaOp::TranslateX => "TranslateX",
            PbaOp::TranslateY => "TranslateY",
            PbaOp::Brightness => "Brightness",
            PbaOp::Color => "Color",
            PbaOp::Invert => "Invert",
            PbaOp::Sharpness => "Sharpness",
            PbaOp::Posterize => "Posterize",
            PbaOp::ShearX => "ShearX",
            PbaOp::Solarize => "Solarize",
            PbaOp::ShearY => "ShearY",
            PbaOp::Equalize => "Equalize",
            PbaOp::AutoContrast => "AutoContrast",
            PbaOp::Cutout => "Cutout",
            PbaOp::Contrast => "Contrast",
        }
    }

    /// The op with this name.
    pub fn from_name(name: &str) -> Option<PbaOp> {
        PbaOp::ALL.into_iter().find(|op| op.name() == name)
    }

    /// The op's position in the gene order.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether PBA flips the op's sign with probability 0.5.
    pub fn signed(self) -> bool {
        matches!(
            self,
            PbaOp::Rotate | PbaOp::TranslateX | PbaOp::TranslateY | PbaOp::ShearX | PbaOp::ShearY
        )
    }

    /// Whether the op goes through an RGB copy in PBA (and so clears the marks).
    pub fn through_rgb(self) -> bool {
        matches!(
            self,
            PbaOp::Posterize
                | PbaOp::Solarize
                | PbaOp::Equalize
                | PbaOp::AutoContrast
                | PbaOp::Invert
        )
    }

    /// A one-line description of the op and its level mapping.
    pub fn doc(self) -> &'static str {
        match self {
            PbaOp::Rotate => "PBA: rotate +-int(3 l) degrees about the centre, nearest (Pillow)",
            PbaOp::TranslateX => "PBA: translate +-l pixels horizontally (x width/32 above 32), affine (1,0,t,0,1,0)",
            PbaOp::TranslateY => "PBA: translate +-l pixels vertically (x height/32 above 32), affine (1,0,0,0,1,t)",
            PbaOp::Brightness => "PBA: ImageEnhance.Brightness, factor 0.18 l + 0.1",
            PbaOp::Color => "PBA: ImageEnhance.Color, factor 0.18 l + 0.1",
            PbaOp::Invert => "PBA: ImageOps.invert (level ignored; clears marks)",
            PbaOp::Sharpness => "PBA: ImageEnhance.Sharpness, factor 0.18 l + 0.1",
            PbaOp::Posterize => "PBA: ImageOps.posterize to 4 - int(0.4 l) bits (clears marks)",
            PbaOp::ShearX => "PBA: shear +-0.03 l, affine (1,s,0,0,1,0), no re-centring",
            PbaOp::Solarize => "PBA: ImageOps.solarize, threshold 256 - int(25.6 l) (clears marks)",
            PbaOp::ShearY => "PBA: shear +-0.03 l, affine (1,0,0,s,1,0), no re-centring",
            PbaOp::Equalize => "PBA: ImageOps.equalize (level ignored; clears marks)",
            PbaOp::AutoContrast => "PBA: ImageOps.autocontrast (level ignored; clears marks)",
            PbaOp::Cutout => "PBA: cutout square of side int(2 l) (x side/32 above 32), centre uniform, uncovered",
            PbaOp::Contrast => "PBA: ImageEnhance.Contrast, factor 0.18 l + 0.1",
        }
    }

    /// Applies the op at `level` (PBA's 0..=9 scale; the sign of signed ops is negated when
    /// `negate`). Only Cutout draws from `rng`.
    pub fn apply(self, img: &mut Image, level: u8, negate: bool, rng: &mut StreamRng) {
        let l = level as i64;
        let sign = if negate { -1.0 } else { 1.0 };
        match self {
            PbaOp::Rotate => affine::rotate(img, sign * rotate_degrees(level) as f64),
            PbaOp::TranslateX => affine::translate_x(img, sign * at_side(l, img.width) as f64),
            PbaOp::TranslateY => affine::translate_y(img, sign * at_side(l, img.height) as f64),
            PbaOp::ShearX => affine::shear_x(img, sign * shear(level)),
            PbaOp::ShearY => affine::shear_y(img, sign * shear(level)),
            PbaOp::Brightness => enhance::brightness(img, enhance_factor(level)),
            PbaOp::Color => enhance::color(img, enhance_factor(level)),
            PbaOp::Contrast => enhance::contrast(img, enhance_factor(level)),
            PbaOp::Sharpness => enhance::sharpness(img, enhance_factor(level)),
            PbaOp::Posterize => point::posterize(img, posterize_bits(level)),
            PbaOp::Solarize => point::solarize(img, solarize_threshold(level)),
            PbaOp::Invert => point::invert(img),
            PbaOp::Equalize => point::equalize(img),
            PbaOp::AutoContrast => point::autocontrast(img),
            PbaOp::Cutout => {
                let side = img.width.min(img.height);
                let size = at_side(cutout_size(level) as i64, side) as usize;
                if size > 0 {
                    // PBA draws the first coordinate, then the second, and indexes Pillow's
                    // pixel access (x, y) with them.
                    let cx = rng.random_range(0..img.width);
                    let cy = rng.random_range(0..img.height);
                    basic::cutout_at(img, cx, cy, size, &cutout_fill(img.channels));
                }
            }
        }
    }
}

/// A pixel magnitude defined at 32x32, on an image `side` pixels across: scaled by
/// `side / 32` (whole pixels) above 32, as is at or below.
pub fn at_side(pixels: i64, side: usize) -> i64 {
    pixels * side.max(32) as i64 / 32
}

/// PBA's `int_parameter(level, maxval)`: `int(level * maxval / 10)`.
pub fn int_parameter(level: u8, maxval: i64) -> i64 {
    level as i64 * maxval / 10
}

/// PBA's `float_parameter(level, maxval)`: `float(level) * maxval / 10`.
pub fn float_parameter(level: u8, maxval: f64) -> f64 {
    level as f64 * maxval / 10.0
}

/// Rotate: `int(3 l)` degrees.
pub fn rotate_degrees(level: u8) -> i64 {
    int_parameter(level, 30)
}

/// ShearX/ShearY: `0.03 l` (as PBA computes it, `l * 0.3 / 10`).
pub fn shear(level: u8) -> f64 {
    float_parameter(level, 0.3)
}

/// The ImageEnhance factor: `l * 1.8 / 10 + 0.1` (1.0 at level 5).
pub fn enhance_factor(level: u8) -> f64 {
    float_parameter(level, 1.8) + 0.1
}

/// Posterize keeps `4 - int(0.4 l)` bits.
pub fn posterize_bits(level: u8) -> u32 {
    (4 - int_parameter(level, 4)).max(1) as u32
}

/// Solarize threshold `256 - int(25.6 l)`.
pub fn solarize_threshold(level: u8) -> u32 {
    (256 - int_parameter(level, 256)).max(0) as u32
}

/// Cutout side `int(2 l)`.
pub fn cutout_size(level: u8) -> usize {
    int_parameter(level, 20) as usize
}

/// The Cutout op's fill for an image with `channels` channels.
pub fn cutout_fill(channels: usize) -> Vec<u8> {
    if channels >= 3 {
        let mut f = CUTOUT_FILL_RGB.to_vec();
        f.resize(channels, 0);
        f
    } else {
        let [r, g, b] = CUTOUT_FILL_RGB;
        vec![enhance::luma(r, g, b); channels]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_table_matches_method_md() {
        let rot: Vec<i64> = (0..10).map(rotate_degrees).collect();
        assert_eq!(rot, vec![0, 3, 6, 9, 12, 15, 18, 21, 24, 27]);
        let bits: Vec<u32> = (0..10).map(posterize_bits).collect();
        assert_eq!(bits, vec![4, 4, 4, 3, 3, 2, 2, 2, 1, 1]);
        let thr: Vec<u32> = (0..10).map(solarize_threshold).collect();
        assert_eq!(thr, vec![256, 231, 205, 180, 154, 128, 103, 77, 52, 26]);
        let cut: Vec<usize> = (0..10).map(cutout_size).collect();
        assert_eq!(cut, vec![0, 2, 4, 6, 8, 10, 12, 14, 16, 18]);
        assert_eq!(enhance_factor(5), 1.0);
        assert!((enhance_factor(9) - 1.72).abs() < 1e-12);
        assert!((shear(9) - 0.27).abs() < 1e-12);
        assert_eq!(cutout_fill(1), vec![122]);
    }

    #[test]
    fn pixel_magnitudes_scale_with_images_larger_than_cifar() {
        assert_eq!(
            (
                at_side(5, 28),
                at_side(5, 32),
                at_side(5, 64),
                at_side(5, 224)
            ),
            (5, 5, 10, 35)
        );
        assert_eq!(at_side(18, 224), 126);
        // Translate level 5 on a 64-pixel-wide image moves the content 10 pixels.
        let mut img = Image::new(64, 1, 1, (0..64).collect());
        PbaOp::TranslateX.apply(&mut img, 5, false, &mut rolekd_core::rng::Seed(0).rng());
        let first_covered = img.uncovered.iter().position(|&u| !u);
        let moved = if first_covered == Some(0) {
            img.uncovered.iter().rev().take_while(|&&u| u).count()
        } else {
            first_covered.unwrap()
        };
        assert_eq!(moved, 10);
    }

    #[test]
    fn names_round_trip_in_gene_order() {
        for (i, op) in PbaOp::ALL.into_iter().enumerate() {
            assert_eq!(op.index(), i);
            assert_eq!(PbaOp::from_name(op.name()), Some(op));
        }
        assert_eq!(PbaOp::ALL[13].name(), "Cutout");
        assert_eq!(PbaOp::from_name("rotate"), None);
    }
}
