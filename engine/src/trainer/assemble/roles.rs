//! A stage's roles: from the two-role shorthand, or from a `roles:` mapping.
//!
//! ```yaml
//! roles:
//!   peer_a:
//!     model: {type: small-cnn, channels: [4, 8]}   # or checkpoint: ${teacher.checkpoint}
//!     augment: {type: standard}                     # its own view's policy
//!     loss: [{type: ce}, {type: kd, teacher: peer_b, temperature: 1}]
//!   peer_b:
//!     model: {type: small-cnn, channels: [8, 16]}
//!     optimizer: {type: sgd, lr: 0.02, momentum: 0.9}
//!     loss: [{type: ce}, {type: kd, teacher: peer_a, temperature: 1}]
//! ```
//!
//! A role is trained unless it comes from a `checkpoint:` (`trained:` overrides). Frozen
//! roles see the first trained role's images (`view: same`, the default), their own
//! (`view: own`, with `augment:`), or another role's (`view: <role>`).

use super::params::TrainingParams;
use super::probe::{check_optimizer, check_type};
use crate::trainer::roles::ModelSource;
use crate::trainer::spec::{LossSpec, RoleSpec, View};
use crate::trainer::weights::WeightSchedule;
use rolekd_core::artifact::CheckpointPath;
use rolekd_core::config::did_you_mean;
use rolekd_core::config::{ConfigError, Key, Params};
use rolekd_core::error::Result;
use rolekd_core::registry::PluginKind;
use serde::Deserialize;

/// A stage's roles, the loss terms the roles list themselves, and the model entry of the
/// first trained role (for the stand-in checks), when it has one.
pub(super) type Roles = (Vec<RoleSpec>, Vec<LossSpec>, Option<Params>);

const SHORTHAND: [&str; 6] = [
    "model",
    "augment",
    "init",
    "teacher",
    "teacher_view",
    "teacher_augment",
];

/// `model:` (+ `augment:`, `init:`) and, on `distill`, `teacher:` (+ `teacher_view:`,
/// `teacher_augment:`): a trained `model` or `student`, and a frozen `teacher`.
pub(super) fn shorthand(params: &Params, p: &TrainingParams, distill: bool) -> Result<Roles> {
    if !distill {
        if let Some(f) = SHORTHAND[3..].iter().find(|f| params.get(f).is_some()) {
            return Err(params
                .child_error(f, "a `train` stage has no teacher; use `kind: distill`")
                .into());
        }
    }
    let model = params.get("model").ok_or_else(|| {
        params.error(
            "missing field `model` (the trained model, e.g. `{type: small-cnn}`), or `roles:`",
        )
    })?;
    check_type(&model, PluginKind::Model)?;
    let augment = params.get("augment").filter(|a| !a.value().is_null());
    if let Some(a) = &augment {
        check_type(a, PluginKind::AugmentPolicy)?;
    }
    let mut roles = vec![RoleSpec {
        name: if distill { "student" } else { "model" }.into(),
        model: ModelSource::Config(model.clone()),
        augment,
        view: View::Own,
        trainable: true,
        init: p.init.as_ref().map(|c| c.0.clone()),
        optimizer: None,
    }];
    if distill {
        roles.push(shorthand_teacher(params, p)?);
    }
    Ok((roles, Vec::new(), Some(model)))
}

fn shorthand_teacher(params: &Params, p: &TrainingParams) -> Result<RoleSpec> {
    let teacher = p.teacher.clone().ok_or_else(|| {
        params.error("missing field `teacher` (a checkpoint, e.g. `${teacher.checkpoint}`)")
    })?;
    let view = match p.teacher_view.as_deref().unwrap_or("same") {
        "same" => View::Same,
        "own" => View::Own,
        other => {
            return Err(params
                .child_error(
                    "teacher_view",
                    format!("`{other}`: expected `same` or `own`"),
                )
                .into())
        }
    };
    let augment = params
        .get("teacher_augment")
        .filter(|a| !a.value().is_null());
    if view == View::Same && augment.is_some() {
        return Err(params
            .child_error("teacher_augment", "only used with `teacher_view: own`")
            .into());
    }
    if let Some(a) = &augment {
        check_type(a, PluginKind::AugmentPolicy)?;
    }
    Ok(RoleSpec {
        name: "teacher".into(),
        model: ModelSource::Checkpoint(teacher.0.clone()),
        augment,
        view,
        trainable: false,
        init: None,
        optimizer: None,
    })
}

/// Every key of one role of a `roles:` mapping, in the order an "unknown field" error
/// lists them: the fields of [`RoleParams`] and the plugin entries, read through `Params`
/// so their own errors are located inside them.
const ROLE_KEYS: &[Key] = &[
    // Built from this model entry.
    Key::Entry("model"),
    Key::Field("checkpoint"),
    Key::Field("trained"),
    Key::Field("view"),
    Key::Entry("augment"),
    Key::Field("init"),
    // Trained roles: their own optimizer (default: the stage's).
    Key::Entry("optimizer"),
    // Trained roles: loss terms that train this role (`student:` is implied).
    Key::Entry("loss"),
];

/// The typed fields of one role of a `roles:` mapping (see [`ROLE_KEYS`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleParams {
    /// Or loaded from this checkpoint (`${teacher.checkpoint}`).
    #[serde(default)]
    checkpoint: Option<CheckpointPath>,
    /// Default: true for a `model:`, false for a `checkpoint:`.
    #[serde(default)]
    trained: Option<bool>,
    /// `own`, `same` or another role's name; trained roles always see their own.
    #[serde(default)]
    view: Option<String>,
    #[serde(default)]
    init: Option<CheckpointPath>,
}

/// A `roles:` mapping: any number of trained and frozen roles, each with its own view.
pub(super) fn from_mapping(
    params: &Params,
    distill: bool,
    stage_optimizer: &Params,
    rate: &dyn Fn(&Params, Option<&Params>) -> Result<f64>,
) -> Result<Roles> {
    let mapping = params.get("roles").expect("parsed");
    if let Some(key) = SHORTHAND.iter().find(|k| params.get(k).is_some()) {
        return Err(params
            .child_error(
                key,
                format!("with `roles:`, `{key}` goes under `roles.<name>`"),
            )
            .into());
    }
    let entries = mapping.entries()?;
    if entries.is_empty() {
        return Err(mapping.error("needs at least one role").into());
    }
    let names: Vec<String> = entries.iter().map(|(n, _)| n.clone()).collect();
    let mut roles = Vec::new();
    for (name, entry) in &entries {
        check_name(name, &mapping)?;
        roles.push(role(name, entry, &names, stage_optimizer, rate)?);
    }
    if !roles.iter().any(|r| r.trainable) {
        return Err(mapping
            .error("no role is trained (a role with `model:` is, unless `trained: false`)")
            .into());
    }
    if distill && roles.iter().all(|r| r.trainable) {
        return Err(mapping
            .error("a `distill` stage needs a frozen role to learn from; peers that learn together are a `kind: train` stage")
            .into());
    }
    let mut losses = Vec::new();
    for ((name, entry), r) in entries.iter().zip(&roles) {
        if let Some(list) = entry.get("loss").filter(|l| !l.value().is_null()) {
            if !r.trainable {
                return Err(entry
                    .child_error("loss", "a frozen role trains no loss")
                    .into());
            }
            for item in list.items() {
                losses.push(loss_term(item, Some(name), &roles)?);
            }
        }
    }
    let main = entries
        .iter()
        .zip(&roles)
        .find(|(_, r)| r.trainable)
        .and_then(|((_, e), _)| e.get("model"));
    Ok((roles, losses, main))
}

fn check_name(name: &str, at: &Params) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok || name == "total" {
        return Err(at
            .child_error(
                name,
                "a role's name is letters, digits, `_` and `-` (and not `total`)",
            )
            .into());
    }
    Ok(())
}

fn role(
    name: &str,
    entry: &Params,
    names: &[String],
    stage_optimizer: &Params,
    rate: &dyn Fn(&Params, Option<&Params>) -> Result<f64>,
) -> Result<RoleSpec> {
    let rp: RoleParams = entry.parse_with_entries(ROLE_KEYS)?;
    let model_entry = entry.get("model").filter(|m| !m.value().is_null());
    let model = match (&model_entry, &rp.checkpoint) {
        (Some(m), None) => {
            check_type(m, PluginKind::Model)?;
            ModelSource::Config(m.clone())
        }
        (None, Some(c)) => ModelSource::Checkpoint(c.0.clone()),
        (Some(_), Some(_)) => {
            return Err(entry
                .error("give `model:` or `checkpoint:`, not both")
                .into())
        }
        (None, None) => {
            return Err(entry
                .error("needs `model:` (built from YAML) or `checkpoint:` (loaded from a stage)")
                .into())
        }
    };
    let trainable = rp.trained.unwrap_or(rp.checkpoint.is_none());
    if !trainable && rp.checkpoint.is_none() && rp.init.is_none() {
        return Err(entry
            .error("a frozen role built from `model:` needs `init:` (its weights), or give `checkpoint:`")
            .into());
    }
    let view = view(name, entry, rp.view.as_deref(), trainable, names)?;
    let augment = entry.get("augment").filter(|a| !a.value().is_null());
    if let Some(a) = &augment {
        if view != View::Own {
            return Err(entry
                .child_error("augment", "only used with `view: own`")
                .into());
        }
        check_type(a, PluginKind::AugmentPolicy)?;
    }
    let optimizer = match (
        trainable,
        entry.get("optimizer").filter(|o| !o.value().is_null()),
    ) {
        (false, Some(_)) => {
            return Err(entry
                .child_error("optimizer", "a frozen role is not optimised")
                .into())
        }
        (false, None) => None,
        (true, own) => {
            let opt = own.unwrap_or_else(|| stage_optimizer.clone());
            check_optimizer(&opt)?;
            let lr = rate(&opt, model_entry.as_ref())?;
            Some((opt, lr))
        }
    };
    Ok(RoleSpec {
        name: name.to_string(),
        model,
        augment,
        view,
        trainable,
        init: rp.init.map(|c| c.0),
        optimizer,
    })
}

fn view(
    name: &str,
    entry: &Params,
    view: Option<&str>,
    trainable: bool,
    names: &[String],
) -> Result<View> {
    let bad = |m: String| -> rolekd_core::Error { entry.child_error("view", m).into() };
    match view {
        None if trainable => Ok(View::Own),
        None => Ok(View::Same),
        Some("same") if !trainable => Ok(View::Same),
        Some("own") => Ok(View::Own),
        Some(_) if trainable => Err(bad("a trained role always sees its own view".into())),
        Some(other) if other == name => Err(bad("a role cannot share its own view".into())),
        Some(other) if names.iter().any(|n| n == other) => Ok(View::Of(other.to_string())),
        Some(other) => Err(bad(unknown_role(
            other,
            names,
            "`own`, `same` or a role's name",
        ))),
    }
}

fn unknown_role(name: &str, names: &[String], expected: &str) -> String {
    let hint = did_you_mean(name, names);
    format!(
        "`{name}`: expected {expected}; roles: {}{hint}",
        names.join(", ")
    )
}

/// A loss entry's `student:` and `teacher:` (a role, or a list whose logits are
/// averaged), checked against the stage's roles; `preset` is the role whose own list holds
/// the entry.
pub(super) fn bindings(
    entry: &Params,
    preset: Option<&str>,
    roles: &[RoleSpec],
) -> Result<(Option<String>, Vec<String>)> {
    let names: Vec<String> = roles.iter().map(|r| r.name.clone()).collect();
    let lookup = |key: &str, v: &Params| -> std::result::Result<String, ConfigError> {
        let name: String = v.parse_value()?;
        if names.contains(&name) {
            Ok(name)
        } else {
            Err(entry.child_error(key, unknown_role(&name, &names, "a role of this stage")))
        }
    };
    let mut student = preset.map(str::to_string);
    if let Some(s) = entry.get("student") {
        let named = lookup("student", &s)?;
        if preset.is_some_and(|p| p != named) {
            return Err(entry
                .child_error(
                    "student",
                    format!(
                        "this term is in role `{}`'s list: it trains that role",
                        preset.unwrap_or_default()
                    ),
                )
                .into());
        }
        student = Some(named);
    }
    if let Some(s) = &student {
        if roles.iter().any(|r| &r.name == s && !r.trainable) {
            return Err(entry
                .child_error(
                    "student",
                    format!("`{s}` is frozen; a term trains a trained role"),
                )
                .into());
        }
    }
    let teacher = match entry.get("teacher") {
        None => Vec::new(),
        Some(t) if t.value().is_sequence() => t
            .items()
            .iter()
            .map(|v| lookup("teacher", v))
            .collect::<std::result::Result<_, _>>()?,
        Some(t) => vec![lookup("teacher", &t)?],
    };
    let first_trained = roles.iter().find(|r| r.trainable).map(|r| r.name.clone());
    let trains = student.clone().or(first_trained);
    if trains.is_some_and(|s| teacher.contains(&s)) {
        return Err(entry
            .child_error(
                "teacher",
                "a term's teacher must be another role than its student",
            )
            .into());
    }
    Ok((student, teacher))
}

/// One loss entry: its type checked, its weight schedule, its role bindings (`student`
/// preset for a role's own list).
pub(super) fn loss_term(
    entry: Params,
    student: Option<&str>,
    roles: &[RoleSpec],
) -> Result<LossSpec> {
    check_type(&entry, PluginKind::Loss)?;
    let weight = match entry.get("weight") {
        Some(w) => w.parse_value::<WeightSchedule>()?,
        None => WeightSchedule::default(),
    };
    weight
        .validate()
        .map_err(|m| entry.child_error("weight", m))?;
    let (student, teacher) = bindings(&entry, student, roles)?;
    Ok(LossSpec {
        entry,
        weight,
        student,
        teacher,
    })
}
