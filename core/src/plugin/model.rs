//! Model plugins: plain structs with a forward pass that returns logits and named features.

use crate::config::Params;
use crate::error::Result;
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

/// What a forward pass gives the losses: the logits and the named per-stage features
/// (in stage order) that feature-distillation losses tap.
pub struct ModelOutput {
    pub logits: Tensor,
    pub features: Vec<(String, Tensor)>,
}

impl ModelOutput {
    pub fn feature(&self, name: &str) -> Option<&Tensor> {
        self.features
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
    }

    /// The same tensors, shared (no copy, graph kept).
    pub fn shallow_clone(&self) -> ModelOutput {
        ModelOutput {
            logits: self.logits.shallow_clone(),
            features: self
                .features
                .iter()
                .map(|(n, t)| (n.clone(), t.shallow_clone()))
                .collect(),
        }
    }

    /// A copy cut off from the autograd graph (a frozen teacher's output).
    pub fn detach(&self) -> ModelOutput {
        ModelOutput {
            logits: self.logits.detach(),
            features: self
                .features
                .iter()
                .map(|(n, t)| (n.clone(), t.detach()))
                .collect(),
        }
    }
}

/// A network. `train` selects batch statistics (and updates the running ones) for BN.
pub trait Model: Send {
    fn forward(&self, xs: &Tensor, train: bool) -> ModelOutput;

    /// The factor on the stage's default learning rate (SGD 0.05 per 128 images) when a
    /// stage gives none: a model that the shared default throws off (issue 19) says so
    /// here instead of every user finding its rate by hand. Explicit rates are never scaled.
    fn default_lr_scale(&self) -> f64 {
        1.0
    }

    /// What this model computes, as a number: a change that makes the same entry and
    /// weights compute another function bumps it (vgg-cifar's pooling, issue 30). Each
    /// checkpoint records it, and one written at another revision is refused instead of
    /// loading as a different network.
    fn revision(&self) -> u32 {
        1
    }
}

/// DoReFa quantisation of a model, applied by the model plugin; 32 bits = off.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QuantSpec {
    #[serde(default = "full_precision")]
    pub weight_bits: u32,
    #[serde(default = "full_precision")]
    pub activation_bits: u32,
    /// Also quantise the first conv and the classifier (DoReFa keeps them full precision).
    #[serde(default)]
    pub quantize_first_last: bool,
}

fn full_precision() -> u32 {
    32
}

impl Default for QuantSpec {
    fn default() -> Self {
        QuantSpec {
            weight_bits: 32,
            activation_bits: 32,
            quantize_first_last: false,
        }
    }
}

/// The shape of the problem a model is built for.
#[derive(Clone, Debug)]
pub struct ModelSpec {
    pub in_channels: i64,
    pub num_classes: i64,
    pub height: i64,
    pub width: i64,
    pub quant: QuantSpec,
}

/// Builds a model under `path` (its variables live in the role's VarStore).
pub type ModelFactory = fn(&Params, &ModelSpec, &nn::Path) -> Result<Box<dyn Model>>;
