//! `dist`: Huang, You, Wang, Qian, Xu, "Knowledge Distillation from A Stronger Teacher",
//! NeurIPS 2022.

use crate::prelude::*;

/// Parameters of `dist`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct DistParams {
    /// Weight of the inter-class relation, default 1.
    #[serde(default = "one")]
    pub beta: f64,
    /// Weight of the intra-class relation, default 1.
    #[serde(default = "one")]
    pub gamma: f64,
    /// Temperature, default 1.
    #[serde(default = "one")]
    pub temperature: f64,
}

fn one() -> f64 {
    1.0
}

/// Pearson correlation along `dim` (eps 1e-8 in the denominator).
fn pearson(a: &Tensor, b: &Tensor, dim: i64) -> Tensor {
    let a = a - a.mean_dim([dim].as_slice(), true, Kind::Float);
    let b = b - b.mean_dim([dim].as_slice(), true, Kind::Float);
    let num = (&a * &b).sum_dim_intlist([dim].as_slice(), false, Kind::Float);
    let den = a.norm_scalaropt_dim(2, [dim].as_slice(), false)
        * b.norm_scalaropt_dim(2, [dim].as_slice(), false)
        + 1e-8;
    num / den
}

/// DIST = T^2 (beta (1 - mean_i rho(Y_s[i,:], Y_t[i,:])) + gamma (1 - mean_c
/// rho(Y_s[:,c], Y_t[:,c]))), with Y = softmax(z / T) and rho the Pearson correlation:
/// inter-class relations per sample, intra-class relations per class across the batch.
/// Zero when the student's logits equal the teacher's (or any positive-affine map of them
/// in probability space).
pub struct Dist {
    p: DistParams,
}

impl Loss for Dist {
    fn compute(&mut self, inputs: &LossInputs<'_>) -> Result<Tensor> {
        let t = teacher(inputs, "dist")?;
        let temp = self.p.temperature;
        let ys = (&inputs.student.logits / temp).softmax(-1, Kind::Float);
        let yt = (&t.logits / temp).softmax(-1, Kind::Float);
        let inter = -pearson(&ys, &yt, 1).mean(Kind::Float) + 1.0;
        let intra = -pearson(&ys, &yt, 0).mean(Kind::Float) + 1.0;
        Ok((inter * self.p.beta + intra * self.p.gamma) * (temp * temp))
    }
}

/// The registry's constructor.
pub fn build(params: &Params, _ctx: &LossCtx, _vs: &nn::Path) -> Result<Box<dyn Loss>> {
    let p: DistParams = params.parse()?;
    params.non_negative("beta", p.beta)?;
    params.non_negative("gamma", p.gamma)?;
    params.positive("temperature", p.temperature)?;
    Ok(Box::new(Dist { p }))
}

rolekd_core::register_plugin!(
    Loss,
    "dist",
    "DIST (Huang et al. 2022): Pearson inter- and intra-class relations of softmax outputs",
    build
);

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use tch::{nn, Device, Tensor};

    fn rho(a: &[f64], b: &[f64]) -> f64 {
        let ma = a.iter().sum::<f64>() / a.len() as f64;
        let mb = b.iter().sum::<f64>() / b.len() as f64;
        let ca: Vec<f64> = a.iter().map(|x| x - ma).collect();
        let cb: Vec<f64> = b.iter().map(|x| x - mb).collect();
        dot(&ca, &cb) / (dot(&ca, &ca).sqrt() * dot(&cb, &cb).sqrt() + 1e-8)
    }

    #[test]
    fn dist_matches_hand_computation() {
        let s_rows = [[1.0, 2.0, 0.5], [0.3, -1.0, 2.0], [0.0, 0.1, -0.4]];
        let t_rows = [[2.0, 1.0, -0.5], [0.0, 0.5, 3.0], [1.0, -1.0, 0.0]];
        let s = t2(&[&s_rows[0], &s_rows[1], &s_rows[2]]).set_requires_grad(true);
        let t = t2(&[&t_rows[0], &t_rows[1], &t_rows[2]]);
        let temp = 2.0;
        let ys: Vec<Vec<f64>> = s_rows
            .iter()
            .map(|r| softmax(&r.map(|x| x / temp)))
            .collect();
        let yt: Vec<Vec<f64>> = t_rows
            .iter()
            .map(|r| softmax(&r.map(|x| x / temp)))
            .collect();
        let inter = 1.0 - (0..3).map(|i| rho(&ys[i], &yt[i])).sum::<f64>() / 3.0;
        let col = |y: &Vec<Vec<f64>>, c: usize| y.iter().map(|r| r[c]).collect::<Vec<_>>();
        let intra = 1.0 - (0..3).map(|c| rho(&col(&ys, c), &col(&yt, c))).sum::<f64>() / 3.0;
        let expect = temp * temp * (0.5 * inter + 2.0 * intra);

        let vs = nn::VarStore::new(Device::Cpu);
        let mut l = build(
            "dist",
            "{beta: 0.5, gamma: 2, temperature: 2}",
            &ctx(&[], &[]),
            &vs,
        );
        let labels = Tensor::from_slice(&[0i64, 1, 2]);
        check_logit_loss(l.as_mut(), &s, &t, &labels, expect, "dist");
        let v = run(
            l.as_mut(),
            &output(&t, &[]),
            Some(&output(&t, &[])),
            &labels,
        );
        assert!(scalar(&v).abs() < 1e-5);
    }
}
