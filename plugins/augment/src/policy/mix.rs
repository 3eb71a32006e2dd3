//! `mixup` and `cutmix`: batch-level mixing after a per-image base policy. As in
//! torchvision.transforms.v2, one λ ~ Beta(α, α) per batch and every image is mixed with
//! its neighbour in the batch rolled by one (image i with image i - 1); the soft targets
//! are mixed with the same weight (CutMix: the pasted area's share).

use rand::Rng;
use rolekd_core::config::Params;
use rolekd_core::plugin::augment::{AugmentCtx, AugmentPolicy, MixBatch, PolicyCtx};
use rolekd_core::plugin::image::Image;
use rolekd_core::rng::StreamRng;
use rolekd_core::Result;
use serde::Deserialize;

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut StreamRng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>(); // (0, 1]
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A Gamma(shape, 1) draw (Marsaglia and Tsang; shapes under 1 boosted).
pub fn gamma(shape: f64, rng: &mut StreamRng) -> f64 {
    if shape < 1.0 {
        let u = 1.0 - rng.random::<f64>();
        return gamma(shape + 1.0, rng) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = normal(rng);
        let v = 1.0 + c * x;
        if v <= 0.0 {
            continue;
        }
        let v = v * v * v;
        let u = 1.0 - rng.random::<f64>();
        if u < 1.0 - 0.0331 * x.powi(4) || u.ln() < 0.5 * x * x + d * (1.0 - v + v.ln()) {
            return d * v;
        }
    }
}

/// A Beta(a, b) draw.
pub fn beta(a: f64, b: f64, rng: &mut StreamRng) -> f64 {
    let x = gamma(a, rng);
    let y = gamma(b, rng);
    if x + y == 0.0 {
        0.5
    } else {
        x / (x + y)
    }
}

/// Mixes `batch` by MixUp with weight `lam` on each image itself.
pub fn mixup(batch: &mut MixBatch<'_>, lam: f32) {
    let [n, c, h, w] = batch.shape;
    let per = c * h * w;
    if n < 2 {
        return;
    }
    roll_mix(batch.images, n, per, |_, own, other| {
        lam * own + (1.0 - lam) * other
    });
    roll_mix(batch.targets, n, batch.classes, |_, own, other| {
        lam * own + (1.0 - lam) * other
    });
}

/// Mixes `batch` by CutMix: the box `[x1, x2) x [y1, y2)` of every image comes from its
/// rolled neighbour; targets get weight 1 - box area / image area on the image itself.
pub fn cutmix(batch: &mut MixBatch<'_>, x1: usize, y1: usize, x2: usize, y2: usize) -> f32 {
    let [n, c, h, w] = batch.shape;
    let per = c * h * w;
    let lam = 1.0 - ((x2 - x1) * (y2 - y1)) as f32 / (w * h) as f32;
    if n < 2 {
        return lam;
    }
    roll_mix(batch.images, n, per, |j, own, other| {
        let (y, x) = ((j % (h * w)) / w, j % w);
        if (x1..x2).contains(&x) && (y1..y2).contains(&y) {
            other
        } else {
            own
        }
    });
    roll_mix(batch.targets, n, batch.classes, |_, own, other| {
        lam * own + (1.0 - lam) * other
    });
    lam
}

/// `data[i] = f(j, data[i], old data[i - 1])` for every element j of every item i, with
/// item -1 being the last (torch's roll by one).
fn roll_mix(data: &mut [f32], n: usize, per: usize, f: impl Fn(usize, f32, f32) -> f32) {
    let last: Vec<f32> = data[(n - 1) * per..n * per].to_vec();
    // Walk backwards so item i - 1 is still unmixed when item i reads it.
    for i in (1..n).rev() {
        let (head, tail) = data.split_at_mut(i * per);
        let prev = &head[(i - 1) * per..];
        for (j, v) in tail[..per].iter_mut().enumerate() {
            *v = f(j, *v, prev[j]);
        }
    }
    for (j, v) in data[..per].iter_mut().enumerate() {
        *v = f(j, *v, last[j]);
    }
}

/// Parameters of `mixup` and `cutmix`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MixParams {
    /// α of the Beta(α, α) mixing weight.
    #[serde(default = "default_alpha")]
    alpha: f64,
    /// The per-image policy applied first (any policy entry; default `standard`); built
    /// from its own located entry by [`super::base_policy`].
    #[allow(dead_code)]
    #[serde(default)]
    base: Option<rolekd_core::yaml::Value>,
}

fn default_alpha() -> f64 {
    1.0
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    MixUp,
    CutMix,
}

/// A base policy per image, then MixUp or CutMix per batch.
pub struct Mix {
    kind: Kind,
    alpha: f64,
    base: Box<dyn AugmentPolicy>,
}

impl AugmentPolicy for Mix {
    fn augment(&self, img: &mut Image, ctx: &AugmentCtx, rng: &mut StreamRng) {
        self.base.augment(img, ctx, rng);
    }

    fn mix_batch(&self, batch: &mut MixBatch<'_>, ctx: &AugmentCtx, rng: &mut StreamRng) -> bool {
        self.base.mix_batch(batch, ctx, rng);
        let lam = beta(self.alpha, self.alpha, rng);
        match self.kind {
            Kind::MixUp => mixup(batch, lam as f32),
            Kind::CutMix => {
                let [_, _, h, w] = batch.shape;
                let rx = rng.random_range(0..w);
                let ry = rng.random_range(0..h);
                let r = 0.5 * (1.0 - lam).sqrt();
                let (rw, rh) = ((r * w as f64) as usize, (r * h as f64) as usize);
                let (x1, y1) = (rx.saturating_sub(rw), ry.saturating_sub(rh));
                let (x2, y2) = ((rx + rw).min(w), (ry + rh).min(h));
                cutmix(batch, x1, y1, x2, y2);
            }
        }
        true
    }
}

fn build_mix(kind: Kind, params: &Params, ctx: &PolicyCtx) -> Result<Box<dyn AugmentPolicy>> {
    let p: MixParams = params.parse()?;
    params.positive("alpha", p.alpha)?;
    let base = super::base_policy(params, ctx)?;
    Ok(Box::new(Mix {
        kind,
        alpha: p.alpha,
        base,
    }))
}

fn build_mixup(params: &Params, ctx: &PolicyCtx) -> Result<Box<dyn AugmentPolicy>> {
    build_mix(Kind::MixUp, params, ctx)
}

fn build_cutmix(params: &Params, ctx: &PolicyCtx) -> Result<Box<dyn AugmentPolicy>> {
    build_mix(Kind::CutMix, params, ctx)
}

rolekd_core::register_plugin!(
    AugmentPolicy,
    "mixup",
    "MixUp per batch (lambda ~ Beta(alpha, alpha), soft targets) after a base policy (default standard)",
    build_mixup
);
rolekd_core::register_plugin!(
    AugmentPolicy,
    "cutmix",
    "CutMix per batch (lambda ~ Beta(alpha, alpha), soft targets) after a base policy (default standard)",
    build_cutmix
);

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn batch_data(n: usize, per: usize) -> (Vec<f32>, Vec<f32>) {
        let images = (0..n * per).map(|i| (i / per) as f32).collect();
        let mut targets = vec![0.0; n * 3];
        for i in 0..n {
            targets[i * 3 + i % 3] = 1.0;
        }
        (images, targets)
    }

    #[test]
    fn beta_has_the_right_mean_and_spread() {
        let mut rng = StreamRng::seed_from_u64(9);
        for (a, b) in [(1.0, 1.0), (0.4, 0.4), (2.0, 5.0)] {
            let n = 20000;
            let xs: Vec<f64> = (0..n).map(|_| beta(a, b, &mut rng)).collect();
            assert!(xs.iter().all(|x| (0.0..=1.0).contains(x)));
            let mean = xs.iter().sum::<f64>() / n as f64;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            let (m, v) = (a / (a + b), a * b / ((a + b).powi(2) * (a + b + 1.0)));
            assert!((mean - m).abs() < 0.01, "{a},{b}: mean {mean}");
            assert!((var - v).abs() < 0.01, "{a},{b}: var {var}");
        }
    }

    #[test]
    fn mixup_mixes_with_the_rolled_neighbour() {
        let (mut images, mut targets) = batch_data(3, 4);
        let mut b = MixBatch {
            images: &mut images,
            targets: &mut targets,
            shape: [3, 1, 2, 2],
            classes: 3,
        };
        mixup(&mut b, 0.75);
        // image 0 mixes with image 2, image 1 with 0, image 2 with 1.
        assert_eq!(&images[0..4], &[0.5; 4]);
        assert_eq!(&images[4..8], &[0.75; 4]);
        assert_eq!(&images[8..12], &[1.75; 4]);
        assert_eq!(&targets[0..3], &[0.75, 0.0, 0.25]);
        for row in targets.chunks(3) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn cutmix_pastes_the_box_and_weights_by_area() {
        let (mut images, mut targets) = batch_data(2, 16);
        let mut b = MixBatch {
            images: &mut images,
            targets: &mut targets,
            shape: [2, 1, 4, 4],
            classes: 3,
        };
        let lam = cutmix(&mut b, 1, 0, 3, 2);
        assert_eq!(lam, 0.75);
        // Image 1's box comes from image 0.
        let img1 = &images[16..32];
        for y in 0..4 {
            for x in 0..4 {
                let inside = (1..3).contains(&x) && y < 2;
                assert_eq!(img1[y * 4 + x], if inside { 0.0 } else { 1.0 });
            }
        }
        assert_eq!(&targets[3..6], &[0.25, 0.75, 0.0]);
    }

    #[test]
    fn policy_mixes_and_reports_soft_targets() {
        let ctx = PolicyCtx {
            channels: 1,
            height: 4,
            width: 4,
            epochs: 1,
        };
        let pol = build_cutmix(
            &Params::from_yaml("{alpha: 1.0, base: {type: none}}").unwrap(),
            &ctx,
        )
        .unwrap();
        let (mut images, mut targets) = batch_data(4, 16);
        let before = targets.clone();
        let mut b = MixBatch {
            images: &mut images,
            targets: &mut targets,
            shape: [4, 1, 4, 4],
            classes: 3,
        };
        let actx = AugmentCtx {
            epoch: 0,
            epochs: 1,
        };
        assert!(pol.mix_batch(&mut b, &actx, &mut StreamRng::seed_from_u64(1)));
        for row in targets.chunks(3) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        let _ = before;
        assert!(build_mixup(&Params::from_yaml("{alpha: 0}").unwrap(), &ctx).is_err());
        let e = build_mixup(
            &Params::from_yaml("{base: {type: nonesuch}}").unwrap(),
            &ctx,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("nonesuch"), "{e}");
        assert!(build_mixup(&Params::from_yaml("mixup").unwrap(), &ctx).is_ok());
    }
}
