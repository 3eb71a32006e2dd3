//! `rkd`: Park, Kim, Lu, Cho, "Relational Knowledge Distillation", CVPR 2019.

use crate::prelude::*;
use tch::Reduction;

/// Parameters of `rkd`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct RkdParams {
    /// What to relate: default `[logits]` (as the role-wise paper's code); stages are
    /// global-average-pooled to vectors.
    #[serde(default)]
    pub features: Option<Vec<FeatureSel>>,
    /// l2-normalise the vectors first (default true, as the role-wise paper's code).
    #[serde(default = "yes")]
    pub normalize: bool,
    /// Weight of the distance term (default 50).
    #[serde(default = "fifty")]
    pub distance_weight: f64,
    /// Weight of the angle term (default 100).
    #[serde(default = "hundred")]
    pub angle_weight: f64,
    /// Huber (smooth-L1) threshold delta (default 1).
    #[serde(default = "one")]
    pub delta: f64,
}

fn yes() -> bool {
    true
}
fn fifty() -> f64 {
    50.0
}
fn hundred() -> f64 {
    100.0
}
fn one() -> f64 {
    1.0
}

/// RKD = w_d Huber_delta(psi_D^s, psi_D^t) + w_a Huber_delta(psi_A^s, psi_A^t), means over
/// all pairs / triplets, where psi_D(i, j) = ||x_i - x_j|| / mu (mu: the mean distance
/// over distinct pairs) and psi_A(i, j, k) = <e_ji, e_ki>, e_ji = (x_j - x_i) /
/// ||x_j - x_i||. Summed over taps. Zero when the inputs are equal.
pub struct Rkd {
    taps: Vec<Tap>,
    p: RkdParams,
}

fn vectors(f: &Tensor, normalize: bool) -> Tensor {
    let x = pooled(f);
    if normalize {
        l2_normalize(&x, 1)
    } else {
        x
    }
}

/// Pairwise distances over the mean off-diagonal distance.
pub fn distance_potential(x: &Tensor) -> Tensor {
    let b = x.size()[0];
    let sq = x.square().sum_dim_intlist(1, true, Kind::Float);
    let d2 = (&sq + sq.tr() - x.matmul(&x.tr()) * 2.0).clamp_min(1e-12);
    let eye = Tensor::eye(b, (Kind::Float, x.device()));
    let d = d2.sqrt() * (eye.ones_like() - &eye);
    let positive = d.gt(0.0).to_kind(Kind::Float);
    let mean = d.sum(Kind::Float) / positive.sum(Kind::Float).clamp_min(1.0);
    d / mean.clamp_min(1e-12)
}

/// Cosines of the angles at each anchor i between (x_j - x_i) and (x_k - x_i), [B^3].
pub fn angle_potential(x: &Tensor) -> Tensor {
    let e = l2_normalize(&(x.unsqueeze(0) - x.unsqueeze(1)), 2);
    e.bmm(&e.transpose(1, 2)).view([-1])
}

impl Loss for Rkd {
    fn compute(&mut self, inputs: &LossInputs<'_>) -> Result<Tensor> {
        let mut terms = Vec::new();
        for tap in &self.taps {
            let (s, t) = tap_pair(inputs, tap, "rkd")?;
            let (s, t) = (vectors(&s, self.p.normalize), vectors(&t, self.p.normalize));
            let dist = distance_potential(&s).smooth_l1_loss(
                &distance_potential(&t).detach(),
                Reduction::Mean,
                self.p.delta,
            );
            let angle = angle_potential(&s).smooth_l1_loss(
                &angle_potential(&t).detach(),
                Reduction::Mean,
                self.p.delta,
            );
            terms.push(dist * self.p.distance_weight + angle * self.p.angle_weight);
        }
        Ok(sum_terms(terms, inputs.student.logits.device()))
    }
}

/// The registry's constructor.
pub fn build(params: &Params, ctx: &LossCtx, _vs: &nn::Path) -> Result<Box<dyn Loss>> {
    let p: RkdParams = params.parse()?;
    params.non_negative("distance_weight", p.distance_weight)?;
    params.non_negative("angle_weight", p.angle_weight)?;
    params.positive("delta", p.delta)?;
    let taps = resolve_taps(
        params,
        ctx,
        p.features.as_deref(),
        DefaultTaps::Logits,
        "rkd",
    )?;
    Ok(Box::new(Rkd { taps, p }))
}

rolekd_core::register_plugin!(
    Loss,
    "rkd",
    "relational KD (Park et al. 2019): 50 Huber(distance) + 100 Huber(angle) on l2-normalised logits",
    build
);

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use tch::{nn, Device, Tensor};

    fn huber(a: f64, b: f64, delta: f64) -> f64 {
        let d = (a - b).abs();
        if d < delta {
            0.5 * d * d / delta
        } else {
            d - 0.5 * delta
        }
    }

    fn potentials(x: &[Vec<f64>]) -> (Vec<f64>, Vec<f64>) {
        let b = x.len();
        let dist = |i: usize, j: usize| -> f64 {
            x[i].iter()
                .zip(&x[j])
                .map(|(a, c)| (a - c).powi(2))
                .sum::<f64>()
                .sqrt()
        };
        let mut d = Vec::new();
        let mut sum = 0.0;
        for i in 0..b {
            for j in 0..b {
                let v = if i == j { 0.0 } else { dist(i, j) };
                sum += v;
                d.push(v);
            }
        }
        let mu = sum / (b * (b - 1)) as f64;
        let d = d.iter().map(|v| v / mu).collect();
        let e = |i: usize, j: usize| -> Vec<f64> {
            unit(
                &x[j]
                    .iter()
                    .zip(&x[i])
                    .map(|(a, c)| a - c)
                    .collect::<Vec<_>>(),
            )
        };
        let mut a = Vec::new();
        for i in 0..b {
            for j in 0..b {
                for k in 0..b {
                    a.push(if i == j || i == k {
                        0.0
                    } else {
                        dot(&e(i, j), &e(i, k))
                    });
                }
            }
        }
        (d, a)
    }

    #[test]
    fn rkd_matches_hand_computation() {
        let s = randn(&[4, 3], true);
        let t = randn(&[4, 3], false);
        let rows = |m: &Tensor| -> Vec<Vec<f64>> {
            let v = vals(m);
            v.chunks(3).map(unit).collect()
        };
        let ((ds, as_), (dt, at)) = (potentials(&rows(&s)), potentials(&rows(&t)));
        let mean = |a: &[f64], b: &[f64]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| huber(*x, *y, 1.0))
                .sum::<f64>()
                / a.len() as f64
        };
        let expect = 50.0 * mean(&ds, &dt) + 100.0 * mean(&as_, &at);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut l = build("rkd", "{}", &ctx(&[], &[]), &vs);
        let labels = Tensor::from_slice(&[0i64, 1, 2, 0]);
        check_logit_loss(l.as_mut(), &s, &t, &labels, expect, "rkd");
        let to = output(&t, &[]);
        assert!(scalar(&run(l.as_mut(), &to, Some(&to), &labels)).abs() < 1e-9);
    }
}
