//! rolekd-optim: the built-in optimizers and learning-rate schedules.
//!
//! - [`sgd`]: `sgd`, torch.optim.SGD's update (momentum, dampening, Nesterov, L2 decay).
//! - [`adam`]: `adam` (torch.optim.Adam, L2 decay) and `adamw` (torch.optim.AdamW,
//!   decoupled decay).
//! - [`state`]: checking and restoring checkpointed optimizer state.
//! - [`schedule`]: `constant`, `step`, `multistep` and `cosine`, each with optional linear
//!   warmup.
//!
//! The optimizers are written over tch tensors with in-place ops under `no_grad`, follow
//! PyTorch's update rules, apply weight decay only to parameters marked `decay`, and export
//! their whole state as named tensors (`<param>.momentum_buffer`, `<param>.exp_avg`,
//! `<param>.exp_avg_sq`, `<param>.step`) so a resumed run continues exactly.

pub mod adam;
pub mod schedule;
pub mod sgd;
pub mod state;

pub use adam::{Adam, AdamParams};
pub use schedule::{Constant, Cosine, MultiStep, StepLr, Warmup};
pub use sgd::{Sgd, SgdParams};

/// Called by the binary so the linker keeps this crate's plugin registrations.
pub fn link() {}

rolekd_core::register_plugin!(
    Optimizer,
    "sgd",
    "SGD as torch.optim.SGD: momentum (0.9), dampening (0), nesterov (false), weight_decay (5e-4, L2, decay params only)",
    sgd::build
);
rolekd_core::register_plugin!(
    Optimizer,
    "adam",
    "Adam as torch.optim.Adam: betas ([0.9, 0.999]), eps (1e-8), weight_decay (0, L2, decay params only)",
    adam::build_adam
);
rolekd_core::register_plugin!(
    Optimizer,
    "adamw",
    "AdamW as torch.optim.AdamW: betas ([0.9, 0.999]), eps (1e-8), weight_decay (0.01, decoupled, decay params only)",
    adam::build_adamw
);
rolekd_core::register_plugin!(
    LrSchedule,
    "constant",
    "The base learning rate throughout; optional warmup_epochs, warmup_start",
    schedule::build_constant
);
rolekd_core::register_plugin!(
    LrSchedule,
    "step",
    "Multiply by gamma (0.1) every step_size epochs; optional warmup_epochs, warmup_start",
    schedule::build_step
);
rolekd_core::register_plugin!(
    LrSchedule,
    "multistep",
    "Multiply by gamma (0.1) at each epoch in milestones; optional warmup_epochs, warmup_start",
    schedule::build_multistep
);
rolekd_core::register_plugin!(
    LrSchedule,
    "cosine",
    "Cosine annealing per step to min_lr (0) by the last epoch; optional warmup_epochs, warmup_start",
    schedule::build_cosine
);
