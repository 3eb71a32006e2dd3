//! `nst`: Huang & Wang, "Like What You Like: Knowledge Distill via Neuron Selectivity
//! Transfer", arXiv:1707.01219, 2017.

use crate::prelude::*;

/// Parameters of `nst`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct NstParams {
    /// Stages to match; default: each model's last stage.
    #[serde(default)]
    pub features: Option<Vec<FeatureSel>>,
}

/// NST: squared MMD with the polynomial kernel k(x, y) = (x . y)^2 between the channels'
/// l2-normalised spatial activation patterns f_i (one sample per channel, [H W] each):
/// MMD^2 = mean_{i,i'} k(s_i, s_i') + mean_{j,j'} k(t_j, t_j') - 2 mean_{i,j} k(s_i, t_j),
/// averaged over the batch and summed over stages. Maps are pooled to the smaller size;
/// channel counts may differ. Zero when the features are equal.
pub struct Nst {
    taps: Vec<Tap>,
}

fn poly_mean(a: &Tensor, b: &Tensor) -> Tensor {
    a.matmul(&b.transpose(1, 2))
        .square()
        .mean_dim([1i64, 2].as_slice(), false, Kind::Float)
}

impl Loss for Nst {
    fn compute(&mut self, inputs: &LossInputs<'_>) -> Result<Tensor> {
        sum_over_taps(inputs, &self.taps, "nst", |_, tap, s, t| {
            let (h, w) = tap.common_hw();
            let flat = |x: &Tensor| {
                let x = pool_to(x, h, w);
                let sz = x.size();
                l2_normalize(&x.reshape([sz[0], sz[1], -1]), 2)
            };
            let (s, t) = (flat(&s), flat(&t));
            let mmd = poly_mean(&s, &s) + poly_mean(&t, &t) - poly_mean(&s, &t) * 2.0;
            mmd.mean(Kind::Float)
        })
    }
}

/// The registry's constructor.
pub fn build(params: &Params, ctx: &LossCtx, _vs: &nn::Path) -> Result<Box<dyn Loss>> {
    let p: NstParams = params.parse()?;
    let taps = resolve_taps(params, ctx, p.features.as_deref(), DefaultTaps::Last, "nst")?;
    Ok(Box::new(Nst { taps }))
}

rolekd_core::register_plugin!(
    Loss,
    "nst",
    "neuron selectivity transfer (Huang & Wang 2017): polynomial-kernel MMD of channel maps",
    build
);

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use tch::{nn, Device};

    #[test]
    fn nst_matches_hand_computation() {
        let c = ctx(&[("stage2", &[2, 2, 2, 2])], &[("stage2", &[2, 3, 2, 2])]);
        let s = randn(&[2, 2, 2, 2], true);
        let t = randn(&[2, 3, 2, 2], false);
        let (ms, mt) = (Map4::of(&s), Map4::of(&t));
        let chans = |m: &Map4, b: usize| -> Vec<Vec<f64>> {
            (0..m.dims[1])
                .map(|c| unit(&(0..4).map(|i| m.at(b, c, i)).collect::<Vec<_>>()))
                .collect()
        };
        let k = |a: &Vec<Vec<f64>>, b: &Vec<Vec<f64>>| {
            let mut acc = 0.0;
            for x in a {
                for y in b {
                    acc += dot(x, y).powi(2);
                }
            }
            acc / (a.len() * b.len()) as f64
        };
        let mut expect = 0.0;
        for b in 0..2 {
            let (cs, ct) = (chans(&ms, b), chans(&mt, b));
            expect += k(&cs, &cs) + k(&ct, &ct) - 2.0 * k(&cs, &ct);
        }
        expect /= 2.0;
        let vs = nn::VarStore::new(Device::Cpu);
        let mut l = build("nst", "{}", &c, &vs);
        let (logits, labels) = check_loss(
            l.as_mut(),
            &[("stage2", &s)],
            &[("stage2", &t)],
            expect,
            "nst",
            &s,
        );
        let c2 = ctx(&[("stage2", &[2, 3, 2, 2])], &[("stage2", &[2, 3, 2, 2])]);
        let mut l = build("nst", "{}", &c2, &vs);
        let to = output(&logits, &[("stage2", &t)]);
        assert!(scalar(&run(l.as_mut(), &to, Some(&to), &labels)).abs() < 1e-6);
    }
}
