//! The ops as registered plugins (kind `augmentation op`): PBA's 15 plus Identity, FlipLR,
//! PadCrop and the fixed-size `cutout`.

use crate::ops::basic;
use crate::ops::pba::PbaOp;
use crate::policy::finish::{default_pad, CropOffsets, Finish};
use rolekd_core::config::Params;
use rolekd_core::plugin::augment::AugmentOp;
use rolekd_core::plugin::image::Image;
use rolekd_core::rng::StreamRng;
use rolekd_core::Result;
use serde::Deserialize;

/// The ops take no parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

/// One of PBA's 15 ops.
pub struct PbaOpPlugin(pub PbaOp);

impl AugmentOp for PbaOpPlugin {
    fn apply(&self, img: &mut Image, level: u8, negate: bool, rng: &mut StreamRng) {
        self.0.apply(img, level, negate, rng);
    }

    fn signed(&self) -> bool {
        self.0.signed()
    }
}

macro_rules! pba_op {
    ($build:ident, $op:ident, $doc:literal) => {
        fn $build(params: &Params) -> Result<Box<dyn AugmentOp>> {
            params.parse::<NoParams>()?;
            Ok(Box::new(PbaOpPlugin(PbaOp::$op)))
        }
        rolekd_core::register_plugin!(AugmentOp, stringify!($op), $doc, $build);
    };
}

pba_op!(
    build_rotate,
    Rotate,
    "PBA: rotate +-int(3 l) degrees about the centre, nearest (Pillow)"
);
pba_op!(
    build_translate_x,
    TranslateX,
    "PBA: translate +-l pixels horizontally (Pillow affine)"
);
pba_op!(
    build_translate_y,
    TranslateY,
    "PBA: translate +-l pixels vertically (Pillow affine)"
);
pba_op!(
    build_brightness,
    Brightness,
    "PBA: ImageEnhance.Brightness, factor 0.18 l + 0.1"
);
pba_op!(
    build_color,
    Color,
    "PBA: ImageEnhance.Color, factor 0.18 l + 0.1"
);
pba_op!(
    build_invert,
    Invert,
    "PBA: ImageOps.invert (level ignored; clears marks)"
);
pba_op!(
    build_sharpness,
    Sharpness,
    "PBA: ImageEnhance.Sharpness, factor 0.18 l + 0.1"
);
pba_op!(
    build_posterize,
    Posterize,
    "PBA: ImageOps.posterize to 4 - int(0.4 l) bits (clears marks)"
);
pba_op!(
    build_shear_x,
    ShearX,
    "PBA: shear +-0.03 l, affine (1,s,0,0,1,0), no re-centring"
);
pba_op!(
    build_solarize,
    Solarize,
    "PBA: ImageOps.solarize, threshold 256 - int(25.6 l) (clears marks)"
);
pba_op!(
    build_shear_y,
    ShearY,
    "PBA: shear +-0.03 l, affine (1,0,0,s,1,0), no re-centring"
);
pba_op!(
    build_equalize,
    Equalize,
    "PBA: ImageOps.equalize (level ignored; clears marks)"
);
pba_op!(
    build_autocontrast,
    AutoContrast,
    "PBA: ImageOps.autocontrast (level ignored; clears marks)"
);
pba_op!(
    build_cutout_op,
    Cutout,
    "PBA: cutout square of side int(2 l), centre uniform, uncovered"
);
pba_op!(
    build_contrast,
    Contrast,
    "PBA: ImageEnhance.Contrast, factor 0.18 l + 0.1"
);

/// Leaves the image as it is.
pub struct Identity;

impl AugmentOp for Identity {
    fn apply(&self, _img: &mut Image, _level: u8, _negate: bool, _rng: &mut StreamRng) {}
}

fn build_identity(params: &Params) -> Result<Box<dyn AugmentOp>> {
    params.parse::<NoParams>()?;
    Ok(Box::new(Identity))
}

/// Mirrors the image left-right (always; a policy decides how often).
pub struct FlipLr;

impl AugmentOp for FlipLr {
    fn apply(&self, img: &mut Image, _level: u8, _negate: bool, _rng: &mut StreamRng) {
        basic::flip_lr(img);
    }
}

fn build_flip(params: &Params) -> Result<Box<dyn AugmentOp>> {
    params.parse::<NoParams>()?;
    Ok(Box::new(FlipLr))
}

/// Parameters of `PadCrop`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PadCropParams {
    /// Padding on each side in pixels (padded pixels are uncovered).
    #[serde(default = "default_pad")]
    pad: usize,
    /// `full` (offsets 0..=2*pad) or `pba` (0..2*pad, the original PBA code).
    #[serde(default)]
    crop_offsets: CropOffsets,
}

/// Pad and random crop (level ignored).
pub struct PadCrop {
    pub pad: usize,
    pub max_offset: usize,
}

impl AugmentOp for PadCrop {
    fn apply(&self, img: &mut Image, _level: u8, _negate: bool, rng: &mut StreamRng) {
        basic::pad_crop(img, self.pad, self.max_offset, rng);
    }
}

fn build_pad_crop(params: &Params) -> Result<Box<dyn AugmentOp>> {
    let p: PadCropParams = params.parse()?;
    let finish = Finish {
        pad: p.pad,
        crop_offsets: p.crop_offsets,
        flip: false,
        cutout: 0,
    };
    Ok(Box::new(PadCrop {
        pad: p.pad,
        max_offset: finish.max_offset(),
    }))
}

/// Parameters of `cutout`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CutoutParams {
    /// Side of the square in pixels (level ignored); 16 for CIFAR-10, 8 in PBA's CIFAR-100
    /// runs.
    #[serde(default = "default_cutout")]
    size: usize,
}

fn default_cutout() -> usize {
    16
}

/// The final cutout of PBA's pipeline: a fixed-size square, centre uniform, clipped,
/// uncovered (value 0).
pub struct FixedCutout {
    pub size: usize,
}

impl AugmentOp for FixedCutout {
    fn apply(&self, img: &mut Image, _level: u8, _negate: bool, rng: &mut StreamRng) {
        basic::cutout(img, self.size, &[0], rng);
    }
}

fn build_fixed_cutout(params: &Params) -> Result<Box<dyn AugmentOp>> {
    let p: CutoutParams = params.parse()?;
    Ok(Box::new(FixedCutout { size: p.size }))
}

rolekd_core::register_plugin!(
    AugmentOp,
    "Identity",
    "leaves the image unchanged",
    build_identity
);
rolekd_core::register_plugin!(AugmentOp, "FlipLR", "mirror left-right", build_flip);
rolekd_core::register_plugin!(
    AugmentOp,
    "PadCrop",
    "pad (uncovered) and random crop back to size; params pad, crop_offsets",
    build_pad_crop
);
rolekd_core::register_plugin!(
    AugmentOp,
    "cutout",
    "fixed-size cutout square (param size, default 16), centre uniform, uncovered",
    build_fixed_cutout
);

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rolekd_core::registry;

    #[test]
    fn every_op_is_registered_and_builds() {
        let mut names: Vec<&str> = PbaOp::ALL.iter().map(|o| o.name()).collect();
        names.extend(["Identity", "FlipLR", "PadCrop", "cutout"]);
        let img = Image::new(8, 8, 3, (0..192).map(|i| i as u8).collect());
        for name in names {
            let f = registry::augment_op(name).unwrap_or_else(|e| panic!("{e}"));
            let op = f(&Params::from_yaml(name).unwrap()).unwrap();
            let mut a = img.clone();
            op.apply(&mut a, 9, false, &mut StreamRng::seed_from_u64(1));
            assert_eq!(a.data.len(), img.data.len(), "{name}");
        }
        let f = registry::augment_op("Rotate").unwrap();
        assert!(f(&Params::from_yaml("{type: Rotate}").unwrap())
            .unwrap()
            .signed());
        assert!(f(&Params::from_yaml("{type: Rotate, level: 3}").unwrap()).is_err());
        let f = registry::augment_op("cutout").unwrap();
        let op = f(&Params::from_yaml("{size: 4}").unwrap()).unwrap();
        let mut a = img.clone();
        op.apply(&mut a, 0, false, &mut StreamRng::seed_from_u64(2));
        let marked = a.uncovered.iter().filter(|&&u| u).count();
        assert!((4..=16).contains(&marked), "{marked}");
    }
}
