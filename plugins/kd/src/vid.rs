//! `vid`: Ahn, Hu, Damianou, Lawrence, Dai, "Variational Information Distillation for
//! Knowledge Transfer", CVPR 2019.

use crate::prelude::*;
use rolekd_models::layers::Conv;

/// Parameters of `vid`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct VidParams {
    /// Stages to match; default: each model's last stage.
    #[serde(default)]
    pub features: Option<Vec<FeatureSel>>,
    /// Hidden channels of the mean regressor (default: the teacher's channels).
    #[serde(default)]
    pub mid_channels: Option<i64>,
    /// Initial predicted variance (default 5).
    #[serde(default = "five")]
    pub init_variance: f64,
}

fn five() -> f64 {
    5.0
}

const EPS: f64 = 1e-5;

/// VID = sum over taps mean_{b,c,h,w} [ (t - mu(s))^2 / (2 sigma_c^2) + log(sigma_c) ]
/// (the Gaussian negative log-likelihood of the teacher's features given the student's,
/// up to a constant; the loss term holds 0.5 log sigma^2), where mu is a learnt
/// 1x1 conv - ReLU - 1x1 conv - ReLU - 1x1 conv regressor and
/// sigma_c^2 = softplus(alpha_c) + 1e-5 a learnt per-channel variance. Not zero at
/// s == t: the variance term remains.
pub struct Vid {
    taps: Vec<Tap>,
    heads: Vec<([Conv; 3], Tensor)>,
}

impl Loss for Vid {
    fn compute(&mut self, inputs: &LossInputs<'_>) -> Result<Tensor> {
        sum_over_taps(inputs, &self.taps, "vid", |k, tap, s, t| {
            let (convs, alpha) = &self.heads[k];
            let (h, w) = tap.common_hw();
            let s = pool_to(&s, h, w);
            let t = pool_to(&t, h, w);
            let mu = convs[2].forward(&convs[1].forward(&convs[0].forward(&s).relu()).relu());
            let var = (alpha.softplus() + EPS).view([1, -1, 1, 1]);
            let nll = ((mu - t).square() / &var + var.log()) * 0.5;
            nll.mean(Kind::Float)
        })
    }
}

/// The registry's constructor.
pub fn build(params: &Params, ctx: &LossCtx, vs: &nn::Path) -> Result<Box<dyn Loss>> {
    let p: VidParams = params.parse()?;
    params.positive("init_variance", p.init_variance)?;
    if let Some(m) = p.mid_channels {
        params.at_least("mid_channels", m, 1)?;
    }
    let taps = resolve_taps(params, ctx, p.features.as_deref(), DefaultTaps::Last, "vid")?;
    let init = ((p.init_variance - EPS).exp() - 1.0).ln();
    let heads = taps
        .iter()
        .enumerate()
        .map(|(i, tap)| {
            let v = vs / format!("regressor{i}");
            let (cs, ct) = (tap.s_channels(), tap.t_channels());
            let mid = p.mid_channels.unwrap_or(ct);
            let k1 = |p: nn::Path, a, b| Conv::k1(&p, a, b, 1, 32);
            (
                [
                    k1(&v / "conv1", cs, mid),
                    k1(&v / "conv2", mid, mid),
                    k1(&v / "conv3", mid, ct),
                ],
                v.var("alpha", &[ct], nn::Init::Const(init)),
            )
        })
        .collect();
    Ok(Box::new(Vid { taps, heads }))
}

rolekd_core::register_plugin!(
    Loss,
    "vid",
    "variational information distillation (Ahn et al. 2019): Gaussian NLL of teacher features",
    build
);

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use tch::{nn, Device};

    #[test]
    fn vid_matches_hand_computation() {
        let c = ctx(&[("stage3", &[2, 2, 2, 2])], &[("stage3", &[2, 3, 2, 2])]);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut l = build("vid", "{mid_channels: 4, init_variance: 2.0}", &c, &vs);
        let vars = vs.variables();
        let w = |n: &str| vals(&vars[&format!("regressor0.{n}.weight")]);
        let relu = |m: Map4| Map4 {
            dims: m.dims,
            v: m.v.iter().map(|x| x.max(0.0)).collect(),
        };
        let s = randn(&[2, 2, 2, 2], true);
        let t = randn(&[2, 3, 2, 2], false);
        let h = relu(conv1x1(&Map4::of(&s), &w("conv1"), None, 4));
        let h = relu(conv1x1(&h, &w("conv2"), None, 4));
        let mu = conv1x1(&h, &w("conv3"), None, 3);
        let alpha = vals(&vars["regressor0.alpha"]);
        let var: Vec<f64> = alpha.iter().map(|a| (1.0 + a.exp()).ln() + 1e-5).collect();
        assert!((var[0] - 2.0).abs() < 1e-4);
        let tm = Map4::of(&t);
        let mut expect = 0.0;
        for b in 0..2 {
            for ch in 0..3 {
                for p in 0..4 {
                    let d = tm.at(b, ch, p) - mu.at(b, ch, p);
                    expect += 0.5 * (d * d / var[ch] + var[ch].ln());
                }
            }
        }
        expect /= 24.0;
        let _ = check_loss(
            l.as_mut(),
            &[("stage3", &s)],
            &[("stage3", &t)],
            expect,
            "vid",
            &s,
        );
        assert!(vars["regressor0.alpha"].grad().defined());
    }
}
