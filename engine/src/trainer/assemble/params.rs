//! The fields of a `train` or `distill` stage mapping (also a search's `trial:`).

use crate::trainer::health::OnStall;
use rolekd_core::artifact::CheckpointPath;
use rolekd_core::precision::Precision;
use rolekd_core::yaml::Value;
use serde::Deserialize;

/// Fields of a `train` or `distill` stage.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // plugin-valued fields are read through `Params` to keep their YAML paths
pub(crate) struct TrainingParams {
    /// The trained model: `{type: resnet-cifar, depth: 20, quant: {...}}` (or `roles:`).
    #[serde(default)]
    pub(crate) model: Option<Value>,
    /// Every role by name, for stages beyond one model and one teacher (see [`roles`]).
    #[serde(default)]
    pub(crate) roles: Option<Value>,
    /// The trained role's augmentation policy (default: none).
    #[serde(default)]
    pub(crate) augment: Option<Value>,
    /// Initialise the trained model from a checkpoint of the same architecture.
    #[serde(default)]
    pub(crate) init: Option<CheckpointPath>,
    /// Epochs to train.
    pub(crate) epochs: usize,
    /// Training batch size.
    #[serde(default = "default_batch")]
    pub(crate) batch_size: usize,
    /// Evaluation batch size (the whole test set is evaluated, last partial batch included).
    #[serde(default = "default_eval_batch")]
    pub(crate) eval_batch_size: usize,
    /// Evaluate on the validation and test splits every this many epochs (and after the
    /// last); default 1.
    #[serde(default = "one")]
    pub(crate) eval_every: usize,
    /// Default `{type: sgd, lr: 0.05 * batch_size / 128 * model scale, momentum: 0.9,
    /// nesterov: true, weight_decay: 5e-4}` (the scale is 1 but for `small-cnn`, 0.2); an
    /// entry without `lr` gets that rate (sgd) or 1e-3 (adam, adamw).
    #[serde(default)]
    pub(crate) optimizer: Option<Value>,
    /// `{type: cosine, warmup_epochs: 1}` (default; no warm-up for a one-epoch run),
    /// `multistep`, `step`, `constant`, each with `warmup_epochs`.
    #[serde(default)]
    pub(crate) lr_schedule: Option<Value>,
    /// Weighted loss terms: `[{type: ce}, {type: kd, weight: 0.9, temperature: 4}]`.
    #[serde(default)]
    pub(crate) loss: Option<Value>,
    /// Augmentation worker threads.
    #[serde(default = "default_workers")]
    pub(crate) workers: usize,
    /// `train` (default) or `train+val` (the final run after a search).
    #[serde(default = "default_train_on")]
    pub(crate) train_on: String,
    /// Clip the gradient norm to this value.
    #[serde(default)]
    pub(crate) grad_clip: Option<f64>,
    /// Lay images and conv weights out channels-last (faster convolutions on CPU; the same
    /// results up to float rounding). `false`: libtorch's default NCHW layout.
    #[serde(default = "default_channels_last")]
    pub(crate) channels_last: bool,
    /// `sum` (default) or `clip-to-ce`: the released role-wise code's rule, the non-CE
    /// gradient clipped per parameter to the CE gradient's norm times sigmoid(epoch).
    #[serde(default)]
    pub(crate) combine: Option<String>,
    /// When training stalls (accuracy or loss at chance, a rising loss): `warn` (default:
    /// print, record in the result, train on) or `stop` (the stage fails, exit 1).
    #[serde(default)]
    pub(crate) on_stall: OnStall,
    /// `fp32` or `bf16` (autocast forward passes, fp32 weights and losses); default: the
    /// pipeline's `precision:`, else fp32.
    #[serde(default)]
    pub(crate) precision: Option<Precision>,
    /// distill only: the frozen teacher's checkpoint (`${teacher.checkpoint}`).
    #[serde(default)]
    pub(crate) teacher: Option<CheckpointPath>,
    /// distill only: `same` (the teacher sees the student's augmented image, as in the
    /// original) or `own` (its own view of the same source image, from `teacher_augment`).
    #[serde(default)]
    pub(crate) teacher_view: Option<String>,
    /// distill only, with `teacher_view: own`: the teacher's augmentation policy.
    #[serde(default)]
    pub(crate) teacher_augment: Option<Value>,
}

fn default_batch() -> usize {
    128
}
fn default_eval_batch() -> usize {
    256
}
fn one() -> usize {
    1
}
fn default_channels_last() -> bool {
    true
}

fn default_workers() -> usize {
    2
}
fn default_train_on() -> String {
    "train".into()
}
