//! `at`: Zagoruyko & Komodakis, "Paying More Attention to Attention: Improving the
//! Performance of CNNs via Attention Transfer", ICLR 2017.

use crate::prelude::*;

/// Parameters of `at`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct AtParams {
    /// Stages to match (`stage2`, or `{student: .., teacher: ..}`); default: every stage
    /// name both models have.
    #[serde(default)]
    pub features: Option<Vec<FeatureSel>>,
    /// beta: the loss is (beta / 2) per stage; default 1000 (the paper's).
    #[serde(default = "thousand")]
    pub beta: f64,
    /// Exponent p of the attention map mean_c |F|^p; default 2.
    #[serde(default = "two")]
    pub p: f64,
}

fn thousand() -> f64 {
    1000.0
}
fn two() -> f64 {
    2.0
}

/// AT = sum over stages (beta / 2) mean_{b,i} (Q_s - Q_t)^2, where
/// Q = vec(mean_c |F_c|^p) / ||vec(mean_c |F_c|^p)||_2 is the l2-normalised spatial
/// attention map. Maps of different sizes are average-pooled to the smaller one first.
/// Zero when the features are equal.
pub struct At {
    taps: Vec<Tap>,
    beta: f64,
    p: f64,
}

/// The normalised attention map `[B, H W]`.
pub fn attention(f: &Tensor, p: f64) -> Tensor {
    let b = f.size()[0];
    let a = f.abs().pow_tensor_scalar(p).mean_dim(1, false, Kind::Float);
    l2_normalize(&a.reshape([b, -1]), 1)
}

impl Loss for At {
    fn compute(&mut self, inputs: &LossInputs<'_>) -> Result<Tensor> {
        sum_over_taps(inputs, &self.taps, "at", |_, tap, s, t| {
            let (h, w) = tap.common_hw();
            let d = attention(&pool_to(&s, h, w), self.p) - attention(&pool_to(&t, h, w), self.p);
            d.square().mean(Kind::Float) * (self.beta / 2.0)
        })
    }
}

/// The registry's constructor.
pub fn build(params: &Params, ctx: &LossCtx, _vs: &nn::Path) -> Result<Box<dyn Loss>> {
    let p: AtParams = params.parse()?;
    params.positive("beta", p.beta)?;
    params.positive("p", p.p)?;
    let taps = resolve_taps(
        params,
        ctx,
        p.features.as_deref(),
        DefaultTaps::Common,
        "at",
    )?;
    Ok(Box::new(At {
        taps,
        beta: p.beta,
        p: p.p,
    }))
}

rolekd_core::register_plugin!(
    Loss,
    "at",
    "attention transfer (Zagoruyko & Komodakis 2017): beta/2 mean (Q_s - Q_t)^2 per stage",
    build
);

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use tch::{nn, Device, Tensor};

    /// The attention map of sample `b`: mean over channels of |F|^p, L2-normalised.
    fn q(m: &Map4, b: usize, p: f64) -> Vec<f64> {
        let a: Vec<f64> = (0..m.hw())
            .map(|i| {
                (0..m.dims[1])
                    .map(|c| m.at(b, c, i).abs().powf(p))
                    .sum::<f64>()
                    / m.dims[1] as f64
            })
            .collect();
        unit(&a)
    }

    #[test]
    fn at_matches_hand_computation() {
        // The paper's p = 2, and p = 3 and 1, where |F| and the exponent both matter.
        for p in [2.0, 3.0, 1.0] {
            at_matches_hand_computation_at(p);
        }
    }

    fn at_matches_hand_computation_at(p: f64) {
        let c = ctx(
            &[("stage1", &[2, 2, 2, 2]), ("stage2", &[2, 3, 2, 2])],
            &[("stage1", &[2, 4, 2, 2]), ("stage2", &[2, 5, 2, 2])],
        );
        let s1 = randn(&[2, 2, 2, 2], true);
        let s2 = randn(&[2, 3, 2, 2], true);
        let t1 = randn(&[2, 4, 2, 2], false);
        let t2_ = randn(&[2, 5, 2, 2], false);
        let mut expect = 0.0;
        for (s, t) in [(&s1, &t1), (&s2, &t2_)] {
            let (ms, mt) = (Map4::of(s), Map4::of(t));
            let mut acc = 0.0;
            for b in 0..2 {
                let (qs, qt) = (q(&ms, b, p), q(&mt, b, p));
                acc += qs
                    .iter()
                    .zip(&qt)
                    .map(|(a, b)| (a - b).powi(2))
                    .sum::<f64>();
            }
            expect += 1000.0 / 2.0 * acc / 8.0;
        }
        let vs = nn::VarStore::new(Device::Cpu);
        let mut l = build("at", &format!("{{p: {p}}}"), &c, &vs);
        let (logits, labels) = check_loss(
            l.as_mut(),
            &[("stage1", &s1), ("stage2", &s2)],
            &[("stage1", &t1), ("stage2", &t2_)],
            expect,
            &format!("at, p = {p}"),
            &s1,
        );
        let to = output(&logits, &[("stage1", &t1), ("stage2", &t2_)]);
        let v = run(l.as_mut(), &to, Some(&to), &labels);
        assert!(scalar(&v).abs() < 1e-6);
    }

    #[test]
    fn at_pools_to_the_smaller_map_and_names_missing_stages() {
        let c = ctx(&[("stage3", &[2, 2, 4, 4])], &[("stage3", &[2, 2, 2, 2])]);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut l = build("at", "{features: [stage3]}", &c, &vs);
        let s = randn(&[2, 2, 4, 4], true);
        let t = randn(&[2, 2, 2, 2], false);
        let logits = randn(&[2, 3], false);
        let v = run(
            l.as_mut(),
            &output(&logits, &[("stage3", &s)]),
            Some(&output(&logits, &[("stage3", &t)])),
            &Tensor::from_slice(&[0i64, 1]),
        );
        grad_ok(&v, &s, "at pooled");
        let msg = build_err("at", "{features: [stage4]}", &c);
        assert!(
            msg.contains("stage4") && msg.contains("[stage3, logits]"),
            "{msg}"
        );
        let msg = build_err(
            "at",
            "{features: [stage3]}",
            &ctx(&[("stage3", &[2, 2, 4, 4])], &[]),
        );
        assert!(msg.contains("teacher has none"), "{msg}");
    }
}
