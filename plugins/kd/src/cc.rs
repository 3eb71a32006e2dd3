//! `cc`: Peng, Jin, Liu, Li, Wu, Liu, Zhou, Zhang, "Correlation Congruence for Knowledge
//! Distillation", ICCV 2019.

use crate::prelude::*;

/// Parameters of `cc`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CcParams {
    /// Stages to match (pooled to vectors; `logits` works too); default: each model's
    /// last stage.
    #[serde(default)]
    pub features: Option<Vec<FeatureSel>>,
    /// gamma of the Gaussian RBF kernel exp(-gamma ||x_i - x_j||^2); default 0.4 (paper).
    #[serde(default = "gamma")]
    pub gamma: f64,
}

fn gamma() -> f64 {
    0.4
}

/// CC = sum over taps ||C_s - C_t||_F^2 / B^2, where C_ij = exp(-gamma ||x_i - x_j||^2) is
/// the correlation of the l2-normalised pooled embeddings x of samples i and j. The
/// exact Gaussian kernel is used (the paper approximates it by a 2nd-order Taylor
/// series). Dimensions may differ between models. Zero when the features are equal.
pub struct Cc {
    taps: Vec<Tap>,
    gamma: f64,
}

fn correlation(f: &Tensor, gamma: f64) -> Tensor {
    let x = l2_normalize(&pooled(f), 1);
    let sq = x.square().sum_dim_intlist(1, true, Kind::Float);
    let d2 = (&sq + sq.tr() - x.matmul(&x.tr()) * 2.0).clamp_min(0.0);
    (d2 * -gamma).exp()
}

impl Loss for Cc {
    fn compute(&mut self, inputs: &LossInputs<'_>) -> Result<Tensor> {
        sum_over_taps(inputs, &self.taps, "cc", |_, _, s, t| {
            let b = s.size()[0] as f64;
            let d = correlation(&s, self.gamma) - correlation(&t, self.gamma);
            d.square().sum(Kind::Float) / (b * b)
        })
    }
}

/// The registry's constructor.
pub fn build(params: &Params, ctx: &LossCtx, _vs: &nn::Path) -> Result<Box<dyn Loss>> {
    let p: CcParams = params.parse()?;
    params.positive("gamma", p.gamma)?;
    let taps = resolve_taps(params, ctx, p.features.as_deref(), DefaultTaps::Last, "cc")?;
    Ok(Box::new(Cc {
        taps,
        gamma: p.gamma,
    }))
}

rolekd_core::register_plugin!(
    Loss,
    "cc",
    "correlation congruence (Peng et al. 2019): Gaussian-kernel batch correlations, Frobenius / B^2",
    build
);

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use tch::{nn, Device};

    fn corr(m: &Map4, gamma: f64) -> Vec<Vec<f64>> {
        let b = m.dims[0];
        let x: Vec<Vec<f64>> = (0..b).map(|i| unit(&m.pooled(i))).collect();
        (0..b)
            .map(|i| {
                (0..b)
                    .map(|j| {
                        let d2: f64 = x[i].iter().zip(&x[j]).map(|(a, b)| (a - b).powi(2)).sum();
                        (-gamma * d2).exp()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn cc_matches_hand_computation() {
        let c = ctx(&[("stage3", &[3, 2, 2, 2])], &[("stage3", &[3, 5, 1, 1])]);
        let s = randn(&[3, 2, 2, 2], true);
        let t = randn(&[3, 5, 1, 1], false);
        let (cs, ct) = (corr(&Map4::of(&s), 2.0), corr(&Map4::of(&t), 2.0));
        let expect = mean_sq_diff(&cs, &ct);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut l = build("cc", "{gamma: 2.0}", &c, &vs);
        let (logits, labels) = check_loss(
            l.as_mut(),
            &[("stage3", &s)],
            &[("stage3", &t)],
            expect,
            "cc",
            &s,
        );
        let so = output(&logits, &[("stage3", &t)]);
        let mut l = build(
            "cc",
            "{}",
            &ctx(&[("stage3", &[3, 5, 1, 1])], &[("stage3", &[3, 5, 1, 1])]),
            &vs,
        );
        assert!(scalar(&run(l.as_mut(), &so, Some(&so), &labels)).abs() < 1e-9);
    }
}
