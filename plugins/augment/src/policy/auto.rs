//! `autoaugment-cifar10`, `randaugment` and `trivialaugment`: the well-known fixed
//! policies, run with this crate's Pillow-semantics ops.
//!
//! - AutoAugment's CIFAR-10 policy: the 25 sub-policies of Cubuk et al. (2019), each two
//!   (op, probability, magnitude 0..=9) steps; one sub-policy per image. AutoAugment's
//!   code used the same op implementations and level mapping as PBA, so the steps run as
//!   [`PbaOp`]s.
//! - RandAugment (n ops, magnitude bin m of `bins`) and TrivialAugmentWide (one op, a
//!   random bin of 31): the op lists and magnitude tables of torchvision.transforms.v2,
//!   applied with Pillow semantics (translate and shear signs follow torchvision's
//!   direction; uncovered pixels are marked, so they become the mean, not black).

use super::finish::{params_with_finish, Finish};
use crate::ops::pba::PbaOp;
use crate::ops::{affine, enhance, point};
use rand::Rng;
use rolekd_core::config::Params;
use rolekd_core::plugin::augment::{AugmentCtx, AugmentPolicy, PolicyCtx};
use rolekd_core::plugin::image::Image;
use rolekd_core::rng::StreamRng;
use rolekd_core::Result;

/// AutoAugment's CIFAR-10 sub-policies: ((op, prob, level), (op, prob, level)). Levels of
/// Invert, Equalize and AutoContrast are unused.
pub const AUTOAUGMENT_CIFAR10: [[(PbaOp, f64, u8); 2]; 25] = {
    use PbaOp::*;
    [
        [(Invert, 0.1, 7), (Contrast, 0.2, 6)],
        [(Rotate, 0.7, 2), (TranslateX, 0.3, 9)],
        [(Sharpness, 0.8, 1), (Sharpness, 0.9, 3)],
        [(ShearY, 0.5, 8), (TranslateY, 0.7, 9)],
        [(AutoContrast, 0.5, 8), (Equalize, 0.9, 2)],
        [(ShearY, 0.2, 7), (Posterize, 0.3, 7)],
        [(Color, 0.4, 3), (Brightness, 0.6, 7)],
        [(Sharpness, 0.3, 9), (Brightness, 0.7, 9)],
        [(Equalize, 0.6, 5), (Equalize, 0.5, 1)],
        [(Contrast, 0.6, 7), (Sharpness, 0.6, 5)],
        [(Color, 0.7, 7), (TranslateX, 0.5, 8)],
        [(Equalize, 0.3, 7), (AutoContrast, 0.4, 8)],
        [(TranslateY, 0.4, 3), (Sharpness, 0.2, 6)],
        [(Brightness, 0.9, 6), (Color, 0.2, 8)],
        [(Solarize, 0.5, 2), (Invert, 0.0, 3)],
        [(Equalize, 0.2, 0), (AutoContrast, 0.6, 0)],
        [(Equalize, 0.2, 8), (Equalize, 0.6, 4)],
        [(Color, 0.9, 9), (Equalize, 0.6, 6)],
        [(AutoContrast, 0.8, 4), (Solarize, 0.2, 8)],
        [(Brightness, 0.1, 3), (Color, 0.7, 0)],
        [(Solarize, 0.4, 5), (AutoContrast, 0.9, 3)],
        [(TranslateY, 0.9, 9), (TranslateY, 0.7, 9)],
        [(AutoContrast, 0.9, 2), (Solarize, 0.8, 3)],
        [(Equalize, 0.8, 8), (Invert, 0.1, 3)],
        [(TranslateY, 0.7, 9), (AutoContrast, 0.9, 1)],
    ]
};

params_with_finish! {
    /// Parameters of `autoaugment-cifar10`: the finishing steps alone.
    struct AutoAugmentParams {}
}

/// One AutoAugment sub-policy per image, then pad-crop, flip, cutout.
pub struct AutoAugment {
    pub finish: Finish,
}

impl AugmentPolicy for AutoAugment {
    fn augment(&self, img: &mut Image, _ctx: &AugmentCtx, rng: &mut StreamRng) {
        let sub = &AUTOAUGMENT_CIFAR10[rng.random_range(0..AUTOAUGMENT_CIFAR10.len())];
        for &(op, prob, level) in sub {
            if rng.random::<f64>() < prob {
                let negate = op.signed() && rng.random::<f64>() < 0.5;
                op.apply(img, level, negate, rng);
            }
        }
        self.finish.apply(img, rng);
    }
}

fn build_autoaugment(params: &Params, ctx: &PolicyCtx) -> Result<Box<dyn AugmentPolicy>> {
    let p: AutoAugmentParams = params.parse()?;
    Ok(Box::new(AutoAugment {
        finish: p.checked_finish(params, ctx)?,
    }))
}

/// The ops of torchvision's RandAugment and TrivialAugmentWide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TvOp {
    Identity,
    ShearX,
    ShearY,
    TranslateX,
    TranslateY,
    Rotate,
    Brightness,
    Color,
    Contrast,
    Sharpness,
    Posterize,
    Solarize,
    AutoContrast,
    Equalize,
}

impl TvOp {
    /// torchvision's augmentation space order.
    pub const ALL: [TvOp; 14] = [
        TvOp::Identity,
        TvOp::ShearX,
        TvOp::ShearY,
        TvOp::TranslateX,
        TvOp::TranslateY,
        TvOp::Rotate,
        TvOp::Brightness,
        TvOp::Color,
        TvOp::Contrast,
        TvOp::Sharpness,
        TvOp::Posterize,
        TvOp::Solarize,
        TvOp::AutoContrast,
        TvOp::Equalize,
    ];

    /// Whether the magnitude's sign is flipped with probability 0.5.
    pub fn signed(self) -> bool {
        matches!(
            self,
            TvOp::ShearX
                | TvOp::ShearY
                | TvOp::TranslateX
                | TvOp::TranslateY
                | TvOp::Rotate
                | TvOp::Brightness
                | TvOp::Color
                | TvOp::Contrast
                | TvOp::Sharpness
        )
    }

    /// The magnitude of bin `bin` of `bins` (None for ops without one), from
    /// torchvision.transforms.v2's tables: RandAugment's (`wide = false`) or
    /// TrivialAugmentWide's (`wide = true`).
    pub fn magnitude(
        self,
        bin: usize,
        bins: usize,
        width: usize,
        height: usize,
        wide: bool,
    ) -> Option<f64> {
        let lin = |a: f64, b: f64| {
            if bins <= 1 {
                a
            } else {
                a + (b - a) * bin as f64 / (bins - 1) as f64
            }
        };
        let m = match self {
            TvOp::Identity | TvOp::AutoContrast | TvOp::Equalize => return None,
            TvOp::ShearX | TvOp::ShearY => lin(0.0, if wide { 0.99 } else { 0.3 }),
            TvOp::TranslateX => lin(
                0.0,
                if wide {
                    32.0
                } else {
                    150.0 / 331.0 * width as f64
                },
            ),
            TvOp::TranslateY => lin(
                0.0,
                if wide {
                    32.0
                } else {
                    150.0 / 331.0 * height as f64
                },
            ),
            TvOp::Rotate => lin(0.0, if wide { 135.0 } else { 30.0 }),
            TvOp::Brightness | TvOp::Color | TvOp::Contrast | TvOp::Sharpness => {
                lin(0.0, if wide { 0.99 } else { 0.9 })
            }
            TvOp::Posterize => {
                let div = if bins <= 1 {
                    1.0
                } else {
                    (bins - 1) as f64 / if wide { 6.0 } else { 4.0 }
                };
                8.0 - (bin as f64 / div).round_ties_even()
            }
            TvOp::Solarize => 255.0 * lin(1.0, 0.0),
        };
        Some(m)
    }

    /// Applies the op with a (signed) magnitude, as torchvision interprets it.
    pub fn apply(self, img: &mut Image, m: f64) {
        match self {
            TvOp::Identity => {}
            // torchvision: affine with shear angle atan(m) about the top-left corner.
            TvOp::ShearX => affine::shear_x(img, -m),
            TvOp::ShearY => affine::shear_y(img, -m),
            // torchvision: translate by int(m) pixels (content moves by +t).
            TvOp::TranslateX => affine::translate_x(img, -(m.trunc())),
            TvOp::TranslateY => affine::translate_y(img, -(m.trunc())),
            TvOp::Rotate => affine::rotate(img, m),
            TvOp::Brightness => enhance::brightness(img, 1.0 + m),
            TvOp::Color => enhance::color(img, 1.0 + m),
            TvOp::Contrast => enhance::contrast(img, 1.0 + m),
            TvOp::Sharpness => enhance::sharpness(img, 1.0 + m),
            TvOp::Posterize => point::posterize(img, m as u32),
            // Values >= the (float) threshold are inverted.
            TvOp::Solarize => point::solarize(img, m.ceil() as u32),
            TvOp::AutoContrast => point::autocontrast(img),
            TvOp::Equalize => point::equalize(img),
        }
    }

    fn draw_and_apply(
        self,
        img: &mut Image,
        bin: usize,
        bins: usize,
        wide: bool,
        rng: &mut StreamRng,
    ) {
        let mut m = self
            .magnitude(bin, bins, img.width, img.height, wide)
            .unwrap_or(0.0);
        if self.signed() && rng.random::<f64>() < 0.5 {
            m = -m;
        }
        self.apply(img, m);
    }
}

params_with_finish! {
/// Parameters of `randaugment`.
struct RandAugmentParams {
    /// Ops per image (drawn uniformly, with replacement).
    #[serde(default = "default_n")]
    n: usize,
    /// Magnitude bin, 0..bins.
    #[serde(default = "default_m")]
    m: usize,
    /// Number of magnitude bins.
    #[serde(default = "default_bins")]
    bins: usize,
}
}

fn default_n() -> usize {
    2
}
fn default_m() -> usize {
    9
}
fn default_bins() -> usize {
    31
}

/// RandAugment: `n` uniformly drawn ops at magnitude bin `m`.
pub struct RandAugment {
    pub n: usize,
    pub m: usize,
    pub bins: usize,
    pub finish: Finish,
}

impl AugmentPolicy for RandAugment {
    fn augment(&self, img: &mut Image, _ctx: &AugmentCtx, rng: &mut StreamRng) {
        for _ in 0..self.n {
            let op = TvOp::ALL[rng.random_range(0..TvOp::ALL.len())];
            op.draw_and_apply(img, self.m, self.bins, false, rng);
        }
        self.finish.apply(img, rng);
    }
}

fn build_randaugment(params: &Params, ctx: &PolicyCtx) -> Result<Box<dyn AugmentPolicy>> {
    let p: RandAugmentParams = params.parse()?;
    let finish = p.checked_finish(params, ctx)?;
    if p.bins == 0 {
        return Err(params.child_error("bins", "needs at least one bin").into());
    }
    if p.m >= p.bins {
        return Err(params
            .child_error(
                "m",
                format!("magnitude bin {} is outside 0..{}", p.m, p.bins),
            )
            .into());
    }
    Ok(Box::new(RandAugment {
        n: p.n,
        m: p.m,
        bins: p.bins,
        finish,
    }))
}

params_with_finish! {
/// Parameters of `trivialaugment`.
struct TrivialParams {
    /// Number of magnitude bins (one drawn uniformly per image).
    #[serde(default = "default_bins")]
    bins: usize,
}
}

/// TrivialAugmentWide: one uniformly drawn op at a uniformly drawn magnitude bin.
pub struct TrivialAugment {
    pub bins: usize,
    pub finish: Finish,
}

impl AugmentPolicy for TrivialAugment {
    fn augment(&self, img: &mut Image, _ctx: &AugmentCtx, rng: &mut StreamRng) {
        let op = TvOp::ALL[rng.random_range(0..TvOp::ALL.len())];
        let bin = rng.random_range(0..self.bins);
        op.draw_and_apply(img, bin, self.bins, true, rng);
        self.finish.apply(img, rng);
    }
}

fn build_trivialaugment(params: &Params, ctx: &PolicyCtx) -> Result<Box<dyn AugmentPolicy>> {
    let p: TrivialParams = params.parse()?;
    let finish = p.checked_finish(params, ctx)?;
    if p.bins == 0 {
        return Err(params.child_error("bins", "needs at least one bin").into());
    }
    Ok(Box::new(TrivialAugment {
        bins: p.bins,
        finish,
    }))
}

rolekd_core::register_plugin!(
    AugmentPolicy,
    "autoaugment-cifar10",
    "AutoAugment's 25 CIFAR-10 sub-policies (one per image), then pad-crop, flip, cutout",
    build_autoaugment
);
rolekd_core::register_plugin!(
    AugmentPolicy,
    "randaugment",
    "RandAugment (n ops at magnitude bin m of bins; torchvision v2 tables), then pad-crop, flip, cutout",
    build_randaugment
);
rolekd_core::register_plugin!(
    AugmentPolicy,
    "trivialaugment",
    "TrivialAugmentWide (one op, random bin of 31; torchvision v2 tables), then pad-crop, flip, cutout",
    build_trivialaugment
);

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn torchvision_magnitude_tables() {
        let m = |op: TvOp, bin, wide| op.magnitude(bin, 31, 32, 32, wide).unwrap();
        assert_eq!(m(TvOp::Rotate, 30, false), 30.0);
        assert_eq!(m(TvOp::Rotate, 30, true), 135.0);
        assert!((m(TvOp::ShearX, 9, false) - 0.09).abs() < 1e-12);
        assert!((m(TvOp::TranslateX, 30, false) - 150.0 / 331.0 * 32.0).abs() < 1e-12);
        assert_eq!(m(TvOp::TranslateY, 15, true), 16.0);
        // Posterize bits: 8 - round(bin / 7.5) (RandAugment), 8 - round(bin / 5) (wide).
        let ra: Vec<f64> = [0, 3, 4, 11, 12, 30]
            .iter()
            .map(|&b| m(TvOp::Posterize, b, false))
            .collect();
        assert_eq!(ra, vec![8.0, 8.0, 7.0, 7.0, 6.0, 4.0]);
        assert_eq!(m(TvOp::Posterize, 30, true), 2.0);
        assert_eq!(m(TvOp::Solarize, 0, false), 255.0);
        assert_eq!(m(TvOp::Solarize, 30, false), 0.0);
        assert_eq!(TvOp::Equalize.magnitude(3, 31, 32, 32, false), None);
    }

    #[test]
    fn autoaugment_table_is_the_papers() {
        assert_eq!(AUTOAUGMENT_CIFAR10.len(), 25);
        let ops: usize = AUTOAUGMENT_CIFAR10
            .iter()
            .flatten()
            .filter(|s| s.0 == PbaOp::Equalize)
            .count();
        assert_eq!(ops, 9);
        assert!(AUTOAUGMENT_CIFAR10
            .iter()
            .flatten()
            .all(|s| s.2 <= 9 && (0.0..=1.0).contains(&s.1)));
    }

    #[test]
    fn policies_build_run_and_are_seeded() {
        let ctx = PolicyCtx {
            channels: 3,
            height: 16,
            width: 16,
            epochs: 1,
        };
        let base = Image::new(16, 16, 3, (0..768).map(|i| (i * 13 % 256) as u8).collect());
        for (name, f) in [
            (
                "autoaugment-cifar10",
                build_autoaugment as fn(&Params, &PolicyCtx) -> Result<Box<dyn AugmentPolicy>>,
            ),
            ("randaugment", build_randaugment),
            ("trivialaugment", build_trivialaugment),
        ] {
            let pol = f(
                &Params::from_yaml(&format!("{{type: {name}, pad: 0, flip: false}}")).unwrap(),
                &ctx,
            )
            .unwrap();
            let run = |seed| {
                let mut a = base.clone();
                pol.augment(
                    &mut a,
                    &AugmentCtx {
                        epoch: 0,
                        epochs: 1,
                    },
                    &mut StreamRng::seed_from_u64(seed),
                );
                a
            };
            assert_eq!(run(3), run(3), "{name}");
            let changed = (0..50).filter(|&s| run(s) != base).count();
            assert!(changed > 10, "{name}: {changed}");
        }
        let e = build_randaugment(&Params::from_yaml("{m: 31}").unwrap(), &ctx)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("m"), "{e}");
    }
}
