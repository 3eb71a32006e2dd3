//! `fsp`: Yim, Joo, Bae, Kim, "A Gift from Knowledge Distillation: Fast Optimization,
//! Network Minimization and Transfer Learning", CVPR 2017.

use crate::prelude::*;

/// Parameters of `fsp`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FspParams {
    /// Stages, at least two; consecutive entries form the (F1, F2) pairs; default: every
    /// stage name both models have.
    #[serde(default)]
    pub features: Option<Vec<FeatureSel>>,
}

/// FSP = sum over consecutive tap pairs mean_{b,i,j} (G^s_ij - G^t_ij)^2, where the
/// "flow" matrix G(F1, F2)_ij = sum_{h,w} F1_i(h,w) F2_j(h,w) / (H W) relates the channels
/// of two stages (the larger map average-pooled to the smaller). Student and teacher need
/// equal channel counts at each tapped stage. Zero when the features are equal.
pub struct Fsp {
    taps: Vec<Tap>,
}

fn flow(a: &Tensor, b: &Tensor) -> Tensor {
    let (sa, sb) = (a.size(), b.size());
    let (h, w) = (sa[2].min(sb[2]), sa[3].min(sb[3]));
    let a = pool_to(a, h, w).reshape([sa[0], sa[1], -1]);
    let b = pool_to(b, h, w).reshape([sb[0], sb[1], -1]);
    a.matmul(&b.transpose(1, 2)) / (h * w) as f64
}

impl Loss for Fsp {
    fn compute(&mut self, inputs: &LossInputs<'_>) -> Result<Tensor> {
        let mut maps = Vec::new();
        for tap in &self.taps {
            maps.push(tap_pair(inputs, tap, "fsp")?);
        }
        let terms = maps
            .windows(2)
            .map(|w| {
                let gs = flow(&w[0].0, &w[1].0);
                let gt = flow(&w[0].1, &w[1].1);
                (gs - gt).square().mean(Kind::Float)
            })
            .collect();
        Ok(sum_terms(terms, inputs.student.logits.device()))
    }
}

/// The registry's constructor.
pub fn build(params: &Params, ctx: &LossCtx, _vs: &nn::Path) -> Result<Box<dyn Loss>> {
    let p: FspParams = params.parse()?;
    let taps = resolve_taps(
        params,
        ctx,
        p.features.as_deref(),
        DefaultTaps::Common,
        "fsp",
    )?;
    need_taps(&taps, 2, "fsp")?;
    for t in &taps {
        if t.s_channels() != t.t_channels() {
            return Err(Error::Invalid(format!(
                "loss `fsp` compares channel-by-channel flow matrices, but at {} the student \
                 has {} channels and the teacher {}",
                t.label(),
                t.s_channels(),
                t.t_channels()
            )));
        }
    }
    Ok(Box::new(Fsp { taps }))
}

rolekd_core::register_plugin!(
    Loss,
    "fsp",
    "flow of solution procedure (Yim et al. 2017): MSE of inter-stage Gram (FSP) matrices",
    build
);

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use tch::{nn, Device};

    fn flow(a: &Map4, b: &Map4, n: usize) -> Vec<f64> {
        // a at 2x2 and b at 2x2 here (no pooling in this test)
        let mut g = Vec::new();
        for i in 0..a.dims[1] {
            for j in 0..b.dims[1] {
                g.push(
                    (0..a.hw())
                        .map(|p| a.at(n, i, p) * b.at(n, j, p))
                        .sum::<f64>()
                        / a.hw() as f64,
                );
            }
        }
        g
    }

    #[test]
    fn fsp_matches_hand_computation() {
        let shapes: [(&str, &[i64]); 2] = [("stage1", &[2, 2, 2, 2]), ("stage2", &[2, 3, 2, 2])];
        let c = ctx(&shapes, &shapes);
        let s1 = randn(&[2, 2, 2, 2], true);
        let s2 = randn(&[2, 3, 2, 2], true);
        let t1 = randn(&[2, 2, 2, 2], false);
        let t2_ = randn(&[2, 3, 2, 2], false);
        let mut expect = 0.0;
        for n in 0..2 {
            let gs = flow(&Map4::of(&s1), &Map4::of(&s2), n);
            let gt = flow(&Map4::of(&t1), &Map4::of(&t2_), n);
            expect += gs
                .iter()
                .zip(&gt)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>();
        }
        expect /= 12.0;
        let vs = nn::VarStore::new(Device::Cpu);
        let mut l = build("fsp", "{}", &c, &vs);
        let (logits, labels) = check_loss(
            l.as_mut(),
            &[("stage1", &s1), ("stage2", &s2)],
            &[("stage1", &t1), ("stage2", &t2_)],
            expect,
            "fsp",
            &s1,
        );
        let to = output(&logits, &[("stage1", &t1), ("stage2", &t2_)]);
        assert!(scalar(&run(l.as_mut(), &to, Some(&to), &labels)).abs() < 1e-9);

        let msg = build_err("fsp", "{features: [stage1]}", &c);
        assert!(msg.contains("at least 2"), "{msg}");
        let c2 = ctx(
            &shapes,
            &[("stage1", &[2, 4, 2, 2]), ("stage2", &[2, 3, 2, 2])],
        );
        let msg = build_err("fsp", "{}", &c2);
        assert!(msg.contains("channels"), "{msg}");
    }
}
