//! `fitnet`: Romero, Ballas, Kahou, Chassang, Gatta, Bengio, "FitNets: Hints for Thin Deep
//! Nets", ICLR 2015.

use crate::prelude::*;
use rolekd_models::layers::{Conv, ConvOpts};

/// Parameters of `fitnet`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FitNetParams {
    /// Hint stages (`stage2`, or `{student: .., teacher: ..}`); default: each model's last
    /// stage.
    #[serde(default)]
    pub features: Option<Vec<FeatureSel>>,
    /// Learn a 1x1 conv regressor from the student's channels to the teacher's (default
    /// true); false needs equal channel counts.
    #[serde(default = "yes")]
    pub connector: bool,
}

fn yes() -> bool {
    true
}

/// FitNet hint loss = sum over taps mean_{b,c,h,w} (r(F_s) - F_t)^2, with r a learnable
/// 1x1 conv (with bias; Kaiming-normal fan-out init) living under this loss's path in the
/// student's VarStore, so it is optimised and checkpointed with the student. Maps of
/// different sizes are average-pooled to the smaller one. Zero (without a connector) when
/// the features are equal.
pub struct FitNet {
    taps: Vec<Tap>,
    connectors: Vec<Option<Conv>>,
}

impl Loss for FitNet {
    fn compute(&mut self, inputs: &LossInputs<'_>) -> Result<Tensor> {
        sum_over_taps(inputs, &self.taps, "fitnet", |k, tap, s, t| {
            let conn = &self.connectors[k];
            let (h, w) = tap.common_hw();
            let s = pool_to(&s, h, w);
            let r = match conn {
                Some(c) => c.forward(&s),
                None => s,
            };
            (r - pool_to(&t, h, w)).square().mean(Kind::Float)
        })
    }
}

/// The registry's constructor.
pub fn build(params: &Params, ctx: &LossCtx, vs: &nn::Path) -> Result<Box<dyn Loss>> {
    let p: FitNetParams = params.parse()?;
    let taps = resolve_taps(
        params,
        ctx,
        p.features.as_deref(),
        DefaultTaps::Last,
        "fitnet",
    )?;
    let mut connectors = Vec::new();
    for (i, tap) in taps.iter().enumerate() {
        if p.connector {
            let opts = ConvOpts {
                bias: true,
                ..ConvOpts::default()
            };
            connectors.push(Some(Conv::new(
                &(vs / format!("connector{i}")),
                tap.s_channels(),
                tap.t_channels(),
                1,
                opts,
            )));
        } else if tap.s_channels() != tap.t_channels() {
            return Err(Error::Invalid(format!(
                "loss `fitnet` with `connector: false` needs equal channels, but at {} the \
                 student has {} and the teacher {}",
                tap.label(),
                tap.s_channels(),
                tap.t_channels()
            )));
        } else {
            connectors.push(None);
        }
    }
    Ok(Box::new(FitNet { taps, connectors }))
}

rolekd_core::register_plugin!(
    Loss,
    "fitnet",
    "FitNets hints (Romero et al. 2015): MSE between a learnt 1x1-conv regression and the teacher",
    build
);

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use tch::{nn, Device};

    #[test]
    fn fitnet_matches_hand_computation() {
        let c = ctx(&[("stage2", &[2, 2, 2, 2])], &[("stage3", &[2, 3, 2, 2])]);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut l = build(
            "fitnet",
            "{features: [{student: stage2, teacher: stage3}]}",
            &c,
            &vs,
        );
        let vars = vs.variables();
        let w = vals(&vars["connector0.weight"]);
        let b = vals(&vars["connector0.bias"]);
        let s = randn(&[2, 2, 2, 2], true);
        let t = randn(&[2, 3, 2, 2], false);
        let r = conv1x1(&Map4::of(&s), &w, Some(&b), 3);
        let tv = vals(&t);
        let expect =
            r.v.iter()
                .zip(&tv)
                .map(|(a, b)| (a - b).powi(2))
                .sum::<f64>()
                / 24.0;
        let (logits, labels) = check_loss(
            l.as_mut(),
            &[("stage2", &s)],
            &[("stage3", &t)],
            expect,
            "fitnet",
            &s,
        );
        assert!(vars["connector0.weight"].grad().defined());

        let c = ctx(&[("stage3", &[2, 3, 2, 2])], &[("stage3", &[2, 3, 2, 2])]);
        let mut l = build("fitnet", "{connector: false}", &c, &vs);
        let to = output(&logits, &[("stage3", &t)]);
        assert_eq!(scalar(&run(l.as_mut(), &to, Some(&to), &labels)), 0.0);
        let c = ctx(&[("stage3", &[2, 2, 2, 2])], &[("stage3", &[2, 3, 2, 2])]);
        assert!(build_err("fitnet", "{connector: false}", &c).contains("equal channels"));
    }
}
