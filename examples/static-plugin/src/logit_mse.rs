//! `logit-mse`: the student regresses the teacher's logits.

use rolekd_core::config::Params;
use rolekd_core::plugin::loss::{Loss, LossCtx, LossInputs};
use rolekd_core::{register_plugin, Error, Result};
use serde::Deserialize;
use tch::{nn, Kind, Tensor};

/// Parameters of `logit-mse`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogitMseParams {
    /// Scale both logits before comparing (default 1).
    #[serde(default = "one")]
    scale: f64,
}

fn one() -> f64 {
    1.0
}

/// `mean((scale s - scale t)^2)` over batch and classes.
struct LogitMse {
    scale: f64,
}

impl Loss for LogitMse {
    fn compute(&mut self, x: &LossInputs<'_>) -> Result<Tensor> {
        let teacher = x
            .teacher
            .ok_or_else(|| Error::Invalid("logit-mse needs a teacher".into()))?;
        let diff = (&x.student.logits - &teacher.logits) * self.scale;
        Ok(diff.square().mean(Kind::Float))
    }
}

fn build(params: &Params, _ctx: &LossCtx, _vs: &nn::Path) -> Result<Box<dyn Loss>> {
    let p: LogitMseParams = params.parse()?;
    if !(p.scale.is_finite() && p.scale > 0.0) {
        return Err(params
            .child_error("scale", "must be a positive number")
            .into());
    }
    Ok(Box::new(LogitMse { scale: p.scale }))
}

register_plugin!(
    Loss,
    "logit-mse",
    "example plugin: MSE between student and teacher logits (`scale`)",
    build
);
