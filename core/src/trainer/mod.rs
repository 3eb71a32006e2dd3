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
//! `run_epoch`, `evaluate` and `record` (metrics, resume state), and `finish`.

pub mod build;
mod epoch;
mod grad;
pub mod health;
mod loader;
mod metrics;
mod roles;
mod run;
mod setup;
pub mod state;
mod step;
mod weights;

pub use build::{build_spec, build_spec_probing};
pub use loader::{batches_per_epoch, epoch_order, split_tensor, Batch, LoaderSpec, ViewSpec};
pub use metrics::{read_metrics, write_metrics, EpochMetrics, RoleMetrics, TrainOutcome};
pub use roles::{
    build_model, build_policy, load_model, seeded, spec_of, BuiltModel, ModelSource, NoAugment,
};
pub use weights::WeightSchedule;

use crate::config::Params;
use crate::error::Result;
use crate::plugin::data::Dataset;
use crate::plugin::model::Model;
use crate::progress::Progress;
use crate::rng::Seed;
use run::Run;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

/// Which view of the images a role sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum View {
    /// Its own augmentation of the same source images.
    Own,
    /// Exactly the first trained role's augmented images.
    Same,
    /// Exactly the augmented images of the named role (which has a view of its own).
    Of(String),
}

/// How the weighted loss terms become one gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Combine {
    /// The gradient of the weighted sum (the usual rule).
    #[default]
    Sum,
    /// The released role-wise code's rule: per parameter, the gradient of the `ce` terms
    /// plus the gradient of every other term clipped to `||grad(CE)|| * sigmoid(epoch)`
    /// (0-based epoch). Weight decay stays the optimizer's. One trained role only.
    ClipToCe,
}

/// A participant in training.
#[derive(Clone, Debug)]
pub struct RoleSpec {
    pub name: String,
    pub model: ModelSource,
    /// The augmentation policy entry (None: no augmentation).
    pub augment: Option<Params>,
    /// Trained roles always have a view of their own.
    pub view: View,
    pub trainable: bool,
    /// Initialise the role from this checkpoint (same architecture).
    pub init: Option<PathBuf>,
    /// A trained role's own optimizer entry and base learning rate (default: the stage's).
    pub optimizer: Option<(Params, f64)>,
}

/// One weighted loss term.
#[derive(Clone, Debug)]
pub struct LossSpec {
    /// The entry (`type` and the loss's own params; `weight`, `student` and `teacher` are
    /// the trainer's).
    pub entry: Params,
    pub weight: WeightSchedule,
    /// The trained role the term trains (default: the first trained role).
    pub student: Option<String>,
    /// The role(s) it learns from; several average their logits (default: the first frozen
    /// role, if any).
    pub teacher: Vec<String>,
}

/// Everything one training run needs.
#[derive(Clone, Debug)]
pub struct TrainSpec {
    pub roles: Vec<RoleSpec>,
    pub losses: Vec<LossSpec>,
    pub optimizer: Params,
    pub lr: f64,
    pub lr_schedule: Params,
    pub epochs: usize,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub workers: usize,
    /// Train on the training split plus the validation split (final runs after a search).
    pub train_on_val_too: bool,
    pub grad_clip: Option<f64>,
    /// Evaluate on the test split (search trials only need validation).
    pub eval_test: bool,
    /// Evaluate (validation and test) every this many epochs, and after the last one: on
    /// a small training split, evaluating 15,000 images each epoch costs more than training.
    pub eval_every: usize,
    /// How the loss terms make one gradient.
    pub combine: Combine,
    /// Stop after this many epochs (resume state saved), e.g. at a search's perturbation
    /// point; `None` trains to `epochs` and writes the final checkpoint.
    pub stop_after: Option<usize>,
    /// Lay images, conv weights and activations out channels-last (NHWC strides): oneDNN's
    /// convolutions run faster on it (see [`crate::layout`]). Same results up to float
    /// rounding; checkpoints are written in the default layout either way.
    pub channels_last: bool,
    /// What a stalled run does (see [`health`]): warn and train on, or stop.
    pub on_stall: health::OnStall,
}

impl TrainSpec {
    /// The trained roles' names, in order (the first is the stage's main model).
    pub fn trained_roles(&self) -> Vec<&str> {
        self.roles
            .iter()
            .filter(|r| r.trainable)
            .map(|r| r.name.as_str())
            .collect()
    }
}

/// Where a run happens.
pub struct TrainCtx<'a> {
    pub label: &'a str,
    pub dir: PathBuf,
    pub seed: Seed,
    pub device: Device,
    pub data: Arc<Dataset>,
    pub progress: &'a Progress,
    pub interrupted: &'a AtomicBool,
}

/// Trains the stage's trained roles; writes `metrics.jsonl`, per-epoch resume state under
/// `state/`, and each trained role's final model as a checkpoint (the first trained role's
/// under `checkpoint/`, any other's under `checkpoint-<role>/`).
pub fn train(spec: &TrainSpec, ctx: &TrainCtx<'_>) -> Result<TrainOutcome> {
    let mut run = Run::build(spec, ctx)?;
    run.resume()?;
    for epoch in run.start_epoch..run.end_epoch {
        let sums = run.run_epoch(epoch)?;
        let metrics = run.evaluate(epoch, sums);
        run.record(metrics)?;
    }
    run.finish()
}

/// Accuracy and mean cross-entropy of `model` (eval mode, running BN statistics) on the
/// whole set, the last partial batch included.
pub fn evaluate(model: &dyn Model, x: &Tensor, y: &Tensor, batch: usize) -> (f64, f64) {
    let n = x.size()[0];
    let mut correct = 0i64;
    let mut loss = 0f64;
    tch::no_grad(|| {
        let mut start = 0;
        while start < n {
            let len = (batch as i64).min(n - start);
            let xs = x.narrow(0, start, len);
            let ys = y.narrow(0, start, len);
            let logits = model.forward(&xs, false).logits;
            correct += logits
                .argmax(-1, false)
                .eq_tensor(&ys)
                .sum(Kind::Int64)
                .int64_value(&[]);
            loss += logits.cross_entropy_for_logits(&ys).double_value(&[]) * len as f64;
            start += len;
        }
    });
    (correct as f64 / n.max(1) as f64, loss / n.max(1) as f64)
}

/// The checkpoint directory a finished training run leaves.
pub fn checkpoint_dir(stage_dir: &Path) -> PathBuf {
    stage_dir.join("checkpoint")
}

/// Where a finished run leaves trained role `role`'s checkpoint: `checkpoint/` for the
/// first trained role, `checkpoint-<role>/` for any other.
pub fn role_checkpoint_dir(stage_dir: &Path, spec: &TrainSpec, role: &str) -> PathBuf {
    if spec.trained_roles().first() == Some(&role) {
        checkpoint_dir(stage_dir)
    } else {
        stage_dir.join(format!("checkpoint-{role}"))
    }
}

/// Fault injection for the reliability tests: `ROLEKD_FAULT_NAN=<label>@<epoch>` makes the
/// first step of that epoch of the run labelled `<label>` (a stage name, or
/// `<search>/m<k>` for a search member) see a non-finite loss.
fn injected_nan(label: &str, epoch: usize, step: usize) -> bool {
    static FAULT: std::sync::OnceLock<Option<(String, usize)>> = std::sync::OnceLock::new();
    let fault = FAULT.get_or_init(|| {
        let spec = std::env::var("ROLEKD_FAULT_NAN").ok()?;
        let (l, e) = spec.rsplit_once('@')?;
        Some((l.to_string(), e.parse().ok()?))
    });
    step == 0
        && fault
            .as_ref()
            .is_some_and(|(l, e)| l == label && *e == epoch)
}
