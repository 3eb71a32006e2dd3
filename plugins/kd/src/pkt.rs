//! `pkt`: Passalis & Tefas, "Learning Deep Representations with Probabilistic Knowledge
//! Transfer", ECCV 2018.

use crate::prelude::*;

/// Parameters of `pkt`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct PktParams {
    /// Stages to match (global-average-pooled to vectors; `logits` works too); default:
    /// each model's last stage.
    #[serde(default)]
    pub features: Option<Vec<FeatureSel>>,
}

const EPS: f64 = 1e-7;

/// PKT: with x the l2-normalised pooled features, K_ij = (cos(x_i, x_j) + 1) / 2 and the
/// conditional probabilities P_ij = K_ij / sum_j K_ij, the loss is
/// mean_{i,j} P^t_ij log((P^t_ij + eps) / (P^s_ij + eps)), eps = 1e-7, summed over taps.
/// Dimensions may differ between the models. Zero when the features are equal.
pub struct Pkt {
    taps: Vec<Tap>,
}

fn conditional(f: &Tensor) -> Tensor {
    let x = l2_normalize(&pooled(f), 1);
    let k = (x.matmul(&x.tr()) + 1.0) / 2.0;
    let sum = k.sum_dim_intlist(1, true, Kind::Float);
    k / sum
}

impl Loss for Pkt {
    fn compute(&mut self, inputs: &LossInputs<'_>) -> Result<Tensor> {
        sum_over_taps(inputs, &self.taps, "pkt", |_, _, s, t| {
            let (ps, pt) = (conditional(&s), conditional(&t));
            (&pt * ((&pt + EPS) / (ps + EPS)).log()).mean(Kind::Float)
        })
    }
}

/// The registry's constructor.
pub fn build(params: &Params, ctx: &LossCtx, _vs: &nn::Path) -> Result<Box<dyn Loss>> {
    let p: PktParams = params.parse()?;
    let taps = resolve_taps(params, ctx, p.features.as_deref(), DefaultTaps::Last, "pkt")?;
    Ok(Box::new(Pkt { taps }))
}

rolekd_core::register_plugin!(
    Loss,
    "pkt",
    "probabilistic knowledge transfer (Passalis & Tefas 2018): KL of cosine-kernel conditionals",
    build
);

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use tch::{nn, Device};

    fn p(m: &Map4) -> Vec<Vec<f64>> {
        let b = m.dims[0];
        let x: Vec<Vec<f64>> = (0..b).map(|i| unit(&m.pooled(i))).collect();
        (0..b)
            .map(|i| {
                let k: Vec<f64> = (0..b).map(|j| (dot(&x[i], &x[j]) + 1.0) / 2.0).collect();
                let s: f64 = k.iter().sum();
                k.iter().map(|v| v / s).collect()
            })
            .collect()
    }

    #[test]
    fn pkt_matches_hand_computation() {
        let c = ctx(&[("stage2", &[3, 2, 2, 2])], &[("stage3", &[3, 4, 2, 2])]);
        // Non-negative (post-ReLU-like) features: no near-antipodal pairs, whose
        // (1 + cos) / 2 would cancel badly in f32.
        let s = randn(&[3, 2, 2, 2], false).abs().set_requires_grad(true);
        let t = randn(&[3, 4, 2, 2], false).abs();
        let (ps, pt) = (p(&Map4::of(&s)), p(&Map4::of(&t)));
        let mut expect = 0.0;
        for i in 0..3 {
            for j in 0..3 {
                expect += pt[i][j] * ((pt[i][j] + 1e-7) / (ps[i][j] + 1e-7)).ln();
            }
        }
        expect /= 9.0;
        let vs = nn::VarStore::new(Device::Cpu);
        let mut l = build("pkt", "{}", &c, &vs);
        let (logits, labels) = check_loss(
            l.as_mut(),
            &[("stage2", &s)],
            &[("stage3", &t)],
            expect,
            "pkt",
            &s,
        );
        let mut l = build("pkt", "{features: [logits]}", &c, &vs);
        let so = output(&logits, &[]);
        assert!(scalar(&run(l.as_mut(), &so, Some(&so), &labels)).abs() < 1e-7);
    }
}
