//! `none` and `standard`: the baseline policies.

use super::finish::{params_with_finish, Finish};
use rolekd_core::config::Params;
use rolekd_core::plugin::augment::{AugmentCtx, AugmentPolicy, PolicyCtx};
use rolekd_core::plugin::image::Image;
use rolekd_core::rng::StreamRng;
use rolekd_core::Result;
use serde::Deserialize;

/// Leaves every image as it is.
pub struct NoAugment;

impl AugmentPolicy for NoAugment {
    fn augment(&self, _img: &mut Image, _ctx: &AugmentCtx, _rng: &mut StreamRng) {}
}

fn build_none(params: &Params, _ctx: &PolicyCtx) -> Result<Box<dyn AugmentPolicy>> {
    params.parse::<NoParams>()?;
    Ok(Box::new(NoAugment))
}

/// `none` takes no parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

params_with_finish! {
    /// Parameters of `standard`: the finishing steps alone.
    pub struct StandardParams {}
}

/// Pad-and-crop, flip and optional cutout.
pub struct Standard {
    pub finish: Finish,
}

impl AugmentPolicy for Standard {
    fn augment(&self, img: &mut Image, _ctx: &AugmentCtx, rng: &mut StreamRng) {
        self.finish.apply(img, rng);
    }
}

fn build_standard(params: &Params, ctx: &PolicyCtx) -> Result<Box<dyn AugmentPolicy>> {
    let p: StandardParams = params.parse()?;
    Ok(Box::new(Standard {
        finish: p.checked_finish(params, ctx)?,
    }))
}

rolekd_core::register_plugin!(AugmentPolicy, "none", "no augmentation", build_none);
rolekd_core::register_plugin!(
    AugmentPolicy,
    "standard",
    "pad (4) and random crop, random horizontal flip, optional cutout",
    build_standard
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::finish::CropOffsets;
    use rand::SeedableRng;

    fn ctx() -> PolicyCtx {
        PolicyCtx {
            channels: 3,
            height: 32,
            width: 32,
            epochs: 10,
        }
    }

    fn img() -> Image {
        Image::new(
            32,
            32,
            3,
            (0..32 * 32 * 3).map(|i| (i % 200) as u8 + 20).collect(),
        )
    }

    fn build(yaml: &str) -> Result<Box<dyn AugmentPolicy>> {
        build_standard(&Params::from_yaml(yaml).unwrap(), &ctx())
    }

    const ACTX: AugmentCtx = AugmentCtx {
        epoch: 0,
        epochs: 10,
    };

    #[test]
    fn defaults_and_unknown_fields() {
        let p: StandardParams = Params::from_yaml("type: standard")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            p.finish(),
            Finish {
                pad: 4,
                crop_offsets: CropOffsets::Full,
                flip: true,
                cutout: 0
            }
        );
        let err = build("{type: standard, pads: 2}")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("pads"), "{err}");
        let p: StandardParams = Params::from_yaml("{crop_offsets: pba}")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(p.finish().max_offset(), 7);
        assert!(build("{pad: 40}").is_err());
    }

    #[test]
    fn none_is_identity() {
        let pol = build_none(&Params::from_yaml("none").unwrap(), &ctx()).unwrap();
        let mut a = img();
        pol.augment(&mut a, &ACTX, &mut StreamRng::seed_from_u64(1));
        assert_eq!(a, img());
        assert!(build_none(&Params::from_yaml("{x: 1}").unwrap(), &ctx()).is_err());
    }

    #[test]
    fn seeded_and_shapes_kept() {
        let pol = build("{cutout: 8}").unwrap();
        let mut outs = Vec::new();
        for seed in [5u64, 5, 6] {
            let mut a = img();
            pol.augment(&mut a, &ACTX, &mut StreamRng::seed_from_u64(seed));
            assert_eq!(
                (a.width, a.height, a.channels, a.data.len()),
                (32, 32, 3, 3072)
            );
            assert_eq!(a.uncovered.len(), 1024);
            outs.push(a);
        }
        assert_eq!(outs[0], outs[1]);
        assert_ne!(outs[0], outs[2]);
    }

    /// Over many draws: every offset -4..=4 occurs on both axes, the flip happens about
    /// half the time, and each image carries a clipped 8x8 cutout plus the pad border.
    #[test]
    fn offsets_flip_and_cutout_statistics() {
        let pol = build("{cutout: 8}").unwrap();
        // Each pixel encodes its own coordinates: R = x + 100, G = y + 100.
        let mut data = vec![50u8; 32 * 32 * 3];
        for p in 0..1024 {
            data[p * 3] = (p % 32) as u8 + 100;
            data[p * 3 + 1] = (p / 32) as u8 + 100;
        }
        let base = Image::new(32, 32, 3, data);
        let mut shifts = std::collections::BTreeSet::new();
        let (mut flips, mut seen) = (0, 0);
        for seed in 0..2000u64 {
            let mut a = base.clone();
            pol.augment(&mut a, &ACTX, &mut StreamRng::seed_from_u64(seed));
            let marked = a.uncovered.iter().filter(|&&u| u).count();
            assert!(
                (16..=64 + 2 * 4 * 32 + 2 * 4 * 32).contains(&marked),
                "{marked}"
            );
            for p in 0..1024 {
                if a.uncovered[p] {
                    assert_eq!(&a.data[p * 3..p * 3 + 3], &[0, 0, 0]);
                }
            }
            let (x, y) = (4usize, 16usize);
            if a.uncovered[y * 32 + x] {
                continue;
            }
            seen += 1;
            let sx = a.at(x, y, 0) as isize - 100;
            let sy = a.at(x, y, 1) as isize - 100;
            let dy = sy - y as isize;
            let (dx_plain, dx_flip) = (sx - x as isize, sx - (31 - x) as isize);
            if dx_plain.abs() <= 4 {
                shifts.insert((dx_plain, dy));
            } else {
                assert!(dx_flip.abs() <= 4, "{sx}");
                flips += 1;
                shifts.insert((dx_flip, dy));
            }
        }
        let xs: std::collections::BTreeSet<isize> = shifts.iter().map(|s| s.0).collect();
        let ys: std::collections::BTreeSet<isize> = shifts.iter().map(|s| s.1).collect();
        assert_eq!(xs, (-4..=4).collect());
        assert_eq!(ys, (-4..=4).collect());
        assert!(
            flips * 10 > seen * 4 && flips * 10 < seen * 6,
            "{flips} of {seen}"
        );
    }
}
