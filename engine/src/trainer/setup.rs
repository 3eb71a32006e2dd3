//! Building a run's parts: roles and their views, loss terms bound to roles, one
//! optimiser per trained role, the learning-rate schedule, the loader and evaluation sets.

use super::eval_data::EvalData;
use super::grad::trainable_params;
use super::loader::{LoaderSpec, ViewSpec};
use super::parts::{Role, Teacher, Term, Trained};
use super::roles::{build_model, build_policy, load_model, seeded, ModelSource};
use super::spec::{Combine, LossSpec, TrainCtx, TrainSpec, View};
use crate::checkpoint::SpecRecord;
use rolekd_core::error::{Error, Result};
use rolekd_core::plugin::loss::LossCtx;
use rolekd_core::plugin::model::Model;
use rolekd_core::plugin::optim::LrSchedule;
use rolekd_core::registry;
use std::path::Path;
use std::sync::Arc;
use tch::{Kind, Tensor};

/// Builds every role, trained ones first (in the spec's order), and the views they see:
/// each trained role and each frozen role with `view: own` gets a view of its own; the
/// first trained role's is view 0, the only one whose policy may mix the batch.
pub(super) fn build_roles(
    spec: &TrainSpec,
    ctx: &TrainCtx<'_>,
    shape: &SpecRecord,
) -> Result<(Vec<Role>, Vec<ViewSpec>)> {
    if !spec.roles.iter().any(|r| r.trainable) {
        return Err(Error::Invalid(format!(
            "{}: no role is trained; at least one must be",
            ctx.label
        )));
    }
    let order = spec
        .roles
        .iter()
        .filter(|r| r.trainable)
        .chain(spec.roles.iter().filter(|r| !r.trainable));
    let mut roles: Vec<Role> = Vec::new();
    let mut views: Vec<ViewSpec> = Vec::new();
    for rs in order.clone() {
        let role_seed = ctx.seed.child(&rs.name);
        let mut built = match &rs.model {
            ModelSource::Config(entry) => {
                build_model(entry, shape, ctx.device, role_seed.child("init"))?
            }
            ModelSource::Checkpoint(dir) => load_model(dir, shape, ctx.device)?,
        };
        if let Some(init) = &rs.init {
            let meta = crate::checkpoint::load_checkpoint(init, &built.vs, "model.")?;
            crate::checkpoint::check_revision(init, &meta, built.model.as_ref())?;
        }
        let own = rs.trainable || rs.view == View::Own;
        if own {
            views.push(ViewSpec {
                policy: build_policy(rs.augment.as_ref(), &ctx.data, spec.epochs)?,
                seed: role_seed.child("augment"),
                mixes: views.is_empty(),
            });
        }
        if !rs.trainable {
            built.vs.freeze();
        }
        roles.push(Role {
            name: rs.name.clone(),
            built,
            view: if own { views.len() - 1 } else { usize::MAX },
            trainable: rs.trainable,
        });
    }
    // Shared views, once every own view has its index.
    for (i, rs) in order.enumerate() {
        let shared = match &rs.view {
            View::Of(name) if !rs.trainable => Some(name.as_str()),
            View::Same if !rs.trainable => Some(roles[0].name.as_str()),
            _ => None,
        };
        if let Some(name) = shared {
            let view = roles
                .iter()
                .find(|r| r.name == name && r.view != usize::MAX)
                .map(|r| r.view)
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "{}: role `{}` shares the view of `{name}`, which has no view of its own",
                        ctx.label, rs.name
                    ))
                })?;
            roles[i].view = view;
        }
    }
    Ok((roles, views))
}

/// Writes `models.json`: each role's model entry and parameter count.
pub(super) fn write_model_summary(dir: &Path, roles: &[Role]) -> Result<()> {
    let summary: serde_json::Map<String, serde_json::Value> = roles
        .iter()
        .map(|role| {
            let params: i64 = role
                .built
                .vs
                .variables()
                .iter()
                .filter(|(k, _)| k.starts_with("model."))
                .filter(|(_, t)| t.requires_grad() || !role.trainable)
                .filter(|(k, _)| !k.contains("running_") && !k.ends_with("num_batches_tracked"))
                .map(|(_, t)| t.numel() as i64)
                .sum();
            (
                role.name.clone(),
                serde_json::json!({ "model": role.built.config, "params": params }),
            )
        })
        .collect();
    rolekd_core::files::write_json(&dir.join("models.json"), &summary)
}

fn role_index(roles: &[Role], name: &str, ctx: &TrainCtx<'_>) -> Result<usize> {
    roles.iter().position(|r| r.name == name).ok_or_else(|| {
        let known: Vec<&str> = roles.iter().map(|r| r.name.as_str()).collect();
        Error::Invalid(format!(
            "{}: a loss term names role `{name}`; roles: {}",
            ctx.label,
            known.join(", ")
        ))
    })
}

/// Resolves a term's role bindings: the student defaults to the first trained role, the
/// teacher to the first frozen role (none when every role is trained).
fn bind(ls: &LossSpec, roles: &[Role], ctx: &TrainCtx<'_>) -> Result<(usize, Teacher)> {
    let student = match &ls.student {
        Some(name) => role_index(roles, name, ctx)?,
        None => 0,
    };
    if !roles[student].trainable {
        return Err(ls
            .entry
            .error(format!(
                "`student: {}` is frozen; a loss term trains its student",
                roles[student].name
            ))
            .into());
    }
    let teachers: Vec<usize> = ls
        .teacher
        .iter()
        .map(|n| role_index(roles, n, ctx))
        .collect::<Result<_>>()?;
    if teachers.contains(&student) {
        return Err(ls
            .entry
            .error("a loss term's teacher must be another role than its student")
            .into());
    }
    let teacher = match teachers.as_slice() {
        [] => roles
            .iter()
            .position(|r| !r.trainable)
            .map_or(Teacher::None, Teacher::One),
        [one] => Teacher::One(*one),
        _ => Teacher::Mean(teachers),
    };
    Ok((student, teacher))
}

fn feature_shapes(m: &dyn Model, probe: &Tensor) -> Vec<(String, Vec<i64>)> {
    tch::no_grad(|| m.forward(probe, false))
        .features
        .iter()
        .map(|(n, t)| (n.clone(), t.size()))
        .collect()
}

/// Builds each loss term, sized by a probe forward pass of its student and teacher; a
/// term's trainable parts live in its student's store (optimised and saved with it).
pub(super) fn build_terms(
    spec: &TrainSpec,
    ctx: &TrainCtx<'_>,
    shape: &SpecRecord,
    roles: &[Role],
) -> Result<Vec<Term>> {
    let probe = Tensor::zeros(
        [2, shape.in_channels, shape.height, shape.width],
        (Kind::Float, ctx.device),
    );
    let several = roles.iter().filter(|r| r.trainable).count() > 1;
    let mut terms: Vec<Term> = Vec::new();
    for (i, ls) in spec.losses.iter().enumerate() {
        let name = ls.entry.type_name()?;
        let factory = registry::of_entry(&ls.entry, registry::loss)?;
        let (student, teacher) = bind(ls, roles, ctx)?;
        let loss_ctx = LossCtx {
            num_classes: shape.num_classes,
            train_size: train_split_len(spec, ctx),
            device: ctx.device,
            student_features: feature_shapes(roles[student].built.model.as_ref(), &probe),
            teacher_features: match &teacher {
                Teacher::One(t) => feature_shapes(roles[*t].built.model.as_ref(), &probe),
                _ => Vec::new(),
            },
        };
        let loss = seeded(ctx.seed.child("loss").index(i as u64), || {
            factory(
                &ls.entry.without(&["weight", "student", "teacher"]),
                &loss_ctx,
                &(roles[student].built.vs.root() / format!("loss{i}")),
            )
        })?;
        if loss.needs_teacher() && teacher == Teacher::None {
            let hint = if several {
                ": name the role it learns from with `teacher: <role>`"
            } else {
                ""
            };
            return Err(ls
                .entry
                .error(format!(
                    "loss `{name}` needs a teacher, but this stage has none{hint}"
                ))
                .into());
        }
        let repeats = spec
            .losses
            .iter()
            .filter(|l| l.entry.type_name().ok().as_deref() == Some(&name))
            .count()
            > 1;
        let base = if several {
            format!("{}/{name}", roles[student].name)
        } else {
            name.clone()
        };
        let label = if repeats && (!several || terms.iter().any(|t| t.label == base)) {
            format!("{base}#{i}")
        } else {
            base
        };
        terms.push(Term {
            label,
            loss,
            weight: ls.weight.clone(),
            student,
            teacher,
            is_ce: name == "ce",
        });
    }
    if terms.is_empty() {
        return Err(Error::Invalid(format!("{}: no loss terms", ctx.label)));
    }
    Ok(terms)
}

/// A frozen role that no term reads would cost a forward pass per step for nothing.
pub(super) fn check_every_frozen_role_is_read(roles: &[Role], terms: &[Term]) -> Result<()> {
    for (i, r) in roles.iter().enumerate().filter(|(_, r)| !r.trainable) {
        let read = terms.iter().any(|t| match &t.teacher {
            Teacher::One(k) => *k == i,
            Teacher::Mean(ks) => ks.contains(&i),
            Teacher::None => false,
        });
        if !read {
            return Err(Error::Invalid(format!(
                "role `{}` is frozen and no loss term reads it (name it with `teacher: {}`)",
                r.name, r.name
            )));
        }
    }
    Ok(())
}

/// One optimizer per trained role, over its variables (model and loss parts), sorted by
/// name for a stable state order.
pub(super) fn build_optimizers(spec: &TrainSpec, roles: &[Role]) -> Result<Vec<Trained>> {
    let trained_specs = spec.roles.iter().filter(|r| r.trainable);
    let mut out = Vec::new();
    for ((i, role), rs) in roles
        .iter()
        .enumerate()
        .take_while(|(_, r)| r.trainable)
        .zip(trained_specs)
    {
        let (entry, lr) = rs
            .optimizer
            .clone()
            .unwrap_or_else(|| (spec.optimizer.clone(), spec.lr));
        let factory = registry::of_entry(&entry, registry::optimizer)?;
        let opt = factory(&entry.without(&["lr"]), trainable_params(&role.built.vs))?;
        out.push(Trained {
            role: i,
            opt,
            lr,
            params: role.built.vs.trainable_variables(),
        });
    }
    Ok(out)
}

pub(super) fn build_schedule(spec: &TrainSpec) -> Result<Box<dyn LrSchedule>> {
    let factory = registry::of_entry(&spec.lr_schedule, registry::lr_schedule)?;
    factory(&spec.lr_schedule)
}

/// `combine: clip-to-ce` needs a `ce` term, and one trained role.
pub(super) fn check_combine(
    spec: &TrainSpec,
    ctx: &TrainCtx<'_>,
    terms: &[Term],
    trained: usize,
) -> Result<()> {
    if spec.combine != Combine::ClipToCe {
        return Ok(());
    }
    if !terms.iter().any(|t| t.is_ce) {
        return Err(Error::Invalid(format!(
            "{}: `combine: clip-to-ce` needs a `ce` term in the loss list",
            ctx.label
        )));
    }
    if trained > 1 {
        return Err(Error::Invalid(format!(
            "{}: `combine: clip-to-ce` works with one trained role, this stage has {trained}",
            ctx.label
        )));
    }
    Ok(())
}

fn train_split_len(spec: &TrainSpec, ctx: &TrainCtx<'_>) -> usize {
    ctx.data.train.len()
        + if spec.train_on_val_too {
            ctx.data.val.len()
        } else {
            0
        }
}

/// The loader over the training split (plus validation for final runs) and the
/// validation and test sets.
pub(super) fn build_data(
    spec: &TrainSpec,
    ctx: &TrainCtx<'_>,
    views: Vec<ViewSpec>,
    channels_last: bool,
) -> (LoaderSpec, Option<EvalData>, Option<EvalData>) {
    let data = &ctx.data;
    let train_split = if spec.train_on_val_too && !data.val.is_empty() {
        Arc::new(data.train.concat(&data.val))
    } else {
        data.train.clone()
    };
    let loader = LoaderSpec {
        split: train_split,
        mean: data.mean.clone(),
        std: data.std.clone(),
        classes: data.num_classes(),
        batch_size: spec.batch_size,
        views,
        workers: spec.workers,
        prefetch: 2,
        shuffle_seed: ctx.seed.child("shuffle"),
        epochs: spec.epochs,
        channels_last,
        eval: false,
    };
    let eval_data = |split| {
        EvalData::of(
            split,
            &data.mean,
            &data.std,
            ctx.device,
            channels_last,
            spec.workers,
        )
    };
    let test = spec.eval_test.then(|| eval_data(&data.test));
    let val = (!data.val.is_empty() && !spec.train_on_val_too).then(|| eval_data(&data.val));
    (loader, val, test)
}
