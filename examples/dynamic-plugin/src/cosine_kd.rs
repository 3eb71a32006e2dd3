//! `cosine-kd`: aligns the directions of the student's and the teacher's softened outputs.

use rolekd_core::config::Params;
use rolekd_core::plugin::loss::{Loss, LossCtx, LossInputs};
use rolekd_core::{register_plugin, Error, Result};
use serde::Deserialize;
use tch::{nn, Kind, Tensor};

/// Parameters of `cosine-kd`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CosineKdParams {
    /// Softmax temperature (default 4).
    #[serde(default = "default_temperature")]
    temperature: f64,
}

fn default_temperature() -> f64 {
    4.0
}

/// `1 - cos(softmax(s / T), softmax(t / T))`, averaged over the batch.
struct CosineKd {
    temperature: f64,
}

impl Loss for CosineKd {
    fn compute(&mut self, x: &LossInputs<'_>) -> Result<Tensor> {
        // A dynamic plugin must not panic (a panic cannot cross back into the host):
        // report problems as errors.
        let teacher = x
            .teacher
            .ok_or_else(|| Error::Invalid("cosine-kd needs a teacher".into()))?;
        let ps = (&x.student.logits / self.temperature).softmax(-1, Kind::Float);
        let pt = (&teacher.logits / self.temperature).softmax(-1, Kind::Float);
        let cos = Tensor::cosine_similarity(&ps, &pt, 1, 1e-8);
        Ok(cos.neg().mean(Kind::Float) + 1.0)
    }
}

fn build(params: &Params, _ctx: &LossCtx, _vs: &nn::Path) -> Result<Box<dyn Loss>> {
    let p: CosineKdParams = params.parse()?;
    if !(p.temperature.is_finite() && p.temperature > 0.0) {
        return Err(params
            .child_error("temperature", "must be a positive number")
            .into());
    }
    Ok(Box::new(CosineKd {
        temperature: p.temperature,
    }))
}

register_plugin!(
    Loss,
    "cosine-kd",
    "example plugin: 1 - cosine similarity of softened student and teacher outputs (`temperature`)",
    build
);
