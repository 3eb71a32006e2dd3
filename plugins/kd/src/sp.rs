//! `sp`: Tung & Mori, "Similarity-Preserving Knowledge Distillation", ICCV 2019.

use crate::prelude::*;

/// Parameters of `sp`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct SpParams {
    /// Stages to match; default: each model's last stage.
    #[serde(default)]
    pub features: Option<Vec<FeatureSel>>,
}

/// SP = sum over stages ||G~_s - G~_t||_F^2 / B^2, where G = A A^T for the batch's
/// flattened activations A [B, C H W] and G~ has l2-normalised rows. Shapes may differ
/// between the models. Zero when the features are equal (or equal up to scale).
pub struct Sp {
    taps: Vec<Tap>,
}

fn similarity(f: &Tensor) -> Tensor {
    let a = f.reshape([f.size()[0], -1]);
    l2_normalize(&a.matmul(&a.tr()), 1)
}

impl Loss for Sp {
    fn compute(&mut self, inputs: &LossInputs<'_>) -> Result<Tensor> {
        sum_over_taps(inputs, &self.taps, "sp", |_, _, s, t| {
            let b = s.size()[0] as f64;
            let d = similarity(&s) - similarity(&t);
            d.square().sum(Kind::Float) / (b * b)
        })
    }
}

/// The registry's constructor.
pub fn build(params: &Params, ctx: &LossCtx, _vs: &nn::Path) -> Result<Box<dyn Loss>> {
    let p: SpParams = params.parse()?;
    let taps = resolve_taps(params, ctx, p.features.as_deref(), DefaultTaps::Last, "sp")?;
    Ok(Box::new(Sp { taps }))
}

rolekd_core::register_plugin!(
    Loss,
    "sp",
    "similarity-preserving KD (Tung & Mori 2019): batch similarity matrices, Frobenius / B^2",
    build
);

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use tch::{nn, Device};

    fn g(m: &Map4) -> Vec<Vec<f64>> {
        let b = m.dims[0];
        (0..b)
            .map(|i| {
                unit(
                    &(0..b)
                        .map(|j| dot(&m.row(i), &m.row(j)))
                        .collect::<Vec<_>>(),
                )
            })
            .collect()
    }

    #[test]
    fn sp_matches_hand_computation() {
        let c = ctx(&[("stage3", &[3, 2, 2, 2])], &[("stage4", &[3, 4, 1, 1])]);
        let s = randn(&[3, 2, 2, 2], true);
        let t = randn(&[3, 4, 1, 1], false);
        let (gs, gt) = (g(&Map4::of(&s)), g(&Map4::of(&t)));
        let expect = mean_sq_diff(&gs, &gt);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut l = build("sp", "{}", &c, &vs);
        let (logits, labels) = check_loss(
            l.as_mut(),
            &[("stage3", &s)],
            &[("stage4", &t)],
            expect,
            "sp",
            &s,
        );
        let mut l = build(
            "sp",
            "{features: [{student: stage4, teacher: stage4}]}",
            &ctx(&[("stage4", &[3, 4, 1, 1])], &[("stage4", &[3, 4, 1, 1])]),
            &vs,
        );
        let to = output(&logits, &[("stage4", &t)]);
        assert!(scalar(&run(l.as_mut(), &to, Some(&to), &labels)).abs() < 1e-9);
    }
}
