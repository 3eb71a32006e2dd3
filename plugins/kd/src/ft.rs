//! `ft`: Kim, Park, Kwak, "Paraphrasing Complex Network: Network Compression via Factor
//! Transfer", NeurIPS 2018.

use crate::prelude::*;
use rolekd_models::layers::{Conv, ConvOpts};

/// Parameters of `ft`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct FtParams {
    /// Stages to match; default: each model's last stage.
    #[serde(default)]
    pub features: Option<Vec<FeatureSel>>,
    /// Paraphrase rate k: factors have round(k C_t) channels (default 0.5).
    #[serde(default = "half")]
    pub rate: f64,
    /// Norm of the factor distance: 1 (default, the paper's) or 2.
    #[serde(default = "one")]
    pub p: u32,
    /// Weight of the paraphraser's reconstruction term inside this loss (default 1; 0
    /// leaves the paraphraser at its random init).
    #[serde(default = "onef")]
    pub reconstruction_weight: f64,
}

fn half() -> f64 {
    0.5
}
fn one() -> u32 {
    1
}
fn onef() -> f64 {
    1.0
}

fn lrelu(x: &Tensor) -> Tensor {
    x.clamp_min(0.0) + x.clamp_max(0.0) * 0.1
}

struct Parts {
    /// Paraphraser encoder (teacher side), 2 conv3x3 + LeakyReLU(0.1).
    enc: [Conv; 2],
    /// Paraphraser decoder, conv3x3 - LeakyReLU - conv3x3.
    dec: [Conv; 2],
    /// Translator (student side), 2 conv3x3 + LeakyReLU(0.1).
    tr: [Conv; 2],
}

/// FT = sum over taps [ mean |phi(T(F_s)) - phi(P(F_t))|^p + w_rec mean (D(P(F_t)) - F_t)^2 ]
/// with phi(x) = vec(x) / ||vec(x)||_2 per sample, P the paraphraser's encoder, D its
/// decoder and T the translator (3x3 convs, LeakyReLU 0.1). The paper pre-trains the
/// paraphraser as an autoencoder on the teacher before distilling; here it trains online
/// through the reconstruction term, and the factor term sees P(F_t) detached, so only
/// the translator and the student follow the teacher's factor. Factors are pooled to the
/// smaller size.
pub struct Ft {
    taps: Vec<Tap>,
    parts: Vec<Parts>,
    p: u32,
    w_rec: f64,
}

fn factor(x: &Tensor) -> Tensor {
    l2_normalize(&x.reshape([x.size()[0], -1]), 1)
}

impl Loss for Ft {
    fn compute(&mut self, inputs: &LossInputs<'_>) -> Result<Tensor> {
        sum_over_taps(inputs, &self.taps, "ft", |k, tap, s, t| {
            let parts = &self.parts[k];
            let code = lrelu(&parts.enc[1].forward(&lrelu(&parts.enc[0].forward(&t))));
            let recon = parts.dec[1].forward(&lrelu(&parts.dec[0].forward(&code)));
            let fs = lrelu(&parts.tr[1].forward(&lrelu(&parts.tr[0].forward(&s))));
            let (h, w) = tap.common_hw();
            let d = factor(&pool_to(&fs, h, w)) - factor(&pool_to(&code.detach(), h, w));
            let transfer = if self.p == 1 {
                d.abs().mean(Kind::Float)
            } else {
                d.square().mean(Kind::Float)
            };
            let rec = (recon - &t).square().mean(Kind::Float);
            transfer + rec * self.w_rec
        })
    }
}

/// The registry's constructor.
pub fn build(params: &Params, ctx: &LossCtx, vs: &nn::Path) -> Result<Box<dyn Loss>> {
    let p: FtParams = params.parse()?;
    params.positive("rate", p.rate)?;
    params.non_negative("reconstruction_weight", p.reconstruction_weight)?;
    if p.p != 1 && p.p != 2 {
        return Err(params
            .child_error("p", format!("expected 1 or 2, got {}", p.p))
            .into());
    }
    let taps = resolve_taps(params, ctx, p.features.as_deref(), DefaultTaps::Last, "ft")?;
    let c3 = |v: nn::Path, a: i64, b: i64| {
        let o = ConvOpts {
            padding: 1,
            bias: true,
            ..ConvOpts::default()
        };
        Conv::new(&v, a, b, 3, o)
    };
    let parts = taps
        .iter()
        .enumerate()
        .map(|(i, tap)| {
            let (cs, ct) = (tap.s_channels(), tap.t_channels());
            let f = ((ct as f64 * p.rate).round() as i64).max(1);
            let pv = vs / format!("paraphraser{i}");
            let tv = vs / format!("translator{i}");
            Parts {
                enc: [c3(&pv / "enc1", ct, ct), c3(&pv / "enc2", ct, f)],
                dec: [c3(&pv / "dec1", f, ct), c3(&pv / "dec2", ct, ct)],
                tr: [c3(&tv / "conv1", cs, cs), c3(&tv / "conv2", cs, f)],
            }
        })
        .collect();
    Ok(Box::new(Ft {
        taps,
        parts,
        p: p.p,
        w_rec: p.reconstruction_weight,
    }))
}

rolekd_core::register_plugin!(
    Loss,
    "ft",
    "factor transfer (Kim et al. 2018): paraphraser/translator factors, L1 of normalised factors",
    build
);

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use tch::{nn, Device, Tensor};

    #[test]
    fn ft_matches_independent_computation() {
        let c = ctx(&[("stage3", &[2, 2, 2, 2])], &[("stage3", &[2, 4, 2, 2])]);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut l = build("ft", "{rate: 0.5, reconstruction_weight: 0.3}", &c, &vs);
        let vars = vs.variables();
        let conv = |x: &Tensor, n: &str| {
            x.conv2d(
                &vars[&format!("{n}.weight")],
                Some(&vars[&format!("{n}.bias")]),
                [1, 1],
                [1, 1],
                [1, 1],
                1,
            )
        };
        let leaky = |x: Tensor| {
            let v = vals(&x);
            let v: Vec<f64> = v
                .iter()
                .map(|&a| if a > 0.0 { a } else { 0.1 * a })
                .collect();
            Tensor::from_slice(&v)
                .reshape(x.size().as_slice())
                .to_kind(tch::Kind::Float)
        };
        let s = randn(&[2, 2, 2, 2], true);
        let t = randn(&[2, 4, 2, 2], false);
        let code = leaky(conv(
            &leaky(conv(&t, "paraphraser0.enc1")),
            "paraphraser0.enc2",
        ));
        let rec = conv(
            &leaky(conv(&code, "paraphraser0.dec1")),
            "paraphraser0.dec2",
        );
        let fs = leaky(conv(
            &leaky(conv(&s.detach(), "translator0.conv1")),
            "translator0.conv2",
        ));
        assert_eq!(code.size(), vec![2, 2, 2, 2]);
        let (cm, fm) = (Map4::of(&code), Map4::of(&fs));
        let mut transfer = 0.0;
        for b in 0..2 {
            let (a, c) = (unit(&fm.row(b)), unit(&cm.row(b)));
            transfer += a.iter().zip(&c).map(|(x, y)| (x - y).abs()).sum::<f64>();
        }
        transfer /= 16.0;
        let rv = vals(&rec);
        let tv = vals(&t);
        let recon = rv
            .iter()
            .zip(&tv)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            / 32.0;
        let _ = check_loss(
            l.as_mut(),
            &[("stage3", &s)],
            &[("stage3", &t)],
            transfer + 0.3 * recon,
            "ft",
            &s,
        );
        assert!(vars["paraphraser0.dec2.weight"].grad().defined());
    }
}
