//! `kd`: Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", 2015.

use crate::prelude::*;

/// Parameters of `kd`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct KdParams {
    /// Softmax temperature T (default 4; the role-wise paper's code used 3).
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// Multiply by T^2 so gradients keep their scale across temperatures (default true;
    /// the role-wise paper's code did not).
    #[serde(default = "yes")]
    pub t_squared: bool,
}

fn default_temperature() -> f64 {
    4.0
}
fn yes() -> bool {
    true
}

/// `KL(p_t || p_s)` between the softened distributions, averaged over the batch:
/// `(1/B) sum_b sum_c softmax(t/T)_c (log softmax(t/T)_c - log softmax(s/T)_c)`,
/// times T^2 when `t_squared`. The CE/KD mixing is the stage's `weight:` business.
pub struct Kd {
    pub temperature: f64,
    pub t_squared: bool,
}

/// The KD term on logits (also used by other losses).
pub fn kd_loss(s: &Tensor, t: &Tensor, temperature: f64, t_squared: bool) -> Tensor {
    let log_ps = (s / temperature).log_softmax(-1, Kind::Float);
    let log_pt = (t / temperature).log_softmax(-1, Kind::Float);
    let kl = (log_pt.exp() * (&log_pt - log_ps))
        .sum_dim_intlist(-1, false, Kind::Float)
        .mean(Kind::Float);
    if t_squared {
        kl * (temperature * temperature)
    } else {
        kl
    }
}

impl Loss for Kd {
    fn compute(&mut self, inputs: &LossInputs<'_>) -> Result<Tensor> {
        let t = teacher(inputs, "kd")?;
        Ok(kd_loss(
            &inputs.student.logits,
            &t.logits,
            self.temperature,
            self.t_squared,
        ))
    }
}

/// Checks a temperature parameter.
pub(crate) fn check_temperature(params: &Params, key: &str, t: f64) -> Result<()> {
    Ok(params.positive(key, t)?)
}

/// The registry's constructor.
pub fn build(params: &Params, _ctx: &LossCtx, _vs: &nn::Path) -> Result<Box<dyn Loss>> {
    let p: KdParams = params.parse()?;
    check_temperature(params, "temperature", p.temperature)?;
    Ok(Box::new(Kd {
        temperature: p.temperature,
        t_squared: p.t_squared,
    }))
}

rolekd_core::register_plugin!(
    Loss,
    "kd",
    "Hinton KD: KL(softmax(t/T) || softmax(s/T)), batchmean, x T^2 (`temperature` 4, `t_squared`)",
    build
);
