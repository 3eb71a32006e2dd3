//! `crd`: Tian, Krishnan, Isola, "Contrastive Representation Distillation", ICLR 2020.

use crate::prelude::*;
use rolekd_models::layers::Linear;

/// Parameters of `crd`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CrdParams {
    /// The stage to embed (global-average-pooled), one entry; default: each model's last
    /// stage.
    #[serde(default)]
    pub features: Option<Vec<FeatureSel>>,
    /// Embedding dimension (default 128).
    #[serde(default = "dim")]
    pub feat_dim: i64,
    /// Negatives per positive, K (default 4096; at most train_size - 1 are used; the paper
    /// uses 16384).
    #[serde(default = "negatives")]
    pub negatives: i64,
    /// NCE temperature (default 0.07).
    #[serde(default = "temp")]
    pub temperature: f64,
    /// Memory-bank momentum (default 0.5).
    #[serde(default = "momentum")]
    pub momentum: f64,
}

fn dim() -> i64 {
    128
}
fn negatives() -> i64 {
    4096
}
fn temp() -> f64 {
    0.07
}
fn momentum() -> f64 {
    0.5
}

/// CRD with NCE: embeddings v_s = norm(g_s(f_s)), v_t = norm(g_t(f_t)) (learnt linear
/// heads), memory banks M_s, M_t of one embedding per training image (indexed by
/// `LossInputs::indices`, size `LossCtx::train_size`). For each sample i, K negatives j
/// are drawn uniformly from the training set; the scores h(v, m) = exp(v . m / tau) / Z
/// (Z fixed at the first batch as mean score x N) enter the NCE objective
/// L(x) = -(1/B) sum_i [ log(x_i0 / (x_i0 + K/N)) + sum_j log((K/N) / (x_ij + K/N)) ],
/// once for the student's embedding against the teacher's bank and once for the
/// teacher's embedding against the student's bank. Afterwards M[i] <- norm(m M[i] + (1 - m)
/// v_i). The banks live in the student's VarStore as non-trainable buffers (checkpointed).
pub struct Crd {
    tap: Tap,
    embed_s: Linear,
    embed_t: Linear,
    mem_s: Tensor,
    mem_t: Tensor,
    n: i64,
    k: i64,
    temperature: f64,
    momentum: f64,
    z: Option<(f64, f64)>,
}

const EPS: f64 = 1e-7;

impl Crd {
    /// The NCE loss of scores x [B, 1 + K] (positive first).
    fn nce(&self, x: &Tensor) -> Tensor {
        let b = x.size()[0] as f64;
        let kpn = self.k as f64 / self.n as f64;
        let pos = x.narrow(1, 0, 1);
        let neg = x.narrow(1, 1, self.k);
        let log_d1 = (&pos / (&pos + kpn + EPS)).log();
        let log_d0 = ((neg.ones_like() * kpn) / (neg + kpn + EPS)).log();
        -(log_d1.sum(Kind::Float) + log_d0.sum(Kind::Float)) / b
    }

    /// The loss for given embeddings, batch indices [B] and contrast indices [B, 1 + K]
    /// (column 0 = the batch index); updates the banks.
    pub fn loss_with_contrast(
        &mut self,
        v_s: &Tensor,
        v_t: &Tensor,
        idx: &Tensor,
        contrast: &Tensor,
    ) -> Tensor {
        let b = v_s.size()[0];
        let d = v_s.size()[1];
        let flat = contrast.view([-1]);
        let w_s = self.mem_s.index_select(0, &flat).view([b, -1, d]).detach();
        let w_t = self.mem_t.index_select(0, &flat).view([b, -1, d]).detach();
        let out_t = (w_s.bmm(&v_t.unsqueeze(2)).squeeze_dim(2) / self.temperature).exp();
        let out_s = (w_t.bmm(&v_s.unsqueeze(2)).squeeze_dim(2) / self.temperature).exp();
        let n = self.n as f64;
        let (z_s, z_t) = *self.z.get_or_insert_with(|| {
            (
                out_s.mean(Kind::Float).double_value(&[]) * n,
                out_t.mean(Kind::Float).double_value(&[]) * n,
            )
        });
        let loss = self.nce(&(out_s / z_s)) + self.nce(&(out_t / z_t));
        tch::no_grad(|| {
            let m = self.momentum;
            for (mem, v) in [(&self.mem_s, v_s), (&self.mem_t, v_t)] {
                let upd = mem.index_select(0, idx) * m + v.detach() * (1.0 - m);
                let upd = l2_normalize(&upd, 1);
                let mut mem = mem.shallow_clone();
                let _ = mem.index_copy_(0, idx, &upd);
            }
        });
        loss
    }
}

impl Loss for Crd {
    fn compute(&mut self, inputs: &LossInputs<'_>) -> Result<Tensor> {
        let (s, t) = tap_pair(inputs, &self.tap, "crd")?;
        let v_s = l2_normalize(&self.embed_s.forward(&pooled(&s)), 1);
        let v_t = l2_normalize(&self.embed_t.forward(&pooled(&t)), 1);
        let dev = v_s.device();
        let idx = inputs.indices.to_device(dev).to_kind(Kind::Int64);
        let b = idx.size()[0];
        if b != v_s.size()[0] {
            return Err(Error::Invalid(format!(
                "loss `crd`: {} indices for a batch of {}",
                b,
                v_s.size()[0]
            )));
        }
        let (lo, hi) = (idx.min().int64_value(&[]), idx.max().int64_value(&[]));
        if lo < 0 || hi >= self.n {
            return Err(Error::Invalid(format!(
                "loss `crd`: image index {} outside the memory bank of {} (train_size)",
                if lo < 0 { lo } else { hi },
                self.n
            )));
        }
        let neg = Tensor::randint(self.n, [b, self.k], (Kind::Int64, dev));
        let contrast = Tensor::cat(&[idx.unsqueeze(1), neg], 1);
        Ok(self.loss_with_contrast(&v_s, &v_t, &idx, &contrast))
    }
}

/// The registry's constructor.
pub fn build(params: &Params, ctx: &LossCtx, vs: &nn::Path) -> Result<Box<dyn Loss>> {
    Ok(Box::new(Crd::new(params, ctx, vs)?))
}

impl Crd {
    /// Builds the heads and the memory banks.
    pub fn new(params: &Params, ctx: &LossCtx, vs: &nn::Path) -> Result<Crd> {
        let p: CrdParams = params.parse()?;
        params.positive("temperature", p.temperature)?;
        if !(0.0..1.0).contains(&p.momentum) {
            return Err(params
                .child_error(
                    "momentum",
                    format!("expected 0 <= m < 1, got {}", p.momentum),
                )
                .into());
        }
        if p.feat_dim <= 0 || p.negatives <= 0 {
            return Err(params
                .error("`feat_dim` and `negatives` must be positive")
                .into());
        }
        let n = ctx.train_size as i64;
        if n < 2 {
            return Err(Error::Invalid(format!(
                "loss `crd` needs a training set of at least 2 images, got {n}"
            )));
        }
        let mut taps = resolve_taps(params, ctx, p.features.as_deref(), DefaultTaps::Last, "crd")?;
        if taps.len() != 1 {
            return Err(params
                .child_error("features", "crd embeds exactly one stage")
                .into());
        }
        let tap = taps.remove(0);
        let d = p.feat_dim;
        let embed_s = Linear::new(&(vs / "embed_s"), tap.s_channels(), d, 32);
        let embed_t = Linear::new(&(vs / "embed_t"), tap.t_channels(), d, 32);
        let stdv = 1.0 / (d as f64 / 3.0).sqrt();
        let mem_s = vs.zeros_no_train("memory_s", &[n, d]);
        let mem_t = vs.zeros_no_train("memory_t", &[n, d]);
        tch::no_grad(|| {
            for m in [&mem_s, &mem_t] {
                let _ = m.shallow_clone().uniform_(-stdv, stdv);
            }
        });
        Ok(Crd {
            tap,
            embed_s,
            embed_t,
            mem_s,
            mem_t,
            n,
            k: p.negatives.min(n - 1),
            temperature: p.temperature,
            momentum: p.momentum,
            z: None,
        })
    }
}

rolekd_core::register_plugin!(
    Loss,
    "crd",
    "contrastive representation distillation (Tian et al. 2020): memory bank + NCE",
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use crate::util::{l2_normalize, pooled};
    use rolekd_core::plugin::loss::LossInputs;
    use tch::{nn, Device, Tensor};

    #[test]
    fn crd_matches_hand_computation_and_updates_its_banks() {
        let c = ctx(&[("stage3", &[2, 2, 2, 2])], &[("stage3", &[2, 3, 2, 2])]);
        let vs = nn::VarStore::new(Device::Cpu);
        let yaml = "{feat_dim: 4, negatives: 3, temperature: 0.5, momentum: 0.5}";
        let params = Params::from_yaml(yaml).unwrap();
        let mut crd = Crd::new(&params, &c, &vs.root()).unwrap();
        let vars = vs.variables();
        let s = randn(&[2, 2, 2, 2], true);
        let t = randn(&[2, 3, 2, 2], false);
        let idx = Tensor::from_slice(&[5i64, 9]);
        let contrast = Tensor::from_slice(&[5i64, 1, 2, 3, 9, 4, 5, 15]).view([2, 4]);

        // By hand: embeddings, scores against the banks, Z from this batch, NCE.
        let lin = |x: Vec<f64>, n: &str, o: usize| -> Vec<f64> {
            let w = vals(&vars[&format!("{n}.weight")]);
            let b = vals(&vars[&format!("{n}.bias")]);
            let i = x.len();
            unit(
                &(0..o)
                    .map(|r| b[r] + dot(&w[r * i..(r + 1) * i], &x))
                    .collect::<Vec<_>>(),
            )
        };
        let (ms, mt) = (Map4::of(&s), Map4::of(&t));
        let es: Vec<Vec<f64>> = (0..2).map(|b| lin(ms.pooled(b), "embed_s", 4)).collect();
        let et: Vec<Vec<f64>> = (0..2).map(|b| lin(mt.pooled(b), "embed_t", 4)).collect();
        let bank =
            |n: &str| -> Vec<Vec<f64>> { vals(&vars[n]).chunks(4).map(|c| c.to_vec()).collect() };
        let (bs, bt) = (bank("memory_s"), bank("memory_t"));
        let ci = vals(&contrast);
        let scores = |v: &Vec<Vec<f64>>, bank: &Vec<Vec<f64>>| -> Vec<Vec<f64>> {
            (0..2)
                .map(|i| {
                    (0..4)
                        .map(|j| (dot(&v[i], &bank[ci[i * 4 + j] as usize]) / 0.5).exp())
                        .collect()
                })
                .collect()
        };
        let nce = |x: &Vec<Vec<f64>>| -> f64 {
            let z = x.iter().flatten().sum::<f64>() / 8.0 * 16.0;
            let kpn = 3.0 / 16.0;
            let mut acc = 0.0;
            for row in x {
                let r: Vec<f64> = row.iter().map(|v| v / z).collect();
                acc += (r[0] / (r[0] + kpn + 1e-7)).ln();
                for v in &r[1..] {
                    acc += (kpn / (v + kpn + 1e-7)).ln();
                }
            }
            -acc / 2.0
        };
        let expect = nce(&scores(&es, &bt)) + nce(&scores(&et, &bs));

        let v_s = l2_normalize(&crd.embed_s.forward(&pooled(&s)), 1);
        let v_t = l2_normalize(&crd.embed_t.forward(&pooled(&t)), 1);
        let v = crd.loss_with_contrast(&v_s, &v_t, &idx, &contrast);
        close(scalar(&v), expect, "crd");
        // Bank row 5 moved to norm(0.5 m + 0.5 v).
        let after = vals(&vars["memory_s"]);
        let want: Vec<f64> = bs[5]
            .iter()
            .zip(&es[0])
            .map(|(m, v)| 0.5 * m + 0.5 * v)
            .collect();
        for (a, w) in after[20..24].iter().zip(&unit(&want)) {
            assert!((a - w).abs() < 1e-5, "{a} vs {w}");
        }
        grad_ok(&v, &s, "crd");

        // The registered loss runs end to end with random negatives.
        let vs2 = nn::VarStore::new(Device::Cpu);
        let mut l = crate::testutil::build("crd", yaml, &c, &vs2);
        let logits = randn(&[2, 3], false);
        let labels = Tensor::from_slice(&[0i64, 1]);
        let s2 = randn(&[2, 2, 2, 2], true);
        let so = output(&logits, &[("stage3", &s2)]);
        let to = output(&logits, &[("stage3", &t)]);
        let v = run_at(l.as_mut(), &so, Some(&to), &labels, &idx, 0);
        grad_ok(&v, &s2, "crd end to end");
        let bad = Tensor::from_slice(&[3i64, 16]);
        let err = l
            .compute(&LossInputs {
                student: &so,
                teacher: Some(&to),
                roles: &[],
                labels: &labels,
                soft_targets: None,
                indices: &bad,
                epoch: 0,
                step: 0,
            })
            .err()
            .unwrap();
        assert!(err.to_string().contains("16"), "{err}");
    }
}
