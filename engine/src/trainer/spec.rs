//! What a training run is asked to do ([`TrainSpec`]: its roles, loss terms, optimisation
//! and budget) and where it runs ([`TrainCtx`]).

use super::health;
use super::roles::ModelSource;
use super::weights::WeightSchedule;
use rolekd_core::config::Params;
use rolekd_core::plugin::data::Dataset;
use rolekd_core::precision::Precision;
use rolekd_core::progress::Progress;
use rolekd_core::rng::Seed;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tch::Device;

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
    /// convolutions run faster on it (see [`rolekd_core::layout`]). Same results up to float
    /// rounding; checkpoints are written in the default layout either way. A model with a
    /// 1x1 convolution narrower than 16 channels trains NCHW regardless
    /// ([`rolekd_core::layout::has_narrow_pointwise_conv`]).
    pub channels_last: bool,
    /// What a stalled run does (see [`health`]): warn and train on, or stop.
    pub on_stall: health::OnStall,
    /// The forward passes' arithmetic; `None`: the pipeline's (`TrainCtx::precision`).
    pub precision: Option<Precision>,
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
    /// The pipeline's default precision, for a spec that names none.
    pub precision: Precision,
    /// Whether an interrupt inside an epoch saves the state reached (a stage's own run).
    /// A search member does not: its lease may pass to another worker, which resumes it
    /// from the member's last saved epoch.
    pub save_mid_epoch: bool,
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
