//! `gaussian-noise` (an augmentation op) and `noisy` (a policy that applies one op).

use rand::Rng;
use rolekd_core::config::Params;
use rolekd_core::plugin::augment::{AugmentCtx, AugmentOp, AugmentPolicy, MixBatch, PolicyCtx};
use rolekd_core::plugin::image::Image;
use rolekd_core::registry;
use rolekd_core::rng::StreamRng;
use rolekd_core::yaml::Value;
use rolekd_core::{register_plugin, Result};
use serde::Deserialize;

/// Parameters of `gaussian-noise`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoiseParams {
    /// Noise standard deviation per magnitude level, in 0..=255 pixel units (default 3):
    /// level l adds N(0, (sigma_per_level * (l + 1))^2) to every value.
    #[serde(default = "default_sigma")]
    sigma_per_level: f64,
}

fn default_sigma() -> f64 {
    3.0
}

/// Adds clipped Gaussian noise to every pixel value.
struct GaussianNoise {
    sigma_per_level: f64,
}

impl AugmentOp for GaussianNoise {
    fn apply(&self, img: &mut Image, level: u8, _negate: bool, rng: &mut StreamRng) {
        let sigma = self.sigma_per_level * (level as f64 + 1.0);
        for v in img.data.iter_mut() {
            // Box-Muller from two uniforms of the image's own stream.
            let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
            let u2: f64 = rng.random();
            let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
            *v = (*v as f64 + sigma * z).round().clamp(0.0, 255.0) as u8;
        }
    }
}

fn build_noise(params: &Params) -> Result<Box<dyn AugmentOp>> {
    let p: NoiseParams = params.parse()?;
    if !(p.sigma_per_level.is_finite() && p.sigma_per_level >= 0.0) {
        return Err(params
            .child_error("sigma_per_level", "must be a non-negative number")
            .into());
    }
    Ok(Box::new(GaussianNoise {
        sigma_per_level: p.sigma_per_level,
    }))
}

register_plugin!(
    AugmentOp,
    "gaussian-noise",
    "example plugin: add N(0, (sigma_per_level (l + 1))^2) noise to every pixel, clipped",
    build_noise
);

/// Parameters of `noisy`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoisyParams {
    /// The op, by name (any registered augmentation op; default `gaussian-noise`).
    #[serde(default = "default_op")]
    op: String,
    /// Probability of applying it to an image (default 0.5).
    #[serde(default = "default_prob")]
    prob: f64,
    /// Its magnitude level, 0..=9 (default 3).
    #[serde(default = "default_level")]
    level: u8,
    /// The policy that runs afterwards (default `standard`).
    #[serde(default)]
    base: Option<Value>,
}

fn default_op() -> String {
    "gaussian-noise".into()
}
fn default_prob() -> f64 {
    0.5
}
fn default_level() -> u8 {
    3
}

/// One op with a probability, then a base policy.
struct Noisy {
    op: Box<dyn AugmentOp>,
    prob: f64,
    level: u8,
    base: Box<dyn AugmentPolicy>,
}

impl AugmentPolicy for Noisy {
    fn augment(&self, img: &mut Image, ctx: &AugmentCtx, rng: &mut StreamRng) {
        if rng.random::<f64>() < self.prob {
            let negate = self.op.signed() && rng.random::<bool>();
            self.op.apply(img, self.level, negate, rng);
        }
        self.base.augment(img, ctx, rng);
    }

    fn mix_batch(&self, batch: &mut MixBatch<'_>, ctx: &AugmentCtx, rng: &mut StreamRng) -> bool {
        self.base.mix_batch(batch, ctx, rng)
    }
}

fn build_noisy(params: &Params, ctx: &PolicyCtx) -> Result<Box<dyn AugmentPolicy>> {
    let p: NoisyParams = params.parse()?;
    if !(0.0..=1.0).contains(&p.prob) {
        return Err(params.child_error("prob", "must be in 0..=1").into());
    }
    if p.level > 9 {
        return Err(params.child_error("level", "must be in 0..=9").into());
    }
    // Lookups by name go to rolekd-run's registry (the host hands it over when it loads
    // the library), so built-in ops and policies are found here too.
    let op_factory =
        registry::augment_op(&p.op).map_err(|e| params.child_error("op", e.to_string()))?;
    let op = op_factory(&Params::detached(Value::Null))?;
    let base = match p.base.and(params.get("base")) {
        Some(entry) => {
            let factory = registry::augment_policy(&entry.type_name()?)
                .map_err(|e| entry.error(e.to_string()))?;
            factory(&entry, ctx)?
        }
        None => {
            let factory =
                registry::augment_policy("standard").map_err(|e| params.error(e.to_string()))?;
            factory(&Params::detached(Value::Null), ctx)?
        }
    };
    Ok(Box::new(Noisy {
        op,
        prob: p.prob,
        level: p.level,
        base,
    }))
}

register_plugin!(
    AugmentPolicy,
    "noisy",
    "example plugin: apply `op` (default gaussian-noise) with `prob` at `level`, then `base` (standard)",
    build_noisy
);
