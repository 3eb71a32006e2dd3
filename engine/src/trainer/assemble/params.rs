//! The fields of a `train` or `distill` stage mapping (also a search's `trial:`).

use crate::trainer::health::OnStall;
use rolekd_core::artifact::CheckpointPath;
use rolekd_core::config::Key;
use rolekd_core::precision::Precision;
use rolekd_core::yaml::Value;
use serde::Deserialize;

/// Every key of a `train` or `distill` stage (and of a search's `trial:`), in the order an
/// "unknown field" error lists them: the fields of [`TrainingParams`] and the plugin
/// entries, which are read through `Params` so their own errors are located inside them.
pub(crate) const KEYS: &[Key] = &[
    // The trained model: `{type: resnet-cifar, depth: 20, quant: {...}}` (or `roles:`).
    Key::Entry("model"),
    Key::Field("roles"),
    // The trained role's augmentation policy (default: none).
    Key::Entry("augment"),
    Key::Field("init"),
    Key::Field("epochs"),
    Key::Field("batch_size"),
    Key::Field("eval_batch_size"),
    Key::Field("eval_every"),
    // Default `{type: sgd, lr: 0.05 * batch_size / 128 * model scale, momentum: 0.9,
    // nesterov: true, weight_decay: 5e-4}` (the scale is 1 but for `small-cnn`, 0.2); an
    // entry without `lr` gets that rate (sgd) or 1e-3 (adam, adamw).
    Key::Entry("optimizer"),
    // `{type: cosine, warmup_epochs: 1}` (default; no warm-up for a one-epoch run),
    // `multistep`, `step`, `constant`, each with `warmup_epochs`.
    Key::Entry("lr_schedule"),
    // Weighted loss terms: `[{type: ce}, {type: kd, weight: 0.9, temperature: 4}]`.
    Key::Entry("loss"),
    Key::Field("workers"),
    Key::Field("train_on"),
    Key::Field("grad_clip"),
    Key::Field("channels_last"),
    Key::Field("combine"),
    Key::Field("on_stall"),
    Key::Field("precision"),
    Key::Field("teacher"),
    Key::Field("teacher_view"),
    // distill only, with `teacher_view: own`: the teacher's augmentation policy.
    Key::Entry("teacher_augment"),
];

/// The typed fields of a `train` or `distill` stage (see [`KEYS`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrainingParams {
    /// Every role by name, for stages beyond one model and one teacher (see [`roles`]).
    #[serde(default)]
    pub(crate) roles: Option<Value>,
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
