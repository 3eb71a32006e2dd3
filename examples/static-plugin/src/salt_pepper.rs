//! `salt-pepper`: impulse noise.

use rand::Rng;
use rolekd_core::config::Params;
use rolekd_core::plugin::augment::AugmentOp;
use rolekd_core::plugin::image::Image;
use rolekd_core::rng::StreamRng;
use rolekd_core::{register_plugin, Result};
use serde::Deserialize;

/// Parameters of `salt-pepper`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SaltPepperParams {
    /// Fraction of pixels hit per magnitude level (default 0.01): level l hits
    /// `amount (l + 1)` of them.
    #[serde(default = "default_amount")]
    amount: f64,
}

fn default_amount() -> f64 {
    0.01
}

/// Sets a random fraction of the pixels to black or white (all channels).
struct SaltPepper {
    amount: f64,
}

impl AugmentOp for SaltPepper {
    fn apply(&self, img: &mut Image, level: u8, _negate: bool, rng: &mut StreamRng) {
        let p = (self.amount * (level as f64 + 1.0)).min(1.0);
        let c = img.channels;
        for i in 0..img.pixels() {
            if rng.random::<f64>() < p {
                let v = if rng.random::<bool>() { 255 } else { 0 };
                img.data[i * c..(i + 1) * c].fill(v);
                // The pixel now shows a value, even where a geometric op had uncovered it.
                img.uncovered[i] = false;
            }
        }
    }
}

fn build(params: &Params) -> Result<Box<dyn AugmentOp>> {
    let p: SaltPepperParams = params.parse()?;
    if !(0.0..=1.0).contains(&p.amount) {
        return Err(params.child_error("amount", "must be in 0..=1").into());
    }
    Ok(Box::new(SaltPepper { amount: p.amount }))
}

register_plugin!(
    AugmentOp,
    "salt-pepper",
    "example plugin: set amount (l + 1) of the pixels to black or white",
    build
);
