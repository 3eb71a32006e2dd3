//! From a `train` or `distill` stage mapping (or a search's `trial:`) to a [`TrainSpec`]:
//! every plugin it names is checked, and every error is located in the YAML.
//!
//! The two-role shorthand (`model:`, `augment:`, `init:`, and on `distill` `teacher:`,
//! `teacher_view:`, `teacher_augment:`) and the `roles:` mapping (any number of trained
//! and frozen roles, see [`roles`]) build the same spec.

mod defaults;
mod params;
mod probe;
mod roles;

use super::spec::{Combine, LossSpec, RoleSpec, TrainSpec};
use defaults::{build_stand_in, default_loss, default_lr, or_default};
use params::{TrainingParams, KEYS};
use probe::{check_optimizer, probe_plugins};
use rolekd_core::config::{ConfigError, Params};
use rolekd_core::error::{Error, Result};
use rolekd_core::registry;
use roles::loss_term;

/// Reads a `train` (or, with `distill`, a `distill`) stage mapping into a [`TrainSpec`],
/// checking every plugin it names. Other stage kinds (a search's trials) reuse it.
pub fn build_spec(params: &Params, distill: bool) -> Result<TrainSpec> {
    build_spec_probing(params, distill, true)
}

/// [`build_spec`]; `probe_augment: false` leaves the augmentation policies unbuilt, for
/// callers that complete the entries themselves (a search fills in each member's schedule).
pub fn build_spec_probing(
    params: &Params,
    distill: bool,
    probe_augment: bool,
) -> Result<TrainSpec> {
    let p: TrainingParams = params.parse_with_entries(KEYS)?;
    check_counts(params, &p)?;
    let train_on_val_too = match p.train_on.as_str() {
        "train" => false,
        "train+val" => true,
        other => return Err(choice(params, "train_on", other, "`train` or `train+val`").into()),
    };
    let combine = match p.combine.as_deref().unwrap_or("sum") {
        "sum" => Combine::Sum,
        "clip-to-ce" => Combine::ClipToCe,
        other => return Err(choice(params, "combine", other, "`sum` or `clip-to-ce`").into()),
    };
    let optimizer = or_default(params, "optimizer", |d| d.optimizer())?;
    check_optimizer(&optimizer)?;
    let lr_schedule = or_default(params, "lr_schedule", |d| d.lr_schedule(p.epochs))?;
    registry::of_entry(&lr_schedule, registry::lr_schedule)?(&lr_schedule)?;

    let with_roles = p.roles.is_some();
    let rate =
        |opt: &Params, model: Option<&Params>| -> Result<f64> { role_lr(opt, model, p.batch_size) };
    let (roles, role_losses, main_model) = if with_roles {
        roles::from_mapping(params, distill, &optimizer, &rate)?
    } else {
        roles::shorthand(params, &p, distill)?
    };
    // A model that does not build on the stand-in problem gets factor 1; its errors
    // surface in `probe_plugins`.
    let stand_in = match &main_model {
        Some(m) => build_stand_in(m),
        None => Err(Error::Invalid(
            "no trained role is built from a model entry".into(),
        )),
    };
    let lr = match optimizer.get("lr") {
        Some(l) => l.parse_value::<f64>()?,
        None => default_lr(
            &optimizer.type_name()?,
            p.batch_size,
            stand_in
                .as_ref()
                .map_or(1.0, |b| b.model.default_lr_scale()),
        )?,
    };
    check_lr(&optimizer, lr)?;
    let losses = build_losses(params, distill, &roles, role_losses)?;
    let spec = TrainSpec {
        roles,
        losses,
        optimizer,
        lr,
        lr_schedule,
        epochs: p.epochs,
        batch_size: p.batch_size,
        eval_batch_size: p.eval_batch_size.max(1),
        workers: p.workers.max(1),
        train_on_val_too,
        grad_clip: p.grad_clip,
        eval_test: true,
        eval_every: p.eval_every,
        combine,
        stop_after: None,
        channels_last: p.channels_last,
        on_stall: p.on_stall,
        precision: p.precision,
    };
    probe_plugins(&spec, stand_in, with_roles, probe_augment)?;
    Ok(spec)
}

fn choice(params: &Params, key: &str, got: &str, expected: &str) -> ConfigError {
    params.child_error(key, format!("`{got}`: expected {expected}"))
}

fn check_counts(params: &Params, p: &TrainingParams) -> Result<()> {
    for (key, v) in [
        ("epochs", p.epochs),
        ("eval_every", p.eval_every),
        ("batch_size", p.batch_size),
    ] {
        params.at_least(key, v as i64, 1)?;
    }
    Ok(())
}

fn check_lr(optimizer: &Params, lr: f64) -> Result<()> {
    Ok(optimizer.positive("lr", lr)?)
}

/// A trained role's learning rate: its optimizer's `lr`, or the default for its model.
fn role_lr(optimizer: &Params, model: Option<&Params>, batch_size: usize) -> Result<f64> {
    let lr = match optimizer.get("lr") {
        Some(l) => l.parse_value::<f64>()?,
        None => {
            let scale = model
                .and_then(|m| build_stand_in(m).ok())
                .map_or(1.0, |b| b.model.default_lr_scale());
            default_lr(&optimizer.type_name()?, batch_size, scale)?
        }
    };
    check_lr(optimizer, lr)?;
    Ok(lr)
}

/// The stage's loss terms: its `loss:` list and the roles' own lists, or the default for
/// each trained role when there is neither. Each term's `student:` and `teacher:` name
/// roles; every trained role must be some term's student.
fn build_losses(
    params: &Params,
    distill: bool,
    roles: &[RoleSpec],
    role_losses: Vec<LossSpec>,
) -> Result<Vec<LossSpec>> {
    let stage_list = params.get("loss").filter(|l| !l.value().is_null());
    let mut losses = Vec::new();
    match &stage_list {
        Some(list) => {
            for entry in list.items() {
                losses.push(loss_term(entry, None, roles)?);
            }
            if losses.is_empty() {
                return Err(params
                    .child_error("loss", "needs at least one loss term")
                    .into());
            }
        }
        None if role_losses.is_empty() => {
            let list = default_loss(distill)?;
            let trained: Vec<&str> = roles
                .iter()
                .filter(|r| r.trainable)
                .map(|r| r.name.as_str())
                .collect();
            let several = trained.len() > 1;
            for name in trained {
                for entry in list.items() {
                    let mut term = loss_term(entry, None, roles)?;
                    term.student = several.then(|| name.to_string());
                    losses.push(term);
                }
            }
        }
        None => {}
    }
    losses.extend(role_losses);
    for r in roles.iter().filter(|r| r.trainable) {
        let first = roles.iter().find(|r| r.trainable).map(|r| r.name.as_str());
        let trains = |l: &LossSpec| l.student.as_deref().or(first) == Some(r.name.as_str());
        if !losses.iter().any(trains) {
            let at = params.get("roles").and_then(|rs| rs.get(&r.name));
            let at = at.unwrap_or_else(|| params.clone());
            return Err(at
                .error(format!(
                    "trained role `{}` has no loss term; give it `loss:` or name it with `student: {}`",
                    r.name, r.name
                ))
                .into());
        }
    }
    Ok(losses)
}
