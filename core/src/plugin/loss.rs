//! KD loss plugins. A stage's loss is a weighted list of these; each term sees its student
//! role's and (when it has one) its teacher role's outputs, and every role's by name.

use super::model::ModelOutput;
use crate::config::Params;
use crate::error::Result;
use tch::{nn, Device, Tensor};

/// What a loss sees at one training step.
pub struct LossInputs<'a> {
    /// The role this term trains (the term's `student:`, by default the first trained role).
    pub student: &'a ModelOutput,
    /// The role this term learns from (its `teacher:`, by default the first frozen role;
    /// several names average their logits). A trained peer's outputs come detached.
    pub teacher: Option<&'a ModelOutput>,
    /// Every role's outputs this step, by role name (trained roles' with their graph), for
    /// losses that read roles beyond the student and teacher bindings.
    pub roles: &'a [(&'a str, &'a ModelOutput)],
    /// Hard labels [B] (int64).
    pub labels: &'a Tensor,
    /// Soft targets [B, C] when a batch policy (mixup, cutmix) mixed the labels.
    pub soft_targets: Option<&'a Tensor>,
    /// Indices of the batch's images in the training split (memory-bank losses).
    pub indices: &'a Tensor,
    pub epoch: usize,
    pub step: usize,
}

impl LossInputs<'_> {
    /// The outputs of the role called `name` this step.
    pub fn role(&self, name: &str) -> Option<&ModelOutput> {
        self.roles.iter().find(|(n, _)| *n == name).map(|(_, o)| *o)
    }
}

/// One distillation (or supervised) loss term.
pub trait Loss: Send {
    /// The unweighted loss (a scalar tensor).
    fn compute(&mut self, inputs: &LossInputs<'_>) -> Result<Tensor>;

    /// Whether the term needs a teacher (checked before training starts).
    fn needs_teacher(&self) -> bool {
        true
    }
}

/// What a loss is told when it is built: shapes of the features it may tap, so connectors
/// and heads can be sized. Trainable parts go under the given `nn::Path`, which lives in the
/// student's VarStore: they are checkpointed and optimised with the student.
pub struct LossCtx {
    pub num_classes: i64,
    pub train_size: usize,
    pub device: Device,
    /// (stage name, shape [B, C, H, W]) of the student's features.
    pub student_features: Vec<(String, Vec<i64>)>,
    /// Same for the teacher (empty without one).
    pub teacher_features: Vec<(String, Vec<i64>)>,
}

/// Builds a loss term from its YAML params (the runtime strips `type` and `weight`).
pub type LossFactory = fn(&Params, &LossCtx, &nn::Path) -> Result<Box<dyn Loss>>;
