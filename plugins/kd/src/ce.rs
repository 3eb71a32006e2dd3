//! `ce`: the supervised term.

use crate::prelude::*;

/// Parameters of `ce`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CeParams {
    /// Label smoothing eps (Szegedy et al. 2016): targets (1 - eps) y + eps / C. Default 0.
    #[serde(default)]
    pub label_smoothing: f64,
}

/// Cross-entropy of the student's logits `s` against the labels, averaged over the batch:
/// `-log softmax(s)_y`; with soft targets `t` (mixup, cutmix) `-sum_c t_c log softmax(s)_c`.
/// With label smoothing eps the targets become `(1 - eps) t + eps / C`.
pub struct CrossEntropy {
    smoothing: f64,
}

impl Loss for CrossEntropy {
    fn compute(&mut self, inputs: &LossInputs<'_>) -> Result<Tensor> {
        let s = &inputs.student.logits;
        let logp = s.log_softmax(-1, Kind::Float);
        let eps = self.smoothing;
        let hard_or_soft = match inputs.soft_targets {
            Some(t) => -(t.to_kind(Kind::Float) * &logp)
                .sum_dim_intlist(-1, false, Kind::Float)
                .mean(Kind::Float),
            None => logp.nll_loss(inputs.labels),
        };
        if eps == 0.0 {
            return Ok(hard_or_soft);
        }
        let uniform = -logp.mean_dim(-1, false, Kind::Float).mean(Kind::Float);
        Ok(hard_or_soft * (1.0 - eps) + uniform * eps)
    }

    fn needs_teacher(&self) -> bool {
        false
    }
}

/// The registry's constructor.
pub fn build(params: &Params, _ctx: &LossCtx, _vs: &nn::Path) -> Result<Box<dyn Loss>> {
    let p: CeParams = params.parse()?;
    if !(0.0..1.0).contains(&p.label_smoothing) {
        return Err(params
            .child_error(
                "label_smoothing",
                format!("expected 0 <= eps < 1, got {}", p.label_smoothing),
            )
            .into());
    }
    Ok(Box::new(CrossEntropy {
        smoothing: p.label_smoothing,
    }))
}

rolekd_core::register_plugin!(
    Loss,
    "ce",
    "cross-entropy on the labels (soft-target CE under mixup/cutmix), optional label_smoothing",
    build
);
