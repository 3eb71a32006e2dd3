//! What a training stage gets for what it leaves out: optimizer, learning rate, schedule,
//! losses. The engine builds every training stage without naming a concrete plugin, so the
//! defaults come from a plugin crate (rolekd-train-stages, beside the `train` and
//! `distill` kinds they serve) that registers them with
//! [`register_train_defaults!`](crate::register_train_defaults).

use crate::error::{Error, Result};

/// The defaults of a training stage, as YAML entries: the engine checks them exactly as it
/// checks what a user wrote.
pub trait TrainDefaults: Sync {
    /// The optimizer entry of a stage without `optimizer:` (its rate from [`Self::lr`]).
    fn optimizer(&self) -> &'static str;

    /// The learning rate of an optimizer entry without `lr`: `optimizer` is its `type`,
    /// `model_scale` the trained model's
    /// [`Model::default_lr_scale`](crate::plugin::model::Model::default_lr_scale).
    fn lr(&self, optimizer: &str, batch_size: usize, model_scale: f64) -> f64;

    /// The schedule entry of a stage without `lr_schedule:`.
    fn lr_schedule(&self, epochs: usize) -> &'static str;

    /// The loss list of a stage without `loss:` (a `distill` stage's when `distill`).
    fn loss(&self, distill: bool) -> &'static str;
}

/// Registered defaults, as [`register_train_defaults!`](crate::register_train_defaults)
/// submits them.
pub struct DefaultsEntry {
    pub crate_name: &'static str,
    pub defaults: &'static dyn TrainDefaults,
}

inventory::collect!(DefaultsEntry);

/// The linked crate's defaults: exactly one linked crate may register them.
pub fn train_defaults() -> Result<&'static dyn TrainDefaults> {
    let mut found = inventory::iter::<DefaultsEntry>.into_iter();
    let Some(first) = found.next() else {
        return Err(Error::Invalid(
            "no linked crate registers the training defaults (rolekd-train-stages does: \
             link it, e.g. with rolekd::link_builtins())"
                .into(),
        ));
    };
    if let Some(second) = found.next() {
        return Err(Error::Invalid(format!(
            "the training defaults are registered twice: by {} and by {}",
            first.crate_name, second.crate_name
        )));
    }
    Ok(first.defaults)
}

/// Registers a crate's [`TrainDefaults`] (a `static` or a const value).
///
/// ```ignore
/// rolekd_core::register_train_defaults!(StageDefaults);
/// ```
#[macro_export]
macro_rules! register_train_defaults {
    ($defaults:expr) => {
        $crate::inventory::submit! {
            $crate::plugin::defaults::DefaultsEntry {
                crate_name: env!("CARGO_PKG_NAME"),
                defaults: &$defaults,
            }
        }
    };
}
