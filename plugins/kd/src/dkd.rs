//! `dkd`: Zhao, Cui, Song, Qiu, Liang, "Decoupled Knowledge Distillation", CVPR 2022.

use crate::prelude::*;

/// Parameters of `dkd`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct DkdParams {
    /// Weight of target-class KD (TCKD), default 1.
    #[serde(default = "one")]
    pub alpha: f64,
    /// Weight of non-target-class KD (NCKD), default 8 (the paper's CIFAR-100 setting).
    #[serde(default = "eight")]
    pub beta: f64,
    /// Temperature T, default 4.
    #[serde(default = "four")]
    pub temperature: f64,
    /// Linear warm-up over this many epochs: factor min((epoch + 1) / warmup, 1);
    /// default 20 (the paper's code); 0 disables.
    #[serde(default = "twenty")]
    pub warmup_epochs: usize,
}

fn one() -> f64 {
    1.0
}
fn eight() -> f64 {
    8.0
}
fn four() -> f64 {
    4.0
}
fn twenty() -> usize {
    20
}

/// DKD = alpha TCKD + beta NCKD, both times T^2 and averaged over the batch:
/// - TCKD = KL(b_t || b_s) with b = [p_y, 1 - p_y], p = softmax(z / T), y the label;
/// - NCKD = KL(p^_t || p^_s) with p^ the softmax of z / T over the non-target classes.
///
/// Scaled by the warm-up factor. Zero when student and teacher logits are equal.
pub struct Dkd {
    p: DkdParams,
}

/// The unwarmed DKD value.
pub fn dkd_loss(
    s: &Tensor,
    t: &Tensor,
    labels: &Tensor,
    alpha: f64,
    beta: f64,
    temp: f64,
) -> Tensor {
    let classes = s.size()[1];
    let gt = labels.one_hot(classes).to_kind(Kind::Float);
    let other = gt.ones_like() - &gt;
    let ps = (s / temp).softmax(-1, Kind::Float);
    let pt = (t / temp).softmax(-1, Kind::Float);
    let binary = |p: &Tensor| {
        Tensor::stack(
            &[
                (p * &gt).sum_dim_intlist(-1, false, Kind::Float),
                (p * &other).sum_dim_intlist(-1, false, Kind::Float),
            ],
            1,
        )
    };
    let (bs, bt) = (binary(&ps), binary(&pt));
    let b = s.size()[0] as f64;
    let tckd = (&bt * (bt.clamp_min(1e-12).log() - bs.clamp_min(1e-12).log())).sum(Kind::Float) / b;
    let mask = &gt * 1000.0;
    let log_ns = (s / temp - &mask).log_softmax(-1, Kind::Float);
    let log_nt = (t / temp - &mask).log_softmax(-1, Kind::Float);
    let nckd = (log_nt.exp() * (&log_nt - log_ns)).sum(Kind::Float) / b;
    (tckd * alpha + nckd * beta) * (temp * temp)
}

impl Loss for Dkd {
    fn compute(&mut self, inputs: &LossInputs<'_>) -> Result<Tensor> {
        let t = teacher(inputs, "dkd")?;
        let warm = if self.p.warmup_epochs == 0 {
            1.0
        } else {
            ((inputs.epoch + 1) as f64 / self.p.warmup_epochs as f64).min(1.0)
        };
        Ok(dkd_loss(
            &inputs.student.logits,
            &t.logits,
            inputs.labels,
            self.p.alpha,
            self.p.beta,
            self.p.temperature,
        ) * warm)
    }
}

/// The registry's constructor.
pub fn build(params: &Params, _ctx: &LossCtx, _vs: &nn::Path) -> Result<Box<dyn Loss>> {
    let p: DkdParams = params.parse()?;
    params.non_negative("alpha", p.alpha)?;
    params.non_negative("beta", p.beta)?;
    params.positive("temperature", p.temperature)?;
    Ok(Box::new(Dkd { p }))
}

rolekd_core::register_plugin!(
    Loss,
    "dkd",
    "Decoupled KD (Zhao et al. 2022): alpha TCKD + beta NCKD, x T^2, with warm-up",
    build
);

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use tch::{nn, Device, Tensor};

    const S: [[f64; 3]; 2] = [[1.0, 2.0, 0.5], [0.3, -1.0, 2.0]];
    const T: [[f64; 3]; 2] = [[2.0, 1.0, -0.5], [0.0, 0.5, 3.0]];
    const Y: [usize; 2] = [0, 2];

    fn kl(p: &[f64], q: &[f64]) -> f64 {
        p.iter().zip(q).map(|(a, b)| a * (a.ln() - b.ln())).sum()
    }

    fn by_hand(alpha: f64, beta: f64, temp: f64) -> f64 {
        let mut total = 0.0;
        for i in 0..2 {
            let ps = softmax(&S[i].map(|x| x / temp));
            let pt = softmax(&T[i].map(|x| x / temp));
            let y = Y[i];
            let tckd = kl(&[pt[y], 1.0 - pt[y]], &[ps[y], 1.0 - ps[y]]);
            let rest = |v: &[f64]| -> Vec<f64> {
                let s: f64 = (0..3).filter(|&c| c != y).map(|c| v[c]).sum();
                (0..3).filter(|&c| c != y).map(|c| v[c] / s).collect()
            };
            let nckd = kl(&rest(&pt), &rest(&ps));
            total += alpha * tckd + beta * nckd;
        }
        total / 2.0 * temp * temp
    }

    #[test]
    fn dkd_matches_hand_computation_and_warms_up() {
        let vs = nn::VarStore::new(Device::Cpu);
        let c = ctx(&[], &[]);
        let labels = Tensor::from_slice(&[Y[0] as i64, Y[1] as i64]);
        let s = t2(&[&S[0], &S[1]]).set_requires_grad(true);
        let t = t2(&[&T[0], &T[1]]);
        let mut l = build("dkd", "{warmup_epochs: 0}", &c, &vs);
        let v = run(
            l.as_mut(),
            &output(&s, &[]),
            Some(&output(&t, &[])),
            &labels,
        );
        close(scalar(&v), by_hand(1.0, 8.0, 4.0), "dkd");
        grad_ok(&v, &s, "dkd");

        let mut l = build("dkd", "{alpha: 0.5, beta: 2, temperature: 2}", &c, &vs);
        let idx = Tensor::from_slice(&[0i64, 1]);
        let v = run_at(
            l.as_mut(),
            &output(&s, &[]),
            Some(&output(&t, &[])),
            &labels,
            &idx,
            4,
        );
        close(
            scalar(&v),
            by_hand(0.5, 2.0, 2.0) * 5.0 / 20.0,
            "dkd warm-up",
        );

        let v = run(
            l.as_mut(),
            &output(&t, &[]),
            Some(&output(&t, &[])),
            &labels,
        );
        assert!(scalar(&v).abs() < 1e-6);
    }
}
