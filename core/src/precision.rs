//! The arithmetic of the forward passes, as a pipeline names it (`precision: fp32 | bf16`),
//! and the casts back to fp32 that plugins apply to what an autocast region produced. The
//! region itself (libtorch's autocast state) is opened by the engine.

use crate::plugin::model::ModelOutput;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// The arithmetic of the forward passes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in fp32 (the default).
    #[default]
    Fp32,
    /// bf16 autocast for the forward passes, fp32 everywhere else.
    Bf16,
}

impl Precision {
    /// The YAML spelling.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }

    /// Parses the YAML spelling (for callers that hold a plain string).
    pub fn parse(s: &str) -> std::result::Result<Precision, String> {
        match s {
            "fp32" => Ok(Precision::Fp32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(format!(
                "`{other}` is not a precision; expected fp32 or bf16"
            )),
        }
    }
}

/// `t` in fp32 when autocast left it in a reduced precision (the graph is kept): losses,
/// reductions and quantisation levels are computed in fp32.
pub fn to_fp32(t: &Tensor) -> Tensor {
    match t.kind() {
        Kind::BFloat16 | Kind::Half => t.to_kind(Kind::Float),
        _ => t.shallow_clone(),
    }
}

/// A forward pass's outputs in fp32 (see [`to_fp32`]).
pub fn output_to_fp32(o: ModelOutput) -> ModelOutput {
    ModelOutput {
        logits: to_fp32(&o.logits),
        features: o
            .features
            .into_iter()
            .map(|(n, t)| (n, to_fp32(&t)))
            .collect(),
    }
}
