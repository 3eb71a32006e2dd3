//! `train` and `distill`: one params struct, one stage type; `distill` adds a teacher.

use rolekd_core::artifact::{ArtifactKind, CheckpointPath};
use rolekd_core::config::Params;
use rolekd_core::plugin::stage::{OutputDecl, Stage, StageCtx, StageResult};
use rolekd_core::role::RoleRecord;
use rolekd_core::trainer::health::OnStall;
use rolekd_core::trainer::{
    self, LossSpec, ModelSource, RoleSpec, TrainCtx, TrainSpec, View, WeightSchedule,
};
use rolekd_core::yaml::Value;
use rolekd_core::{register_plugin, registry, Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Fields of a `train` or `distill` stage.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // plugin-valued fields are read through `Params` to keep their YAML paths
struct TrainingParams {
    /// The trained model: `{type: resnet-cifar, depth: 20, quant: {...}}`.
    model: Value,
    /// The trained role's augmentation policy (default: none).
    #[serde(default)]
    augment: Option<Value>,
    /// Initialise the trained model from a checkpoint of the same architecture.
    #[serde(default)]
    init: Option<CheckpointPath>,
    /// Epochs to train.
    epochs: usize,
    /// Training batch size.
    #[serde(default = "default_batch")]
    batch_size: usize,
    /// Evaluation batch size (the whole test set is evaluated, last partial batch included).
    #[serde(default = "default_eval_batch")]
    eval_batch_size: usize,
    /// Evaluate on the validation and test splits every this many epochs (and after the
    /// last); default 1.
    #[serde(default = "one")]
    eval_every: usize,
    /// Default `{type: sgd, lr: 0.05 * batch_size / 128 * model scale, momentum: 0.9,
    /// nesterov: true, weight_decay: 5e-4}` (the scale is 1 but for `small-cnn`, 0.2); an
    /// entry without `lr` gets that rate (sgd) or 1e-3 (adam, adamw).
    #[serde(default)]
    optimizer: Option<Value>,
    /// `{type: cosine, warmup_epochs: 1}` (default; no warm-up for a one-epoch run),
    /// `multistep`, `step`, `constant`, each with `warmup_epochs`.
    #[serde(default)]
    lr_schedule: Option<Value>,
    /// Weighted loss terms: `[{type: ce}, {type: kd, weight: 0.9, temperature: 4}]`.
    #[serde(default)]
    loss: Option<Value>,
    /// Augmentation worker threads.
    #[serde(default = "default_workers")]
    workers: usize,
    /// `train` (default) or `train+val` (the final run after a search).
    #[serde(default = "default_train_on")]
    train_on: String,
    /// Clip the gradient norm to this value.
    #[serde(default)]
    grad_clip: Option<f64>,
    /// Lay images and conv weights out channels-last (faster convolutions on CPU; the same
    /// results up to float rounding). `false`: libtorch's default NCHW layout.
    #[serde(default = "default_channels_last")]
    channels_last: bool,
    /// `sum` (default) or `clip-to-ce`: the released role-wise code's rule, the non-CE
    /// gradient clipped per parameter to the CE gradient's norm times sigmoid(epoch).
    #[serde(default)]
    combine: Option<String>,
    /// When training stalls (accuracy or loss at chance, a rising loss): `warn` (default:
    /// print, record in the result, train on) or `stop` (the stage fails, exit 1).
    #[serde(default)]
    on_stall: OnStall,
    /// distill only: the frozen teacher's checkpoint (`${teacher.checkpoint}`).
    #[serde(default)]
    teacher: Option<CheckpointPath>,
    /// distill only: `same` (the teacher sees the student's augmented image, as in the
    /// original) or `own` (its own view of the same source image, from `teacher_augment`).
    #[serde(default)]
    teacher_view: Option<String>,
    /// distill only, with `teacher_view: own`: the teacher's augmentation policy.
    #[serde(default)]
    teacher_augment: Option<Value>,
}

fn default_batch() -> usize {
    128
}
fn default_eval_batch() -> usize {
    256
}
fn one() -> usize {
    1
}
fn default_channels_last() -> bool {
    true
}

fn default_workers() -> usize {
    2
}
fn default_train_on() -> String {
    "train".into()
}

/// SGD's default learning rate at the default batch of 128, scaled linearly with the
/// batch size (0.1 per 256 images, Goyal et al. 2017). 0.1 at batch 128 drove a small CNN
/// distilled at T = 4 to chance level (issue 19); see the README's defaults table.
const SGD_LR_PER_128: f64 = 0.05;
/// Adam's and AdamW's default learning rate.
const ADAM_LR: f64 = 1e-3;

/// The optimizer a stage without `optimizer:` gets (its rate from [`default_lr`]).
const DEFAULT_OPTIMIZER: &str = "{type: sgd, momentum: 0.9, nesterov: true, weight_decay: 0.0005}";

/// The learning rate an optimizer entry without `lr` gets: SGD's rate is scaled by the
/// model's [`Model::default_lr_scale`](rolekd_core::plugin::model::Model::default_lr_scale)
/// (a fan-in effect, which Adam's normalised steps do not have).
fn default_lr(optimizer: &str, batch_size: usize, model_scale: f64) -> f64 {
    match optimizer {
        "adam" | "adamw" => ADAM_LR,
        _ => SGD_LR_PER_128 * batch_size as f64 / 128.0 * model_scale,
    }
}

/// The model built once at configuration time on a stand-in problem (1x28x28, 10 classes,
/// CPU): it gives the default rate's model factor and the shapes [`probe_plugins`] checks.
fn build_stand_in(model: &Params) -> Result<trainer::BuiltModel> {
    let shape = rolekd_core::checkpoint::SpecRecord {
        in_channels: 1,
        num_classes: 10,
        height: 28,
        width: 28,
    };
    trainer::build_model(model, &shape, tch::Device::Cpu, rolekd_core::rng::Seed(0))
}

/// The schedule a stage without `lr_schedule:` gets: cosine, with the learning rate ramped
/// up over the first epoch when there is more than one (the first steps of a fresh model
/// are where a high rate throws it off).
fn default_schedule(epochs: usize) -> &'static str {
    if epochs >= 2 {
        "{type: cosine, warmup_epochs: 1}"
    } else {
        "{type: cosine}"
    }
}
const TRAIN_LOSS: &str = "[{type: ce}]";
/// Hinton KD as most CIFAR KD benchmarks run it (RepDistiller's alpha 0.9, T 4).
const DISTILL_LOSS: &str = "[{type: ce, weight: 0.1}, {type: kd, weight: 0.9, temperature: 4}]";

struct TrainingStage {
    spec: TrainSpec,
    distill: bool,
    /// The stage's mapping, to locate a stop on stall.
    at: Params,
}

fn or_default(params: &Params, key: &str, default: &str) -> Params {
    params
        .get(key)
        .filter(|p| !p.value().is_null())
        .unwrap_or_else(|| Params::from_yaml(default).expect("built-in default parses"))
}

fn build(params: &Params, distill: bool) -> Result<Box<dyn Stage>> {
    let spec = build_spec(params, distill)?;
    Ok(Box::new(TrainingStage {
        spec,
        distill,
        at: params.clone(),
    }))
}

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
    let p: TrainingParams = params.parse()?;
    if p.epochs == 0 {
        return Err(params.child_error("epochs", "must be at least 1").into());
    }
    if p.eval_every == 0 {
        return Err(params
            .child_error("eval_every", "must be at least 1")
            .into());
    }
    if p.batch_size == 0 {
        return Err(params
            .child_error("batch_size", "must be at least 1")
            .into());
    }
    let teacher_fields = ["teacher", "teacher_view", "teacher_augment"];
    if !distill {
        if let Some(f) = teacher_fields.iter().find(|f| params.get(f).is_some()) {
            return Err(params
                .child_error(f, "a `train` stage has no teacher; use `kind: distill`")
                .into());
        }
    }
    let train_on_val_too = match p.train_on.as_str() {
        "train" => false,
        "train+val" => true,
        other => {
            return Err(params
                .child_error(
                    "train_on",
                    format!("`{other}`: expected `train` or `train+val`"),
                )
                .into())
        }
    };
    let combine = match p.combine.as_deref().unwrap_or("sum") {
        "sum" => trainer::Combine::Sum,
        "clip-to-ce" => trainer::Combine::ClipToCe,
        other => {
            return Err(params
                .child_error(
                    "combine",
                    format!("`{other}`: expected `sum` or `clip-to-ce`"),
                )
                .into())
        }
    };
    let model = params.get("model").expect("parsed");
    check_type(&model, registry::PluginKind::Model)?;
    let augment = params.get("augment").filter(|a| !a.value().is_null());
    if let Some(a) = &augment {
        check_type(a, registry::PluginKind::AugmentPolicy)?;
    }
    // A model that does not build on the stand-in problem gets factor 1; its errors
    // surface in `probe_plugins`.
    let stand_in = build_stand_in(&model);
    let optimizer = or_default(params, "optimizer", DEFAULT_OPTIMIZER);
    let lr = match optimizer.get("lr") {
        Some(l) => l.parse_value::<f64>()?,
        None => default_lr(
            &optimizer.type_name()?,
            p.batch_size,
            stand_in
                .as_ref()
                .map_or(1.0, |b| b.model.default_lr_scale()),
        ),
    };
    if !(lr.is_finite() && lr > 0.0) {
        return Err(optimizer
            .child_error("lr", format!("must be a positive number, got {lr}"))
            .into());
    }
    let lr_schedule = or_default(params, "lr_schedule", default_schedule(p.epochs));
    // Optimizer and schedule are cheap to build: build them now so bad params surface
    // before anything trains.
    check_type(&optimizer, registry::PluginKind::Optimizer)?;
    registry::optimizer(&optimizer.type_name()?).expect("checked")(
        &optimizer.without(&["lr"]),
        Vec::new(),
    )?;
    check_type(&lr_schedule, registry::PluginKind::LrSchedule)?;
    registry::lr_schedule(&lr_schedule.type_name()?).expect("checked")(&lr_schedule)?;

    let loss_p = or_default(
        params,
        "loss",
        if distill { DISTILL_LOSS } else { TRAIN_LOSS },
    );
    let mut losses = Vec::new();
    for entry in loss_p.items() {
        check_type(&entry, registry::PluginKind::Loss)?;
        let weight = match entry.get("weight") {
            Some(w) => w.parse_value::<WeightSchedule>()?,
            None => WeightSchedule::default(),
        };
        weight
            .validate()
            .map_err(|m| entry.child_error("weight", m))?;
        losses.push(LossSpec { entry, weight });
    }
    if losses.is_empty() {
        return Err(params
            .child_error("loss", "needs at least one loss term")
            .into());
    }

    let mut roles = vec![RoleSpec {
        name: if distill {
            "student".into()
        } else {
            "model".into()
        },
        model: ModelSource::Config(model.clone()),
        augment: augment.clone(),
        view: View::Own,
        trainable: true,
        init: p.init.as_ref().map(|c| c.0.clone()),
    }];
    if distill {
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
        let teacher_augment = params
            .get("teacher_augment")
            .filter(|a| !a.value().is_null());
        if view == View::Same && teacher_augment.is_some() {
            return Err(params
                .child_error("teacher_augment", "only used with `teacher_view: own`")
                .into());
        }
        if let Some(a) = &teacher_augment {
            check_type(a, registry::PluginKind::AugmentPolicy)?;
        }
        roles.push(RoleSpec {
            name: "teacher".into(),
            model: ModelSource::Checkpoint(teacher.0.clone()),
            augment: teacher_augment,
            view,
            trainable: false,
            init: None,
        });
    }
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
    };
    probe_plugins(&spec, stand_in, distill, probe_augment)?;
    Ok(spec)
}

/// Checks that a plugin entry names a registered plugin of `kind`, with a located error.
fn check_type(entry: &Params, kind: registry::PluginKind) -> Result<()> {
    let name = entry.type_name()?;
    let reg = registry::Registry::global()
        .read()
        .unwrap_or_else(|e| e.into_inner());
    reg.get(kind, &name).map_err(|e| {
        let at = entry.get("type").unwrap_or_else(|| entry.clone());
        Error::Config(at.error(e.to_string()))
    })?;
    Ok(())
}

/// Checks the policy and losses against the model built on the stand-in problem
/// ([`build_stand_in`]) so that a misspelt or out-of-range parameter is reported before any stage
/// trains. Only configuration errors count here: anything else (a shape that only the
/// stand-in problem gets wrong, a file that an earlier stage will write) waits for the run.
fn probe_plugins(
    spec: &TrainSpec,
    stand_in: Result<trainer::BuiltModel>,
    distill: bool,
    probe_augment: bool,
) -> Result<()> {
    let keep_config = |r: Result<()>| match r {
        Err(Error::Config(c)) => Err(Error::Config(c)),
        _ => Ok(()),
    };
    let built = match stand_in {
        Ok(b) => b,
        Err(e) => return keep_config(Err(e)),
    };
    let probe = tch::Tensor::zeros([2, 1, 28, 28], (tch::Kind::Float, tch::Device::Cpu));
    let feats: Vec<(String, Vec<i64>)> = tch::no_grad(|| built.model.forward(&probe, false))
        .features
        .iter()
        .map(|(n, t)| (n.clone(), t.size()))
        .collect();
    let ctx = rolekd_core::plugin::loss::LossCtx {
        num_classes: 10,
        train_size: 64,
        device: tch::Device::Cpu,
        student_features: feats.clone(),
        teacher_features: if distill { feats } else { Vec::new() },
    };
    // Augmentation policies: on the stand-in image shape, unless an input is still to come.
    let policy_ctx = rolekd_core::plugin::augment::PolicyCtx {
        channels: 1,
        height: 28,
        width: 28,
        epochs: spec.epochs,
    };
    let entries = spec.roles.iter().filter_map(|r| r.augment.as_ref());
    for entry in entries.filter(|_| probe_augment) {
        if rolekd_core::artifact::holds_placeholder(entry.value()) {
            continue;
        }
        let factory = registry::augment_policy(&entry.type_name()?)
            .map_err(|e| entry.error(e.to_string()))?;
        if let Err(e) = factory(entry, &policy_ctx) {
            keep_config(Err(e))?;
        }
    }
    for (i, l) in spec.losses.iter().enumerate() {
        let f = registry::loss(&l.entry.type_name()?).expect("checked");
        match f(
            &l.entry.without(&["weight"]),
            &ctx,
            &(built.vs.root() / format!("probe{i}")),
        ) {
            Ok(loss) if loss.needs_teacher() && !distill => {
                let name = l.entry.type_name()?;
                return Err(l
                    .entry
                    .error(format!(
                        "loss `{name}` needs a teacher: use it in a `distill` stage"
                    ))
                    .into());
            }
            Ok(_) => {}
            Err(e) => keep_config(Err(e))?,
        }
    }
    Ok(())
}

impl Stage for TrainingStage {
    fn roles(&self) -> Vec<RoleRecord> {
        self.spec.roles.iter().map(RoleRecord::of).collect()
    }

    fn outputs(&self) -> Vec<OutputDecl> {
        vec![
            OutputDecl {
                name: "checkpoint",
                kind: ArtifactKind::Checkpoint,
            },
            OutputDecl {
                name: "metrics",
                kind: ArtifactKind::Metrics,
            },
        ]
    }

    fn run(&self, ctx: &StageCtx<'_>) -> Result<StageResult> {
        let data = (ctx.data)()?;
        let tctx = TrainCtx {
            label: ctx.name,
            dir: ctx.dir.clone(),
            seed: ctx.seed,
            device: ctx.device,
            data,
            progress: ctx.progress,
            interrupted: ctx.interrupted,
        };
        let outcome = match trainer::train(&self.spec, &tctx) {
            // Located like a configuration error, but a failed run (exit 1), not bad input.
            Err(e @ Error::Stalled { .. }) => {
                let at = self
                    .at
                    .child_error("on_stall", format!("{e} (stopped: `on_stall: stop`)"));
                return Err(Error::Invalid(at.to_string()));
            }
            other => other?,
        };
        let mut outputs = BTreeMap::new();
        outputs.insert("checkpoint".to_string(), "checkpoint".to_string());
        outputs.insert("metrics".to_string(), "metrics.jsonl".to_string());
        let mut summary = outcome.summary();
        // Kept for readers of earlier results; `roles` says the same, typed.
        summary.insert("distilled".into(), if self.distill { 1.0 } else { 0.0 });
        Ok(StageResult {
            outputs,
            summary,
            warnings: outcome.stalls.into_iter().map(|s| s.message).collect(),
            roles: self.roles(),
        })
    }
}

fn build_train(params: &Params) -> Result<Box<dyn Stage>> {
    build(params, false)
}

fn build_distill(params: &Params) -> Result<Box<dyn Stage>> {
    build(params, true)
}

register_plugin!(
    Stage,
    "train",
    "Train one model with its own augmentation and loss list (CE by default)",
    build_train
);
register_plugin!(
    Stage,
    "distill",
    "Distil a student from a frozen teacher checkpoint; teacher_view same|own",
    build_distill
);
