//! What a stage gets for what it leaves out: the entries come from the linked plugin crate
//! that registers [`TrainDefaults`] (the engine names no concrete plugin); here, reading
//! them into a stage's mapping and the stand-in model their learning rate is scaled by.

use crate::trainer::roles::{build_model, BuiltModel};
use rolekd_core::config::Params;
use rolekd_core::error::Result;
use rolekd_core::plugin::defaults::{train_defaults, TrainDefaults};

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

/// `params[key]`, or the registered default (`pick` chooses it) when it is absent or null.
/// The defaults are looked up only when one is needed.
pub(super) fn or_default(
    params: &Params,
    key: &str,
    pick: impl FnOnce(&dyn TrainDefaults) -> &'static str,
) -> Result<Params> {
    match params.get(key).filter(|p| !p.value().is_null()) {
        Some(p) => Ok(p),
        None => Ok(parsed(pick(train_defaults()?))),
    }
}

/// A default entry, parsed.
fn parsed(yaml: &str) -> Params {
    Params::from_yaml(yaml).expect("built-in default parses")
}

/// The learning rate of an optimizer entry without `lr` (see [`TrainDefaults::lr`]).
pub(super) fn default_lr(optimizer: &str, batch_size: usize, model_scale: f64) -> Result<f64> {
    Ok(train_defaults()?.lr(optimizer, batch_size, model_scale))
}

/// The loss list of a stage without any loss term.
pub(super) fn default_loss(distill: bool) -> Result<Params> {
    Ok(parsed(train_defaults()?.loss(distill)))
}
