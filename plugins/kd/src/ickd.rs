//! `ickd`: Liu, Shen, Ding, Chen, Zhang, Yu, "Exploring Inter-Channel Correlation for
//! Diversity-preserved Knowledge Distillation", ICCV 2021.

use crate::prelude::*;
use rolekd_models::layers::Conv;

/// Parameters of `ickd`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct IckdParams {
    /// Stages to match; default: each model's last stage.
    #[serde(default)]
    pub features: Option<Vec<FeatureSel>>,
}

/// ICKD-C = sum over taps mean_{b,i,j} (G^s_ij - G^t_ij)^2 with the inter-channel
/// correlation G = F F^T / (H W) of a [C, H W] map, the student's map first sent through
/// a learnt 1x1 conv to the teacher's channel count. Maps are pooled to the smaller size.
pub struct Ickd {
    taps: Vec<Tap>,
    connectors: Vec<Conv>,
}

fn icc(f: &Tensor) -> Tensor {
    let s = f.size();
    let a = f.reshape([s[0], s[1], -1]);
    a.matmul(&a.transpose(1, 2)) / (s[2] * s[3]) as f64
}

impl Loss for Ickd {
    fn compute(&mut self, inputs: &LossInputs<'_>) -> Result<Tensor> {
        sum_over_taps(inputs, &self.taps, "ickd", |k, tap, s, t| {
            let conv = &self.connectors[k];
            let (h, w) = tap.common_hw();
            let gs = icc(&conv.forward(&pool_to(&s, h, w)));
            let gt = icc(&pool_to(&t, h, w));
            (gs - gt).square().mean(Kind::Float)
        })
    }
}

/// The registry's constructor.
pub fn build(params: &Params, ctx: &LossCtx, vs: &nn::Path) -> Result<Box<dyn Loss>> {
    let p: IckdParams = params.parse()?;
    let taps = resolve_taps(
        params,
        ctx,
        p.features.as_deref(),
        DefaultTaps::Last,
        "ickd",
    )?;
    let connectors = taps
        .iter()
        .enumerate()
        .map(|(i, t)| {
            Conv::k1(
                &(vs / format!("connector{i}")),
                t.s_channels(),
                t.t_channels(),
                1,
                32,
            )
        })
        .collect();
    Ok(Box::new(Ickd { taps, connectors }))
}

rolekd_core::register_plugin!(
    Loss,
    "ickd",
    "inter-channel correlation KD (Liu et al. 2021): MSE of channel Gram matrices via a 1x1 conv",
    build
);

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use tch::{nn, Device};

    #[test]
    fn ickd_matches_hand_computation() {
        let c = ctx(&[("stage3", &[2, 2, 2, 2])], &[("stage3", &[2, 3, 2, 2])]);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut l = build("ickd", "{}", &c, &vs);
        let w = vals(&vs.variables()["connector0.weight"]);
        let s = randn(&[2, 2, 2, 2], true);
        let t = randn(&[2, 3, 2, 2], false);
        let r = conv1x1(&Map4::of(&s), &w, None, 3);
        let tm = Map4::of(&t);
        let g = |m: &Map4, b: usize, i: usize, j: usize| {
            (0..4).map(|p| m.at(b, i, p) * m.at(b, j, p)).sum::<f64>() / 4.0
        };
        let mut expect = 0.0;
        for b in 0..2 {
            for i in 0..3 {
                for j in 0..3 {
                    expect += (g(&r, b, i, j) - g(&tm, b, i, j)).powi(2);
                }
            }
        }
        expect /= 18.0;
        let _ = check_loss(
            l.as_mut(),
            &[("stage3", &s)],
            &[("stage3", &t)],
            expect,
            "ickd",
            &s,
        );
    }
}
