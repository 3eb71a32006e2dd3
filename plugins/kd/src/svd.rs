//! Singular-vector graph distillation:
//! - `kd-svd`: Lee, Kim, Song, "Self-supervised Knowledge Distillation Using Singular Value
//!   Decomposition", ECCV 2018;
//! - `mhgd`: Lee & Song, "Graph-based Knowledge Distillation by Multi-head Attention
//!   Network", BMVC 2019.
//!
//! Both compress each tapped stage F [B, C, H, W] (viewed per sample as an [H W, C]
//! matrix) to its top right singular vectors ("distilled feature vectors", C-dim): the
//! teacher's top `k`, the student's top `k + 3`, of which the ones best aligned (largest
//! |cosine|) with each teacher vector are kept, sign-corrected to agree with it. For a
//! deterministic loss the teacher's vectors get a canonical sign (largest-magnitude
//! component positive; an SVD's sign is arbitrary). Both relate consecutive tapped
//! stages, so they need at least two taps and, per tap, equal channel counts.

use crate::prelude::*;

/// Top-`k` right singular vectors [B, C, k] and singular values [B, k] of each sample's
/// [H W, C] matrix (computed in f64).
pub fn top_singular(f: &Tensor, k: i64) -> (Tensor, Tensor) {
    let s = f.size();
    let x = f
        .to_kind(Kind::Double)
        .reshape([s[0], s[1], -1])
        .transpose(1, 2);
    // torch.svd (reduced): V comes as [B, C, min(HW, C)], columns = right singular vectors.
    let (_u, sv, v) = x.svd(true, true);
    let v = v.narrow(2, 0, k).nan_to_num(0.0, 0.0, 0.0);
    (
        v.to_kind(Kind::Float),
        sv.narrow(1, 0, k).to_kind(Kind::Float),
    )
}

/// Flips each vector (column) so that its largest-magnitude component is positive.
pub fn canonical_sign(v: &Tensor) -> Tensor {
    let idx = v.abs().argmax(1, true);
    let sign = v.gather(1, &idx, false).sign();
    let sign = sign.where_self(&sign.ne(0.0), &sign.ones_like());
    v * sign
}

/// For each teacher vector (column of `vt` [B, C, Kt]), the student vector (column of
/// `vs` [B, C, Ks]) with the largest |cosine|, times the cosine's sign.
pub fn align(vs: &Tensor, vt: &Tensor) -> Tensor {
    let cos = vs.transpose(1, 2).matmul(&vt.detach()); // [B, Ks, Kt]
    let idx = cos.abs().argmax(1, true); // [B, 1, Kt]
    let sign = cos.gather(1, &idx, false).sign().detach(); // [B, 1, Kt]
    let c = vs.size()[1];
    let kt = vt.size()[2];
    let picked = vs.gather(2, &idx.expand([-1, c, kt], false), false);
    picked * sign
}

/// The student's aligned and the teacher's vectors of one tap, both scaled by the
/// teacher's l2-normalised top singular values, [B, C, k].
fn tap_vectors(s: &Tensor, t: &Tensor, k: i64) -> (Tensor, Tensor) {
    let (vt, st) = top_singular(&t.detach(), k);
    let vt = canonical_sign(&vt);
    let (vs, _) = top_singular(s, k + 3);
    let vs = align(&vs, &vt);
    let st = l2_normalize(&st, 1).unsqueeze(1);
    (vs * &st, vt * st)
}

fn check_sizes(taps: &[Tap], k: i64, loss: &str) -> Result<()> {
    for t in taps {
        let ns = t.s_shape[1].min(t.s_shape[2] * t.s_shape[3]);
        let nt = t.t_shape[1].min(t.t_shape[2] * t.t_shape[3]);
        if ns < k + 3 || nt < k {
            return Err(Error::Invalid(format!(
                "loss `{loss}` takes the teacher's top {k} and the student's top {} singular \
                 vectors, but at {} the maps give only {ns} (student) and {nt} (teacher)",
                k + 3,
                t.label()
            )));
        }
    }
    Ok(())
}

/// Parameters of `kd-svd`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct KdSvdParams {
    /// Stages (at least two; consecutive ones are related); default: every stage name
    /// both models have.
    #[serde(default)]
    pub features: Option<Vec<FeatureSel>>,
    /// Teacher singular vectors per stage, k (default 1; the student offers k + 3).
    #[serde(default = "one")]
    pub k: i64,
    /// `sum` (default): summed over the batch, as the role-wise original (TensorFlow);
    /// `mean`: divided by the batch size, as RepDistiller's port, where the same weight
    /// gives a term batch-size times smaller.
    #[serde(default = "sum")]
    pub reduction: String,
}

fn one() -> i64 {
    1
}

fn sum() -> String {
    "sum".into()
}

/// KD-SVD = sum over consecutive tap pairs (l-1, l) of
/// sum_{b,c,c',j} (R^s_{b,c,c',j} - R^t_{b,c,c',j})^2, where
/// R_{b,c,c',j} = exp(-(v^l_{b,c,j} - v^{l-1}_{b,c',j})^2 / 8) is the RBF relation between
/// the components of the (singular-value-scaled) vectors of the two stages. Non-finite
/// elements are dropped, as in the original. Zero when the features are equal.
pub struct KdSvd {
    taps: Vec<Tap>,
    k: i64,
    /// Divide by the batch size (`reduction: mean`).
    batch_mean: bool,
}

fn rbf(a: &Tensor, b: &Tensor) -> Tensor {
    // a [B, C, k], b [B, C', k] -> [B, C, C', k]
    (-(a.unsqueeze(2) - b.unsqueeze(1)).square() / 8.0).exp()
}

impl Loss for KdSvd {
    fn compute(&mut self, inputs: &LossInputs<'_>) -> Result<Tensor> {
        let mut terms = Vec::new();
        let mut prev: Option<(Tensor, Tensor)> = None;
        for tap in &self.taps {
            let (s, t) = tap_pair(inputs, tap, "kd-svd")?;
            let (vs, vt) = tap_vectors(&s, &t, self.k);
            if let Some((ps, pt)) = &prev {
                let d = (rbf(&vs, ps) - rbf(&vt, pt).detach()).square();
                let d = d.where_self(&d.isfinite(), &d.zeros_like());
                terms.push(d.sum(Kind::Float));
            }
            prev = Some((vs, vt));
        }
        let total = sum_terms(terms, inputs.student.logits.device());
        if self.batch_mean {
            let b = inputs.student.logits.size()[0].max(1);
            return Ok(total / b as f64);
        }
        Ok(total)
    }
}

/// The taps both SVD-based losses relate pairwise: at least two consecutive stages, equal
/// channel counts for student and teacher, and room for `k` singular vectors.
fn consecutive_taps(
    params: &Params,
    ctx: &LossCtx,
    features: Option<&[FeatureSel]>,
    k: i64,
    loss: &str,
) -> Result<Vec<Tap>> {
    let taps = resolve_taps(params, ctx, features, DefaultTaps::Common, loss)?;
    need_taps(&taps, 2, loss)?;
    same_channels(&taps, loss)?;
    check_sizes(&taps, k, loss)?;
    Ok(taps)
}

/// The registry's constructor for `kd-svd`.
pub fn build_kd_svd(params: &Params, ctx: &LossCtx, _vs: &nn::Path) -> Result<Box<dyn Loss>> {
    let p: KdSvdParams = params.parse()?;
    params.at_least("k", p.k, 1)?;
    let batch_mean = match p.reduction.as_str() {
        "sum" => false,
        "mean" => true,
        other => {
            return Err(params
                .child_error(
                    "reduction",
                    format!(
                        "`{other}`: expected `sum` (the original's) or `mean` (RepDistiller's)"
                    ),
                )
                .into())
        }
    };
    let taps = consecutive_taps(params, ctx, p.features.as_deref(), p.k, "kd-svd")?;
    Ok(Box::new(KdSvd {
        taps,
        k: p.k,
        batch_mean,
    }))
}

rolekd_core::register_plugin!(
    Loss,
    "kd-svd",
    "KD-SVD (Lee et al. 2018): RBF relations of aligned singular vectors of consecutive stages",
    build_kd_svd
);

/// Parameters of `mhgd`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct MhgdParams {
    /// Stages (at least two); default: every stage name both models have.
    #[serde(default)]
    pub features: Option<Vec<FeatureSel>>,
    /// Attention heads (default 8).
    #[serde(default = "eight")]
    pub heads: i64,
    /// Train the attention heads with the self-supervised estimator loss, added to this
    /// term (default true). false reproduces the released code, whose heads never trained:
    /// they stay at their random init (non-trainable buffers) and no estimator is built.
    #[serde(default = "yes")]
    pub train_heads: bool,
}

fn eight() -> i64 {
    8
}
fn yes() -> bool {
    true
}

/// A linear map stored as raw tensors, so it can run with detached weights.
struct Lin {
    w: Tensor,
    b: Tensor,
}

impl Lin {
    fn new(vs: &nn::Path, name: &str, i: i64, o: i64, trainable: bool) -> Lin {
        let bound = 1.0 / (i as f64).sqrt();
        let init = nn::Init::Uniform {
            lo: -bound,
            up: bound,
        };
        let vs = vs / name;
        if trainable {
            Lin {
                w: vs.var("weight", &[o, i], init),
                b: vs.var("bias", &[o], init),
            }
        } else {
            let w = vs.zeros_no_train("weight", &[o, i]);
            let b = vs.zeros_no_train("bias", &[o]);
            tch::no_grad(|| {
                let _ = w.shallow_clone().uniform_(-bound, bound);
                let _ = b.shallow_clone().uniform_(-bound, bound);
            });
            Lin { w, b }
        }
    }

    fn forward(&self, x: &Tensor, detach: bool) -> Tensor {
        if detach {
            x.linear(&self.w.detach(), Some(&self.b.detach()))
        } else {
            x.linear(&self.w, Some(&self.b))
        }
    }
}

/// The attention network of one stage pair: key (current stage), query (previous
/// stage), and the estimator's value and output maps.
struct Head {
    key: Lin,
    query: Lin,
    estimator: Option<(Lin, Lin)>,
    heads: i64,
    dim: i64,
}

impl Head {
    /// Attention logits [H, B, B] between the current-stage vectors `cur` [B, D] and the
    /// previous-stage ones `prev` [B, D'].
    fn logits(&self, cur: &Tensor, prev: &Tensor, detach: bool) -> Tensor {
        let b = cur.size()[0];
        let split = |x: Tensor| x.reshape([b, self.heads, self.dim]).transpose(0, 1);
        let k = split(self.key.forward(cur, detach));
        let q = split(self.query.forward(prev, detach));
        k.matmul(&q.transpose(1, 2)) / (self.dim as f64).sqrt()
    }

    /// The estimator's reconstruction of `cur` from `prev` through the attention graph,
    /// l2-normalised, [B, D].
    fn estimate(&self, cur: &Tensor, prev: &Tensor) -> Option<Tensor> {
        let (value, out) = self.estimator.as_ref()?;
        let b = cur.size()[0];
        let g = self.logits(cur, prev, false).softmax(-1, Kind::Float);
        let v = value
            .forward(prev, false)
            .reshape([b, self.heads, self.dim])
            .transpose(0, 1);
        let mixed = g
            .matmul(&v)
            .transpose(0, 1)
            .reshape([b, self.heads * self.dim]);
        Some(l2_normalize(&out.forward(&mixed, false), 1))
    }
}

/// MHGD = sum over consecutive tap pairs (l-1, l) of
/// mean_{h,i} KL(softmax(G^t_{h,i,:}) || softmax(G^s_{h,i,:})), where
/// G_{h,i,j} = <W^h_k v^l_i, W^h_q v^{l-1}_j> / sqrt(d) is head h's attention between
/// sample i's vector at stage l and sample j's at stage l-1 (top-1 singular vectors,
/// the student's aligned to the teacher's), plus, with `train_heads`, the estimator loss
/// mean_i (1 - <v^l_i, E(v^{l-1}, G^t)_i>) on the teacher's vectors, which alone trains
/// the heads (the KL sees them detached). Attention width d = (C_l + C_{l-1}) / 2.
/// The KL term is zero when the features are equal.
pub struct Mhgd {
    taps: Vec<Tap>,
    heads: Vec<Head>,
}

impl Loss for Mhgd {
    fn compute(&mut self, inputs: &LossInputs<'_>) -> Result<Tensor> {
        let mut terms = Vec::new();
        let mut prev: Option<(Tensor, Tensor)> = None;
        for (i, tap) in self.taps.iter().enumerate() {
            let (s, t) = tap_pair(inputs, tap, "mhgd")?;
            let (vs, vt) = tap_vectors(&s, &t, 1);
            let (vs, vt) = (vs.squeeze_dim(2), vt.squeeze_dim(2));
            if let Some((ps, pt)) = &prev {
                let head = &self.heads[i - 1];
                let gt = head.logits(&vt, pt, true).softmax(-1, Kind::Float);
                let log_gs = head.logits(&vs, ps, true).log_softmax(-1, Kind::Float);
                let kl = (&gt * (gt.clamp_min(1e-12).log() - log_gs))
                    .sum_dim_intlist(-1, false, Kind::Float)
                    .mean(Kind::Float);
                terms.push(kl);
                if let Some(est) = head.estimate(&vt, pt) {
                    let cos = (est * &vt).sum_dim_intlist(-1, false, Kind::Float);
                    terms.push((-cos + 1.0).mean(Kind::Float));
                }
            }
            prev = Some((vs, vt));
        }
        Ok(sum_terms(terms, inputs.student.logits.device()))
    }
}

/// The registry's constructor for `mhgd`.
pub fn build_mhgd(params: &Params, ctx: &LossCtx, vs: &nn::Path) -> Result<Box<dyn Loss>> {
    let p: MhgdParams = params.parse()?;
    params.at_least("heads", p.heads, 1)?;
    let taps = consecutive_taps(params, ctx, p.features.as_deref(), 1, "mhgd")?;
    let heads = taps
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            let (dp, dc) = (w[0].t_channels(), w[1].t_channels());
            let dim = ((dp + dc) / 2).max(1);
            let hv = vs / format!("head{i}");
            let h = p.heads;
            let tr = p.train_heads;
            Head {
                key: Lin::new(&hv, "key", dc, h * dim, tr),
                query: Lin::new(&hv, "query", dp, h * dim, tr),
                estimator: tr.then(|| {
                    (
                        Lin::new(&hv, "value", dp, h * dim, true),
                        Lin::new(&hv, "out", h * dim, dc, true),
                    )
                }),
                heads: h,
                dim,
            }
        })
        .collect();
    Ok(Box::new(Mhgd { taps, heads }))
}

rolekd_core::register_plugin!(
    Loss,
    "mhgd",
    "multi-head graph distillation (Lee & Song 2019): attention graphs of SVD vectors, KL",
    build_mhgd
);

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use tch::{nn, Device, Tensor};

    /// Eigen-decomposition of a small symmetric matrix by cyclic Jacobi rotations:
    /// (eigenvalues, eigenvectors as columns), sorted by decreasing eigenvalue.
    fn eig_sym(mut a: Vec<Vec<f64>>) -> Vec<(f64, Vec<f64>)> {
        let n = a.len();
        let mut v: Vec<Vec<f64>> = (0..n)
            .map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
            .collect();
        for _ in 0..100 {
            let off: f64 = (0..n)
                .flat_map(|p| ((p + 1)..n).map(move |q| (p, q)))
                .map(|(p, q)| a[p][q] * a[p][q])
                .sum();
            if off < 1e-26 {
                break;
            }
            for p in 0..n {
                for q in (p + 1)..n {
                    if a[p][q].abs() < 1e-300 {
                        continue;
                    }
                    let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
                    let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                    let c = 1.0 / (t * t + 1.0).sqrt();
                    let s = t * c;
                    for k in 0..n {
                        let (akp, akq) = (a[k][p], a[k][q]);
                        a[k][p] = c * akp - s * akq;
                        a[k][q] = s * akp + c * akq;
                    }
                    for k in 0..n {
                        let (apk, aqk) = (a[p][k], a[q][k]);
                        a[p][k] = c * apk - s * aqk;
                        a[q][k] = s * apk + c * aqk;
                    }
                    for row in v.iter_mut() {
                        let (vp, vq) = (row[p], row[q]);
                        row[p] = c * vp - s * vq;
                        row[q] = s * vp + c * vq;
                    }
                }
            }
        }
        let mut out: Vec<(f64, Vec<f64>)> = (0..n)
            .map(|k| (a[k][k], (0..n).map(|i| v[i][k]).collect()))
            .collect();
        out.sort_by(|x, y| y.0.partial_cmp(&x.0).unwrap());
        out
    }

    /// Top right singular vectors of sample b's [HW, C] matrix (via eig of X^T X).
    fn right_vectors(m: &Map4, b: usize, k: usize) -> Vec<Vec<f64>> {
        let c = m.dims[1];
        let a: Vec<Vec<f64>> = (0..c)
            .map(|i| {
                (0..c)
                    .map(|j| (0..m.hw()).map(|p| m.at(b, i, p) * m.at(b, j, p)).sum())
                    .collect()
            })
            .collect();
        eig_sym(a).into_iter().take(k).map(|(_, v)| v).collect()
    }

    fn canonical(v: Vec<f64>) -> Vec<f64> {
        let big = v
            .iter()
            .cloned()
            .fold(0.0f64, |m, x| if x.abs() > m.abs() { x } else { m });
        v.iter().map(|x| if big < 0.0 { -x } else { *x }).collect()
    }

    /// (student aligned, teacher) top-1 vectors per sample of one tap.
    fn vectors(s: &Tensor, t: &Tensor) -> Vec<(Vec<f64>, Vec<f64>)> {
        let (ms, mt) = (Map4::of(s), Map4::of(t));
        (0..ms.dims[0])
            .map(|b| {
                let vt = canonical(right_vectors(&mt, b, 1).remove(0));
                let cands = right_vectors(&ms, b, 4);
                let best = cands
                    .iter()
                    .max_by(|x, y| dot(x, &vt).abs().partial_cmp(&dot(y, &vt).abs()).unwrap())
                    .unwrap();
                let sign = dot(best, &vt).signum();
                (best.iter().map(|x| x * sign).collect(), vt)
            })
            .collect()
    }

    fn feats() -> (Vec<Tensor>, Vec<Tensor>, rolekd_core::plugin::loss::LossCtx) {
        let shapes: [(&str, &[i64]); 2] = [("stage1", &[3, 4, 2, 2]), ("stage2", &[3, 5, 2, 2])];
        let s = vec![randn(&[3, 4, 2, 2], true), randn(&[3, 5, 2, 2], true)];
        let t = vec![randn(&[3, 4, 2, 2], false), randn(&[3, 5, 2, 2], false)];
        (s, t, ctx(&shapes, &shapes))
    }

    #[test]
    fn kd_svd_matches_hand_computation() {
        let (s, t, c) = feats();
        let v1 = vectors(&s[0], &t[0]);
        let v2 = vectors(&s[1], &t[1]);
        let rbf = |a: f64, b: f64| (-(a - b).powi(2) / 8.0).exp();
        let mut expect = 0.0;
        for b in 0..3 {
            let ((s2, t2_), (s1, t1)) = (&v2[b], &v1[b]);
            for i in 0..5 {
                for j in 0..4 {
                    expect += (rbf(s2[i], s1[j]) - rbf(t2_[i], t1[j])).powi(2);
                }
            }
        }
        let vs = nn::VarStore::new(Device::Cpu);
        let mut l = build("kd-svd", "{}", &c, &vs);
        let logits = randn(&[3, 3], false);
        let labels = Tensor::from_slice(&[0i64, 1, 2]);
        let so = output(&logits, &[("stage1", &s[0]), ("stage2", &s[1])]);
        let to = output(&logits, &[("stage1", &t[0]), ("stage2", &t[1])]);
        let v = run(l.as_mut(), &so, Some(&to), &labels);
        close(scalar(&v), expect, "kd-svd");
        assert!(expect > 1e-6);
        grad_ok(&v, &s[1], "kd-svd");
        let v = run(l.as_mut(), &to, Some(&to), &labels);
        assert!(scalar(&v).abs() < 1e-8, "{}", scalar(&v));
        // RepDistiller's convention: the same sum over a batch of 3, divided by 3.
        let mut l = build("kd-svd", "{reduction: mean}", &c, &vs);
        let v = run(l.as_mut(), &so, Some(&to), &labels);
        close(scalar(&v), expect / 3.0, "kd-svd, reduction mean");
        let msg = build_err("kd-svd", "{reduction: avg}", &c);
        assert!(msg.contains("`avg`") && msg.contains("mean"), "{msg}");

        let msg = build_err("kd-svd", "{features: [stage2]}", &c);
        assert!(msg.contains("at least 2"), "{msg}");
        let small: [(&str, &[i64]); 2] = [("stage1", &[3, 4, 1, 1]), ("stage2", &[3, 5, 1, 1])];
        let msg = build_err("kd-svd", "{}", &ctx(&small, &small));
        assert!(msg.contains("singular"), "{msg}");
    }

    /// One head-pair's linear map by hand: rows of W [o, i] and bias.
    fn lin(vars: &std::collections::HashMap<String, Tensor>, name: &str, x: &[f64]) -> Vec<f64> {
        let w = vals(&vars[&format!("{name}.weight")]);
        let b = vals(&vars[&format!("{name}.bias")]);
        let i = x.len();
        (0..b.len())
            .map(|r| b[r] + dot(&w[r * i..(r + 1) * i], x))
            .collect()
    }

    /// Attention logits G[h][i][j] by hand.
    fn graph(
        vars: &std::collections::HashMap<String, Tensor>,
        cur: &[Vec<f64>],
        prev: &[Vec<f64>],
        heads: usize,
        d: usize,
    ) -> Vec<Vec<Vec<f64>>> {
        let k: Vec<Vec<f64>> = cur.iter().map(|x| lin(vars, "head0.key", x)).collect();
        let q: Vec<Vec<f64>> = prev.iter().map(|x| lin(vars, "head0.query", x)).collect();
        (0..heads)
            .map(|h| {
                (0..cur.len())
                    .map(|i| {
                        (0..prev.len())
                            .map(|j| {
                                dot(&k[i][h * d..(h + 1) * d], &q[j][h * d..(h + 1) * d])
                                    / (d as f64).sqrt()
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn mhgd_matches_hand_computation() {
        let (s, t, c) = feats();
        let v1 = vectors(&s[0], &t[0]);
        let v2 = vectors(&s[1], &t[1]);
        let pick = |v: &Vec<(Vec<f64>, Vec<f64>)>, teacher: bool| -> Vec<Vec<f64>> {
            v.iter()
                .map(|(a, b)| if teacher { b.clone() } else { a.clone() })
                .collect()
        };
        let (heads, d) = (2usize, 4usize);
        for train in [false, true] {
            let vs = nn::VarStore::new(Device::Cpu);
            let yaml = format!("{{heads: 2, train_heads: {train}}}");
            let mut l = build("mhgd", &yaml, &c, &vs);
            let vars = vs.variables();
            assert_eq!(vars["head0.key.weight"].requires_grad(), train);
            let gt = graph(&vars, &pick(&v2, true), &pick(&v1, true), heads, d);
            let gs = graph(&vars, &pick(&v2, false), &pick(&v1, false), heads, d);
            let mut kl = 0.0;
            for h in 0..heads {
                for i in 0..3 {
                    let (p, lq) = (softmax(&gt[h][i]), log_softmax(&gs[h][i]));
                    kl += (0..3).map(|j| p[j] * (p[j].ln() - lq[j])).sum::<f64>();
                }
            }
            kl /= (heads * 3) as f64;
            let mut est = 0.0;
            if train {
                let prev_t = pick(&v1, true);
                let cur_t = pick(&v2, true);
                let val: Vec<Vec<f64>> = prev_t
                    .iter()
                    .map(|x| lin(&vars, "head0.value", x))
                    .collect();
                for i in 0..3 {
                    let mut mixed = vec![0.0; heads * d];
                    for h in 0..heads {
                        let p = softmax(&gt[h][i]);
                        for j in 0..3 {
                            for e in 0..d {
                                mixed[h * d + e] += p[j] * val[j][h * d + e];
                            }
                        }
                    }
                    let y = unit(&lin(&vars, "head0.out", &mixed));
                    est += 1.0 - dot(&y, &cur_t[i]);
                }
                est /= 3.0;
            }
            let logits = randn(&[3, 3], false);
            let labels = Tensor::from_slice(&[0i64, 1, 2]);
            let so = output(&logits, &[("stage1", &s[0]), ("stage2", &s[1])]);
            let to = output(&logits, &[("stage1", &t[0]), ("stage2", &t[1])]);
            let v = run(l.as_mut(), &so, Some(&to), &labels);
            close(scalar(&v), kl + est, &format!("mhgd train_heads={train}"));
            grad_ok(&v, &s[1], "mhgd");
            if train {
                assert!(vars["head0.out.weight"].grad().defined());
            }
            let v = run(l.as_mut(), &to, Some(&to), &labels);
            close(scalar(&v), est, "mhgd at s == t");
        }
    }
}
