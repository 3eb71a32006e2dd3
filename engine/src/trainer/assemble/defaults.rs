//! What a stage gets for what it leaves out: optimizer, learning rate, schedule, losses.

use crate::trainer::roles::{build_model, BuiltModel};
use rolekd_core::config::Params;
use rolekd_core::error::Result;

/// SGD's default learning rate at the default batch of 128, scaled linearly with the
/// batch size (0.1 per 256 images, Goyal et al. 2017). 0.1 at batch 128 drove a small CNN
/// distilled at T = 4 to chance level (issue 19); see the defaults table in docs/pipelines.md.
const SGD_LR_PER_128: f64 = 0.05;
/// Adam's and AdamW's default learning rate.
const ADAM_LR: f64 = 1e-3;

/// The optimizer a stage without `optimizer:` gets (its rate from [`default_lr`]).
pub(super) const DEFAULT_OPTIMIZER: &str =
    "{type: sgd, momentum: 0.9, nesterov: true, weight_decay: 0.0005}";

/// The learning rate an optimizer entry without `lr` gets: SGD's rate is scaled by the
/// model's [`Model::default_lr_scale`](rolekd_core::plugin::model::Model::default_lr_scale)
/// (a fan-in effect, which Adam's normalised steps do not have).
pub(super) fn default_lr(optimizer: &str, batch_size: usize, model_scale: f64) -> f64 {
    match optimizer {
        "adam" | "adamw" => ADAM_LR,
        _ => SGD_LR_PER_128 * batch_size as f64 / 128.0 * model_scale,
    }
}

/// The model built once at configuration time on a stand-in problem (1x28x28, 10 classes,
/// CPU): it gives the default rate's model factor and the shapes [`probe_plugins`] checks.
pub(super) fn build_stand_in(model: &Params) -> Result<BuiltModel> {
    let shape = crate::checkpoint::SpecRecord {
        in_channels: 1,
        num_classes: 10,
        height: 28,
        width: 28,
    };
    build_model(model, &shape, tch::Device::Cpu, rolekd_core::rng::Seed(0))
}

/// The schedule a stage without `lr_schedule:` gets: cosine, with the learning rate ramped
/// up over the first epoch when there is more than one (the first steps of a fresh model
/// are where a high rate throws it off).
pub(super) fn default_schedule(epochs: usize) -> &'static str {
    if epochs >= 2 {
        "{type: cosine, warmup_epochs: 1}"
    } else {
        "{type: cosine}"
    }
}
pub(super) const TRAIN_LOSS: &str = "[{type: ce}]";
/// Hinton KD as most CIFAR KD benchmarks run it (RepDistiller's alpha 0.9, T 4).
pub(super) const DISTILL_LOSS: &str =
    "[{type: ce, weight: 0.1}, {type: kd, weight: 0.9, temperature: 4}]";

/// `params[key]`, or the built-in default when it is absent or null.
pub(super) fn or_default(params: &Params, key: &str, default: &str) -> Params {
    params
        .get(key)
        .filter(|p| !p.value().is_null())
        .unwrap_or_else(|| Params::from_yaml(default).expect("built-in default parses"))
}
