//! Learning-rate schedules. Each is a function of where training is
//! ([`TrainProgress`]) and the base learning rate, with an optional linear warmup:
//! during the first `warmup_epochs` (fractional, counted per step) the scheduled rate is
//! multiplied by a factor rising linearly from `warmup_start` (default 0) to 1.
//!
//! - `constant`: the base rate.
//! - `step`: `base * gamma^floor(epoch / step_size)` (changes at epoch boundaries).
//! - `multistep`: `base * gamma^(milestones reached)` (changes at epoch boundaries).
//! - `cosine`: from the base rate at the end of warmup to `min_lr` at the last epoch,
//!   updated every step: `min_lr + (base - min_lr) * (1 + cos(pi * x)) / 2`, with
//!   `x = (epochs_done - warmup_epochs) / (epochs - warmup_epochs)`.

use rolekd_core::config::{ConfigError, Params};
use rolekd_core::plugin::optim::{LrSchedule, TrainProgress};
use rolekd_core::Result;
use serde::Deserialize;

/// Linear warmup, shared by every schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Warmup {
    /// Length in epochs (fractional allowed); 0 disables warmup.
    pub epochs: f64,
    /// Factor of the scheduled rate at the first step.
    pub start: f64,
}

impl Warmup {
    fn checked(epochs: f64, start: f64, params: &Params) -> Result<Warmup, ConfigError> {
        params.non_negative("warmup_epochs", epochs)?;
        params.within("warmup_start", start, 0.0, 1.0, false)?;
        Ok(Warmup { epochs, start })
    }

    /// The warmup factor at fractional epoch `t`.
    pub fn factor(&self, t: f64) -> f64 {
        if self.epochs <= 0.0 || t >= self.epochs {
            1.0
        } else {
            self.start + (1.0 - self.start) * t / self.epochs
        }
    }
}

macro_rules! warmup_fields {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
            /// Linear warmup length in epochs (fractional allowed; per step); 0: none.
            #[serde(default)]
            pub warmup_epochs: f64,
            /// Warmup's starting factor of the scheduled rate, in [0, 1].
            #[serde(default)]
            pub warmup_start: f64,
        }

        impl $name {
            fn warmup(&self, params: &Params) -> Result<Warmup, ConfigError> {
                Warmup::checked(self.warmup_epochs, self.warmup_start, params)
            }
        }
    };
}

warmup_fields! {
    /// Parameters of `constant`.
    pub struct ConstantParams {}
}

warmup_fields! {
    /// Parameters of `step`.
    pub struct StepParams {
        /// Epochs between decays (>= 1).
        step_size: usize,
        /// Factor applied at each decay.
        #[serde(default = "default_gamma")]
        gamma: f64,
    }
}

warmup_fields! {
    /// Parameters of `multistep`.
    pub struct MultiStepParams {
        /// Epochs (strictly increasing) at whose start the rate is multiplied by gamma.
        milestones: Vec<usize>,
        /// Factor applied at each milestone.
        #[serde(default = "default_gamma")]
        gamma: f64,
    }
}

warmup_fields! {
    /// Parameters of `cosine`.
    pub struct CosineParams {
        /// The rate reached at the end of the last epoch.
        #[serde(default)]
        min_lr: f64,
    }
}

fn default_gamma() -> f64 {
    0.1
}

fn check_gamma(gamma: f64, params: &Params) -> Result<(), ConfigError> {
    params.positive("gamma", gamma)
}

/// `constant`.
#[derive(Debug, Clone)]
pub struct Constant {
    pub warmup: Warmup,
}

impl LrSchedule for Constant {
    fn lr(&self, base_lr: f64, at: TrainProgress) -> f64 {
        base_lr * self.warmup.factor(at.epochs_done())
    }
}

/// `step`.
#[derive(Debug, Clone)]
pub struct StepLr {
    pub step_size: usize,
    pub gamma: f64,
    pub warmup: Warmup,
}

impl LrSchedule for StepLr {
    fn lr(&self, base_lr: f64, at: TrainProgress) -> f64 {
        let decays = (at.epoch / self.step_size.max(1)) as i32;
        base_lr * self.gamma.powi(decays) * self.warmup.factor(at.epochs_done())
    }
}

/// `multistep`.
#[derive(Debug, Clone)]
pub struct MultiStep {
    pub milestones: Vec<usize>,
    pub gamma: f64,
    pub warmup: Warmup,
}

impl LrSchedule for MultiStep {
    fn lr(&self, base_lr: f64, at: TrainProgress) -> f64 {
        let reached = self.milestones.iter().filter(|&&m| at.epoch >= m).count() as i32;
        base_lr * self.gamma.powi(reached) * self.warmup.factor(at.epochs_done())
    }
}

/// `cosine`.
#[derive(Debug, Clone)]
pub struct Cosine {
    pub min_lr: f64,
    pub warmup: Warmup,
}

impl LrSchedule for Cosine {
    fn lr(&self, base_lr: f64, at: TrainProgress) -> f64 {
        let t = at.epochs_done();
        let span = at.epochs as f64 - self.warmup.epochs;
        let x = if span > 0.0 {
            ((t - self.warmup.epochs) / span).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let cos =
            self.min_lr + (base_lr - self.min_lr) * 0.5 * (1.0 + (std::f64::consts::PI * x).cos());
        cos * self.warmup.factor(t)
    }
}

/// Factory of `constant`.
pub fn build_constant(params: &Params) -> Result<Box<dyn LrSchedule>> {
    let p: ConstantParams = params.parse()?;
    Ok(Box::new(Constant {
        warmup: p.warmup(params)?,
    }))
}

/// Factory of `step`.
pub fn build_step(params: &Params) -> Result<Box<dyn LrSchedule>> {
    let p: StepParams = params.parse()?;
    params.at_least("step_size", p.step_size as i64, 1)?;
    check_gamma(p.gamma, params)?;
    Ok(Box::new(StepLr {
        step_size: p.step_size,
        gamma: p.gamma,
        warmup: p.warmup(params)?,
    }))
}

/// Factory of `multistep`.
pub fn build_multistep(params: &Params) -> Result<Box<dyn LrSchedule>> {
    let p: MultiStepParams = params.parse()?;
    if p.milestones.windows(2).any(|w| w[0] >= w[1]) {
        return Err(params
            .child_error(
                "milestones",
                format!("must be strictly increasing, are {:?}", p.milestones),
            )
            .into());
    }
    check_gamma(p.gamma, params)?;
    let warmup = p.warmup(params)?;
    Ok(Box::new(MultiStep {
        milestones: p.milestones,
        gamma: p.gamma,
        warmup,
    }))
}

/// Factory of `cosine`.
pub fn build_cosine(params: &Params) -> Result<Box<dyn LrSchedule>> {
    let p: CosineParams = params.parse()?;
    params.non_negative("min_lr", p.min_lr)?;
    Ok(Box::new(Cosine {
        min_lr: p.min_lr,
        warmup: p.warmup(params)?,
    }))
}
