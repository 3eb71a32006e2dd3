//! `logits`: Ba & Caruana, "Do Deep Nets Really Need to be Deep?", NeurIPS 2014.

use crate::prelude::*;

/// `logits` takes no parameters.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct LogitsParams {}

/// Logit regression: `mean_{b,c} (s_bc - t_bc)^2`. Zero when the logits are equal.
pub struct LogitMse;

impl Loss for LogitMse {
    fn compute(&mut self, inputs: &LossInputs<'_>) -> Result<Tensor> {
        let t = teacher(inputs, "logits")?;
        Ok((&inputs.student.logits - &t.logits)
            .square()
            .mean(Kind::Float))
    }
}

/// The registry's constructor.
pub fn build(params: &Params, _ctx: &LossCtx, _vs: &nn::Path) -> Result<Box<dyn Loss>> {
    let _: LogitsParams = params.parse()?;
    Ok(Box::new(LogitMse))
}

rolekd_core::register_plugin!(
    Loss,
    "logits",
    "logit regression (Ba & Caruana 2014): mean squared error between the logits",
    build
);

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use tch::{nn, Device, Tensor};

    #[test]
    fn logit_mse_matches_hand_computation() {
        let s = t2(&[&[1.0, 2.0, 0.5], &[0.3, -1.0, 2.0]]).set_requires_grad(true);
        let t = t2(&[&[2.0, 1.0, -0.5], &[0.0, 0.5, 3.0]]);
        let expect = (1.0 + 1.0 + 1.0 + 0.09 + 2.25 + 1.0) / 6.0;
        let vs = nn::VarStore::new(Device::Cpu);
        let mut l = build("logits", "{}", &ctx(&[], &[]), &vs);
        let labels = Tensor::from_slice(&[0i64, 1]);
        check_logit_loss(l.as_mut(), &s, &t, &labels, expect, "logits");
        let v = run(
            l.as_mut(),
            &output(&t, &[]),
            Some(&output(&t, &[])),
            &labels,
        );
        assert_eq!(scalar(&v), 0.0);
    }
}
