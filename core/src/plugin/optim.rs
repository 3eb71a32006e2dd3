//! Optimizer and learning-rate schedule plugins. Optimizers are ours (not libtorch's) so
//! their state can be checkpointed and resumed exactly.

use crate::config::Params;
use crate::error::Result;
use tch::Tensor;

/// A trainable tensor and whether weight decay applies to it.
pub struct TrainableParam {
    pub name: String,
    pub tensor: Tensor,
    pub decay: bool,
}

/// Updates parameters from their `.grad()`.
pub trait Optimizer: Send {
    fn step(&mut self, lr: f64);

    /// The state tensors to checkpoint (momentum buffers, moments, step counts).
    fn state(&self) -> Vec<(String, Tensor)>;

    /// Restores what [`Optimizer::state`] saved.
    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()>;
}

/// Builds an optimizer over the given parameters.
pub type OptimizerFactory = fn(&Params, Vec<TrainableParam>) -> Result<Box<dyn Optimizer>>;

/// Where training is, for schedules.
#[derive(Clone, Copy, Debug)]
pub struct TrainProgress {
    pub epoch: usize,
    pub step_in_epoch: usize,
    pub steps_per_epoch: usize,
    pub epochs: usize,
}

impl TrainProgress {
    /// Fractional epochs done.
    pub fn epochs_done(&self) -> f64 {
        self.epoch as f64 + self.step_in_epoch as f64 / self.steps_per_epoch.max(1) as f64
    }
}

/// The learning rate at a point of training.
pub trait LrSchedule: Send + Sync {
    fn lr(&self, base_lr: f64, at: TrainProgress) -> f64;
}

/// Builds a schedule from its YAML params.
pub type LrScheduleFactory = fn(&Params) -> Result<Box<dyn LrSchedule>>;
