//! Helpers shared by the losses: the teacher, feature taps and their checks, pooling.

use rolekd_core::config::Params;
use rolekd_core::plugin::loss::{LossCtx, LossInputs};
use rolekd_core::plugin::model::ModelOutput;
use rolekd_core::{Error, Result};
use serde::Deserialize;
use tch::{Kind, Tensor};

/// The teacher's output, or an error naming the loss that needs it.
pub fn teacher<'a>(inputs: &LossInputs<'a>, loss: &str) -> Result<&'a ModelOutput> {
    inputs.teacher.ok_or_else(|| {
        Error::Invalid(format!(
            "loss `{loss}` needs a teacher, but this stage has none"
        ))
    })
}

/// One entry of a loss's `features:` list: a stage name both models have
/// (`stage2`), or a pair (`{student: stage3, teacher: stage4}`). The name `logits` taps the
/// logits as a `[B, classes, 1, 1]` map.
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum FeatureSel {
    Same(String),
    Pair(FeaturePair),
}

/// A student stage matched to a teacher stage.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct FeaturePair {
    /// The student's stage.
    pub student: String,
    /// The teacher's stage.
    pub teacher: String,
}

/// Which stages a loss taps when `features:` is not given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultTaps {
    /// Each model's last stage.
    Last,
    /// Every stage name both models have, in the student's order.
    Common,
    /// The logits.
    Logits,
}

/// A resolved tap: the stage names and their `[B, C, H, W]` shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct Tap {
    pub student: String,
    pub teacher: String,
    pub s_shape: Vec<i64>,
    pub t_shape: Vec<i64>,
}

impl Tap {
    pub fn s_channels(&self) -> i64 {
        self.s_shape[1]
    }
    pub fn t_channels(&self) -> i64 {
        self.t_shape[1]
    }
    /// The spatial size both maps are pooled to: the smaller of each side.
    pub fn common_hw(&self) -> (i64, i64) {
        (
            self.s_shape[2].min(self.t_shape[2]),
            self.s_shape[3].min(self.t_shape[3]),
        )
    }
    pub fn label(&self) -> String {
        if self.student == self.teacher {
            format!("`{}`", self.student)
        } else {
            format!("student `{}` / teacher `{}`", self.student, self.teacher)
        }
    }
}

/// As 4-D `[B, C, H, W]` (a `[B, D]` shape becomes `[B, D, 1, 1]`).
fn as4(shape: &[i64]) -> Vec<i64> {
    match shape.len() {
        4 => shape.to_vec(),
        2 => vec![shape[0], shape[1], 1, 1],
        _ => {
            let mut v = shape.to_vec();
            v.resize(4, 1);
            v
        }
    }
}

fn names(feats: &[(String, Vec<i64>)]) -> String {
    let mut v: Vec<&str> = feats.iter().map(|(n, _)| n.as_str()).collect();
    v.push("logits");
    format!("[{}]", v.join(", "))
}

fn lookup(feats: &[(String, Vec<i64>)], name: &str, classes: i64) -> Option<Vec<i64>> {
    if name == "logits" {
        return Some(vec![1, classes, 1, 1]);
    }
    feats.iter().find(|(n, _)| n == name).map(|(_, s)| as4(s))
}

/// Resolves a loss's `features:` against the two models' stages (from the [`LossCtx`]).
/// Unknown stages give an [`Error::Invalid`] that names the loss, its YAML path and both
/// models' available stages.
pub fn resolve_taps(
    params: &Params,
    ctx: &LossCtx,
    sel: Option<&[FeatureSel]>,
    default: DefaultTaps,
    loss: &str,
) -> Result<Vec<Tap>> {
    let at = if params.path().is_empty() {
        String::new()
    } else {
        format!(" (at `{}.features`)", params.path())
    };
    let avail = || {
        format!(
            "the student has {}, the teacher has {}",
            names(&ctx.student_features),
            if ctx.teacher_features.is_empty() {
                "none (no teacher, or a model without feature taps)".to_string()
            } else {
                names(&ctx.teacher_features)
            }
        )
    };
    let pairs: Vec<(String, String)> = match sel {
        Some(list) if !list.is_empty() => list
            .iter()
            .map(|s| match s {
                FeatureSel::Same(n) => (n.clone(), n.clone()),
                FeatureSel::Pair(p) => (p.student.clone(), p.teacher.clone()),
            })
            .collect(),
        Some(_) => {
            return Err(Error::Invalid(format!(
                "loss `{loss}`{at}: `features` is empty; {}",
                avail()
            )))
        }
        None => match default {
            DefaultTaps::Logits => vec![("logits".into(), "logits".into())],
            DefaultTaps::Last => match (ctx.student_features.last(), ctx.teacher_features.last()) {
                (Some((s, _)), Some((t, _))) => vec![(s.clone(), t.clone())],
                _ => {
                    return Err(Error::Invalid(format!(
                        "loss `{loss}` taps features, but {}",
                        avail()
                    )))
                }
            },
            DefaultTaps::Common => {
                let v: Vec<(String, String)> = ctx
                    .student_features
                    .iter()
                    .filter(|(n, _)| ctx.teacher_features.iter().any(|(m, _)| m == n))
                    .map(|(n, _)| (n.clone(), n.clone()))
                    .collect();
                if v.is_empty() {
                    return Err(Error::Invalid(format!(
                        "loss `{loss}`: the two models share no stage name; name pairs in \
                         `features: [{{student: .., teacher: ..}}]`; {}",
                        avail()
                    )));
                }
                v
            }
        },
    };
    pairs
        .into_iter()
        .map(|(s, t)| {
            let s_shape = lookup(&ctx.student_features, &s, ctx.num_classes);
            let t_shape = lookup(&ctx.teacher_features, &t, ctx.num_classes);
            match (s_shape, t_shape) {
                (Some(s_shape), Some(t_shape)) => Ok(Tap {
                    student: s,
                    teacher: t,
                    s_shape,
                    t_shape,
                }),
                (s_found, _) => {
                    let (who, name) = if s_found.is_none() {
                        ("student", &s)
                    } else {
                        ("teacher", &t)
                    };
                    Err(Error::Invalid(format!(
                        "loss `{loss}`{at}: the {who} has no feature `{name}`; {}",
                        avail()
                    )))
                }
            }
        })
        .collect()
}

/// Requires at least `n` taps (pairwise losses).
pub fn need_taps(taps: &[Tap], n: usize, loss: &str) -> Result<()> {
    if taps.len() < n {
        return Err(Error::Invalid(format!(
            "loss `{loss}` relates consecutive stages: it needs at least {n} entries in \
             `features`, got {}",
            taps.len()
        )));
    }
    Ok(())
}

/// Requires equal channel counts on both sides of every tap.
pub fn same_channels(taps: &[Tap], loss: &str) -> Result<()> {
    for t in taps {
        if t.s_channels() != t.t_channels() {
            return Err(Error::Invalid(format!(
                "loss `{loss}` compares channels one to one, but at {} the student has {} \
                 channels and the teacher {}",
                t.label(),
                t.s_channels(),
                t.t_channels()
            )));
        }
    }
    Ok(())
}

/// A tapped feature of one model at run time, 4-D.
pub fn feature(out: &ModelOutput, name: &str, who: &str, loss: &str) -> Result<Tensor> {
    if name == "logits" {
        let s = out.logits.size();
        return Ok(out.logits.reshape([s[0], s[1], 1, 1]));
    }
    let f = out.feature(name).ok_or_else(|| {
        Error::Invalid(format!(
            "loss `{loss}`: the {who}'s forward pass gave no feature `{name}`"
        ))
    })?;
    Ok(match f.dim() {
        4 => f.shallow_clone(),
        2 => f.unsqueeze(-1).unsqueeze(-1),
        _ => f.reshape([f.size()[0], -1, 1, 1]),
    })
}

/// The student's and teacher's maps of one tap.
pub fn tap_pair(inputs: &LossInputs<'_>, tap: &Tap, loss: &str) -> Result<(Tensor, Tensor)> {
    let t = teacher(inputs, loss)?;
    Ok((
        feature(inputs.student, &tap.student, "student", loss)?,
        feature(t, &tap.teacher, "teacher", loss)?,
    ))
}

/// Average-pools a `[B, C, H, W]` map to `h x w` (no-op when it already is).
pub fn pool_to(x: &Tensor, h: i64, w: i64) -> Tensor {
    let s = x.size();
    if s[2] == h && s[3] == w {
        x.shallow_clone()
    } else {
        x.adaptive_avg_pool2d([h, w])
    }
}

/// Global average pooling to `[B, C]`.
pub fn pooled(x: &Tensor) -> Tensor {
    x.mean_dim([2i64, 3].as_slice(), false, Kind::Float)
}

/// Rows scaled to unit l2 norm (eps 1e-12, as `F.normalize`).
pub fn l2_normalize(x: &Tensor, dim: i64) -> Tensor {
    let n = x
        .norm_scalaropt_dim(2, [dim].as_slice(), true)
        .clamp_min(1e-12);
    x / n
}

/// The sum over `taps` of `term(k, tap, student feature, teacher feature)`: the shape of
/// every per-stage feature loss (`loss` names it when a feature is missing).
pub fn sum_over_taps(
    inputs: &LossInputs<'_>,
    taps: &[Tap],
    loss: &str,
    mut term: impl FnMut(usize, &Tap, Tensor, Tensor) -> Tensor,
) -> Result<Tensor> {
    let mut terms = Vec::with_capacity(taps.len());
    for (k, tap) in taps.iter().enumerate() {
        let (s, t) = tap_pair(inputs, tap, loss)?;
        terms.push(term(k, tap, s, t));
    }
    Ok(sum_terms(terms, inputs.student.logits.device()))
}

/// Sum of a list of scalar tensors (zero for none).
pub fn sum_terms(terms: Vec<Tensor>, device: tch::Device) -> Tensor {
    terms
        .into_iter()
        .reduce(|a, b| a + b)
        .unwrap_or_else(|| Tensor::zeros([], (Kind::Float, device)))
}
