//! The one training loop behind every stage kind (train, distill, search trials).
//!
//! Roles: one or more trained roles (a student, the model of a `train` stage, peers that
//! learn together) and any number of frozen ones (teachers, in eval mode). Each role sees
//! its own augmentation view of the same sampled images, or shares another role's view.
//! Each loss term trains one role (its `student`) and may read another (its `teacher`), or
//! several averaged; terms reach every role's outputs by name.
//!
//! A run is built once ([`run::Run::build`]: roles, losses sized by a probe, one optimiser
//! per trained role, the loader) and then goes through named phases: `resume`, per epoch
//! `run_epoch`, `evaluate` and `record` (metrics, TensorBoard events, resume state), and
//! `finish`.

pub mod assemble;
mod epoch;
mod eval;
mod eval_data;
mod events;
mod grad;
pub mod health;
mod loader;
mod metrics;
mod parts;
mod record;
mod roles;
mod run;
mod setup;
mod spec;
pub mod state;
mod step;
mod sums;
mod weights;

pub use assemble::{build_spec, build_spec_probing};
pub use eval::{
    agreement, evaluate, evaluate_checkpoint, expected_calibration_error, Evaluation, ECE_BINS,
};
pub use eval_data::EvalData;
pub use events::scalars_of;
pub use loader::{
    batches_per_epoch, epoch_order, for_each_batch, split_tensor, Batch, LoaderSpec, Pass, ViewSpec,
};
pub use metrics::{
    read_metrics, write_metrics, EpochMetrics, RoleMetrics, TestExtras, TrainOutcome,
};
pub use roles::{
    build_model, build_policy, load_model, seeded, spec_of, BuiltModel, ModelSource, NoAugment,
};
pub use spec::{
    checkpoint_dir, role_checkpoint_dir, Combine, LossSpec, RoleSpec, TrainCtx, TrainSpec, View,
};
pub use weights::WeightSchedule;

use rolekd_core::error::Result;
use run::Run;

/// Trains the stage's trained roles; writes `metrics.jsonl`, per-epoch resume state under
/// `state/`, and each trained role's final model as a checkpoint (the first trained role's
/// under `checkpoint/`, any other's under `checkpoint-<role>/`).
pub fn train(spec: &TrainSpec, ctx: &TrainCtx<'_>) -> Result<TrainOutcome> {
    let mut run = Run::build(spec, ctx)?;
    run.resume()?;
    run.open_events()?;
    for epoch in run.start_epoch..run.end_epoch {
        let sums = run.run_epoch(epoch)?;
        let metrics = run.evaluate(epoch, sums)?;
        run.record(metrics)?;
    }
    run.finish()
}
