//! `ab`: Heo, Lee, Yun, Choi, "Knowledge Transfer via Distillation of Activation
//! Boundaries Formed by Hidden Neurons", AAAI 2019.

use crate::prelude::*;
use rolekd_models::layers::{bn2d, Conv};
use tch::nn::ModuleT;

/// Parameters of `ab`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct AbParams {
    /// Stages to match; default: each model's last stage.
    #[serde(default)]
    pub features: Option<Vec<FeatureSel>>,
    /// Margin m (default 1).
    #[serde(default = "one")]
    pub margin: f64,
}

fn one() -> f64 {
    1.0
}

/// AB = sum over taps mean over elements of
/// (r + m)^2 [r > -m and t <= 0] + (r - m)^2 [r <= m and t > 0],
/// a squared-hinge surrogate for matching the teacher's activation pattern (t > 0), with
/// r = BN(conv1x1(F_s)) a learnt connector (BN in batch-statistics mode). The paper uses
/// this as an initialisation phase; here it is an ordinary term (mean instead of the
/// paper's per-batch sum). Maps are pooled to the smaller size.
pub struct Ab {
    taps: Vec<Tap>,
    connectors: Vec<(Conv, nn::BatchNorm)>,
    margin: f64,
}

impl Loss for Ab {
    fn compute(&mut self, inputs: &LossInputs<'_>) -> Result<Tensor> {
        let m = self.margin;
        sum_over_taps(inputs, &self.taps, "ab", |k, tap, s, t| {
            let (conv, bn) = &self.connectors[k];
            let (h, w) = tap.common_hw();
            let r = bn.forward_t(&conv.forward(&pool_to(&s, h, w)), true);
            let t = pool_to(&t, h, w);
            let off = r.gt(-m).logical_and(&t.le(0.0)).to_kind(Kind::Float);
            let on = r.le(m).logical_and(&t.gt(0.0)).to_kind(Kind::Float);
            let l = (&r + m).square() * off + (&r - m).square() * on;
            l.mean(Kind::Float)
        })
    }
}

/// The registry's constructor.
pub fn build(params: &Params, ctx: &LossCtx, vs: &nn::Path) -> Result<Box<dyn Loss>> {
    let p: AbParams = params.parse()?;
    params.positive("margin", p.margin)?;
    let taps = resolve_taps(params, ctx, p.features.as_deref(), DefaultTaps::Last, "ab")?;
    let connectors = taps
        .iter()
        .enumerate()
        .map(|(i, tap)| {
            let v = vs / format!("connector{i}");
            (
                Conv::k1(&(&v / "conv"), tap.s_channels(), tap.t_channels(), 1, 32),
                bn2d(&(&v / "bn"), tap.t_channels()),
            )
        })
        .collect();
    Ok(Box::new(Ab {
        taps,
        connectors,
        margin: p.margin,
    }))
}

rolekd_core::register_plugin!(
    Loss,
    "ab",
    "activation boundaries (Heo et al. 2019): margin hinge on teacher activation signs",
    build
);

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use tch::{nn, Device};

    #[test]
    fn ab_matches_hand_computation() {
        let c = ctx(&[("stage3", &[3, 2, 2, 2])], &[("stage3", &[3, 2, 2, 2])]);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut l = build("ab", "{margin: 0.5}", &c, &vs);
        let w = vals(&vs.variables()["connector0.conv.weight"]);
        let s = randn(&[3, 2, 2, 2], true);
        let t = randn(&[3, 2, 2, 2], false);
        let r = conv1x1(&Map4::of(&s), &w, None, 2);
        // BN with batch statistics (biased variance), weight 1, bias 0.
        let mut rn = r.v.clone();
        for ch in 0..2 {
            let xs: Vec<f64> = (0..3)
                .flat_map(|b| (0..4).map(move |p| (b, p)))
                .map(|(b, p)| r.at(b, ch, p))
                .collect();
            let mean = xs.iter().sum::<f64>() / 12.0;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 12.0;
            for b in 0..3 {
                for p in 0..4 {
                    rn[(b * 2 + ch) * 4 + p] = (r.at(b, ch, p) - mean) / (var + 1e-5).sqrt();
                }
            }
        }
        let tv = vals(&t);
        let m = 0.5;
        let expect = rn
            .iter()
            .zip(&tv)
            .map(|(&r, &t)| {
                let off = if r > -m && t <= 0.0 {
                    (r + m).powi(2)
                } else {
                    0.0
                };
                let on = if r <= m && t > 0.0 {
                    (r - m).powi(2)
                } else {
                    0.0
                };
                off + on
            })
            .sum::<f64>()
            / 24.0;
        let _ = check_loss(
            l.as_mut(),
            &[("stage3", &s)],
            &[("stage3", &t)],
            expect,
            "ab",
            &s,
        );
    }
}
