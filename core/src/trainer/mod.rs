//! The one training loop behind every stage kind (train, distill, search trials).
//!
//! Roles: exactly one trained role (the student, or the model of a `train` stage) and any
//! number of frozen ones (teachers, in eval mode). Each role sees its own augmentation view
//! of the same sampled images, or shares the trained role's view (`view: same`). Losses see
//! the student's and the first frozen role's outputs.

pub mod health;
mod loader;
mod metrics;
mod roles;
pub mod state;
mod weights;

pub use loader::{batches_per_epoch, epoch_order, split_tensor, Batch, LoaderSpec, ViewSpec};
pub use metrics::{read_metrics, write_metrics, EpochMetrics, TrainOutcome};
pub use roles::{
    build_model, build_policy, load_model, seeded, spec_of, BuiltModel, ModelSource, NoAugment,
};
pub use weights::WeightSchedule;

use crate::checkpoint::save_checkpoint;
use crate::config::Params;
use crate::error::{Error, Result};
use crate::plugin::data::Dataset;
use crate::plugin::loss::{Loss, LossCtx, LossInputs};
use crate::plugin::model::{Model, ModelOutput};
use crate::plugin::optim::{TrainProgress, TrainableParam};
use crate::progress::Progress;
use crate::registry;
use crate::rng::Seed;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

/// Which view of the images a frozen role sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// Its own augmentation of the same source images.
    Own,
    /// Exactly the trained role's augmented images.
    Same,
}

/// How the weighted loss terms become one gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Combine {
    /// The gradient of the weighted sum (the usual rule).
    #[default]
    Sum,
    /// The released role-wise code's rule: per parameter, the gradient of the `ce` terms
    /// plus the gradient of every other term clipped to `||grad(CE)|| * sigmoid(epoch)`
    /// (0-based epoch). Weight decay stays the optimizer's.
    ClipToCe,
}

/// A participant in training.
#[derive(Clone, Debug)]
pub struct RoleSpec {
    pub name: String,
    pub model: ModelSource,
    /// The augmentation policy entry (None: no augmentation).
    pub augment: Option<Params>,
    pub view: View,
    pub trainable: bool,
    /// Initialise a trained role from this checkpoint (same architecture).
    pub init: Option<PathBuf>,
}

/// One weighted loss term.
#[derive(Clone, Debug)]
pub struct LossSpec {
    /// The entry (`type` and the loss's own params).
    pub entry: Params,
    pub weight: WeightSchedule,
}

/// Everything one training run needs.
#[derive(Clone, Debug)]
pub struct TrainSpec {
    pub roles: Vec<RoleSpec>,
    pub losses: Vec<LossSpec>,
    pub optimizer: Params,
    pub lr: f64,
    pub lr_schedule: Params,
    pub epochs: usize,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub workers: usize,
    /// Train on the training split plus the validation split (final runs after a search).
    pub train_on_val_too: bool,
    pub grad_clip: Option<f64>,
    /// Evaluate on the test split (search trials only need validation).
    pub eval_test: bool,
    /// Evaluate (validation and test) every this many epochs, and after the last one: on
    /// a small training split, evaluating 15,000 images each epoch costs more than training.
    pub eval_every: usize,
    /// How the loss terms make one gradient.
    pub combine: Combine,
    /// Stop after this many epochs (resume state saved), e.g. at a search's perturbation
    /// point; `None` trains to `epochs` and writes the final checkpoint.
    pub stop_after: Option<usize>,
    /// Lay images, conv weights and activations out channels-last (NHWC strides): oneDNN's
    /// convolutions run faster on it (see [`crate::layout`]). Same results up to float
    /// rounding; checkpoints are written in the default layout either way.
    pub channels_last: bool,
    /// What a stalled run does (see [`health`]): warn and train on, or stop.
    pub on_stall: health::OnStall,
}

/// Where a run happens.
pub struct TrainCtx<'a> {
    pub label: &'a str,
    pub dir: PathBuf,
    pub seed: Seed,
    pub device: Device,
    pub data: Arc<Dataset>,
    pub progress: &'a Progress,
    pub interrupted: &'a AtomicBool,
}

struct Role {
    built: BuiltModel,
    view: usize,
}

/// Trains the trained role; writes `metrics.jsonl`, per-epoch resume state under
/// `state/`, and the final model as a checkpoint under `checkpoint/`.
pub fn train(spec: &TrainSpec, ctx: &TrainCtx<'_>) -> Result<TrainOutcome> {
    let data = &ctx.data;
    let shape = spec_of(data);
    let trained: Vec<usize> = (0..spec.roles.len())
        .filter(|&i| spec.roles[i].trainable)
        .collect();
    if trained.len() != 1 {
        return Err(Error::Invalid(format!(
            "{}: exactly one role must be trained, found {}",
            ctx.label,
            trained.len()
        )));
    }
    // Build every role; the trained one first in view order.
    let mut roles: Vec<Role> = Vec::new();
    let mut views: Vec<ViewSpec> = Vec::new();
    let mut order: Vec<usize> = trained.clone();
    order.extend((0..spec.roles.len()).filter(|i| !spec.roles[*i].trainable));
    for i in order {
        let rs = &spec.roles[i];
        let role_seed = ctx.seed.child(&rs.name);
        let built = match &rs.model {
            ModelSource::Config(entry) => {
                build_model(entry, &shape, ctx.device, role_seed.child("init"))?
            }
            ModelSource::Checkpoint(dir) => load_model(dir, &shape, ctx.device)?,
        };
        if let Some(init) = &rs.init {
            crate::checkpoint::load_checkpoint(init, &built.vs, "model.")?;
        }
        let view = if rs.trainable || rs.view == View::Own {
            views.push(ViewSpec {
                policy: build_policy(rs.augment.as_ref(), data, spec.epochs)?,
                seed: role_seed.child("augment"),
                mixes: rs.trainable,
            });
            views.len() - 1
        } else {
            0
        };
        let mut built = built;
        if !rs.trainable {
            built.vs.freeze();
        }
        roles.push(Role { built, view });
    }

    write_model_summary(&ctx.dir, spec, &roles)?;

    // Losses, sized by a probe forward pass; their parts live in the trained role's store.
    let probe = Tensor::zeros(
        [2, shape.in_channels, shape.height, shape.width],
        (Kind::Float, ctx.device),
    );
    let feature_shapes = |m: &dyn Model| -> Vec<(String, Vec<i64>)> {
        tch::no_grad(|| m.forward(&probe, false))
            .features
            .iter()
            .map(|(n, t)| (n.clone(), t.size()))
            .collect()
    };
    let loss_ctx = LossCtx {
        num_classes: shape.num_classes,
        train_size: data.train.len()
            + if spec.train_on_val_too {
                data.val.len()
            } else {
                0
            },
        device: ctx.device,
        student_features: feature_shapes(roles[0].built.model.as_ref()),
        teacher_features: roles
            .get(1)
            .map(|r| feature_shapes(r.built.model.as_ref()))
            .unwrap_or_default(),
    };
    let mut losses: Vec<(String, Box<dyn Loss>, WeightSchedule)> = Vec::new();
    for (i, ls) in spec.losses.iter().enumerate() {
        let name = ls.entry.type_name()?;
        let factory = registry::loss(&name).map_err(|e| {
            let at = ls.entry.get("type").unwrap_or_else(|| ls.entry.clone());
            at.error(e.to_string())
        })?;
        let loss = seeded(ctx.seed.child("loss").index(i as u64), || {
            factory(
                &ls.entry.without(&["weight"]),
                &loss_ctx,
                &(roles[0].built.vs.root() / format!("loss{i}")),
            )
        })?;
        if loss.needs_teacher() && roles.len() < 2 {
            return Err(ls
                .entry
                .error(format!(
                    "loss `{name}` needs a teacher, but this stage has none"
                ))
                .into());
        }
        let label = if spec
            .losses
            .iter()
            .filter(|l| l.entry.type_name().ok().as_deref() == Some(&name))
            .count()
            > 1
        {
            format!("{name}#{i}")
        } else {
            name
        };
        losses.push((label, loss, ls.weight.clone()));
    }
    if losses.is_empty() {
        return Err(Error::Invalid(format!("{}: no loss terms", ctx.label)));
    }

    if spec.channels_last {
        for r in &roles {
            crate::layout::vars_channels_last(&r.built.vs);
        }
    }
    // Optimizer and schedule over the trained role's variables (model and loss parts).
    let params = trainable_params(&roles[0].built.vs);
    let opt_name = spec.optimizer.type_name()?;
    let opt_factory =
        registry::optimizer(&opt_name).map_err(|e| spec.optimizer.error(e.to_string()))?;
    let mut opt = opt_factory(&spec.optimizer.without(&["lr"]), params)?;
    let sched_name = spec.lr_schedule.type_name()?;
    let sched_factory =
        registry::lr_schedule(&sched_name).map_err(|e| spec.lr_schedule.error(e.to_string()))?;
    let schedule = sched_factory(&spec.lr_schedule)?;

    // Data.
    let train_split = if spec.train_on_val_too && !data.val.is_empty() {
        Arc::new(concat_splits(&data.train, &data.val))
    } else {
        data.train.clone()
    };
    let loader = LoaderSpec {
        split: train_split.clone(),
        mean: data.mean.clone(),
        std: data.std.clone(),
        classes: data.num_classes(),
        batch_size: spec.batch_size,
        views,
        workers: spec.workers,
        prefetch: 2,
        shuffle_seed: ctx.seed.child("shuffle"),
        epochs: spec.epochs,
        channels_last: spec.channels_last,
    };
    let laid_out = |(x, y): (Tensor, Tensor)| {
        if spec.channels_last {
            (crate::layout::channels_last(&x), y)
        } else {
            (x, y)
        }
    };
    let test = spec
        .eval_test
        .then(|| laid_out(split_tensor(&data.test, &data.mean, &data.std, ctx.device)));
    let val = if !data.val.is_empty() && !spec.train_on_val_too {
        Some(laid_out(split_tensor(
            &data.val, &data.mean, &data.std, ctx.device,
        )))
    } else {
        None
    };

    // Resume.
    let state_dir = ctx.dir.join("state");
    let metrics_path = ctx.dir.join("metrics.jsonl");
    let warn = |m: &str| ctx.progress.log(&format!("warning: {}: {m}", ctx.label));
    let mut history: Vec<EpochMetrics> = Vec::new();
    let mut start_epoch = 0;
    if let Some(st) = state::restore(&state_dir, &roles[0].built.vs, opt.as_mut(), &warn)? {
        start_epoch = st.epoch;
        history = st.metrics;
        ctx.progress.log(&format!(
            "{}: resuming after epoch {start_epoch}/{}",
            ctx.label, spec.epochs
        ));
    }

    let is_ce: Vec<bool> = spec
        .losses
        .iter()
        .map(|l| l.entry.type_name().ok().as_deref() == Some("ce"))
        .collect();
    if spec.combine == Combine::ClipToCe && !is_ce.contains(&true) {
        return Err(Error::Invalid(format!(
            "{}: `combine: clip-to-ce` needs a `ce` term in the loss list",
            ctx.label
        )));
    }
    let train_params: Vec<Tensor> = roles[0].built.vs.trainable_variables();
    let steps_per_epoch = batches_per_epoch(train_split.len(), spec.batch_size);
    let end_epoch = spec.stop_after.unwrap_or(spec.epochs).min(spec.epochs);
    for epoch in start_epoch..end_epoch {
        let t0 = Instant::now();
        let mut sums: Vec<Tensor> = (0..=losses.len())
            .map(|_| Tensor::zeros([], (Kind::Double, ctx.device)))
            .collect();
        let mut weighted_sums: Vec<Tensor> = (0..losses.len())
            .map(|_| Tensor::zeros([], (Kind::Double, ctx.device)))
            .collect();
        let mut correct = Tensor::zeros([], (Kind::Int64, ctx.device));
        let mut seen = 0usize;
        // The epoch's second half, for the health check.
        let mut late_ce = Tensor::zeros([], (Kind::Double, ctx.device));
        let mut late_correct = Tensor::zeros([], (Kind::Int64, ctx.device));
        let (mut late_seen, mut late_steps) = (0usize, 0usize);
        let mut lr = spec.lr;
        ctx.progress.start(
            &format!("{} {}/{}", ctx.label, epoch + 1, spec.epochs),
            steps_per_epoch as u64,
        );
        let finished = loader::for_each_batch(
            &loader,
            epoch,
            ctx.device,
            ctx.interrupted,
            |step, batch| {
                let at = TrainProgress {
                    epoch,
                    step_in_epoch: step,
                    steps_per_epoch,
                    epochs: spec.epochs,
                };
                lr = schedule.lr(spec.lr, at);
                if epoch == start_epoch && step == 0 {
                    ctx.progress.log(&format!(
                        "{}: first training step {:.2}s after start",
                        ctx.label,
                        ctx.progress.since_start()
                    ));
                }
                let student = &roles[0];
                let s_out = student
                    .built
                    .model
                    .forward(&batch.views[student.view], true);
                let t_out: Option<ModelOutput> = roles.get(1).map(|t| {
                    tch::no_grad(|| t.built.model.forward(&batch.views[t.view], false)).detach()
                });
                let inputs = LossInputs {
                    student: &s_out,
                    teacher: t_out.as_ref(),
                    labels: &batch.labels,
                    soft_targets: batch.soft_targets.as_ref(),
                    indices: &batch.indices,
                    epoch,
                    step: epoch * steps_per_epoch + step,
                };
                let mut total = Tensor::zeros([], (Kind::Float, ctx.device));
                let mut ce_part = Tensor::zeros([], (Kind::Float, ctx.device));
                for (k, (label, loss, weight)) in losses.iter_mut().enumerate() {
                    let value = loss.compute(&inputs)?;
                    let v = value.double_value(&[]);
                    if !v.is_finite() || injected_nan(ctx.label, epoch + 1, step) {
                        return Err(Error::NonFinite {
                            stage: ctx.label.to_string(),
                            term: label.clone(),
                            epoch: epoch + 1,
                            step: step + 1,
                        });
                    }
                    let _ = sums[k]
                        .f_add_(&(value.detach().to_kind(Kind::Double) * batch.len as f64))?;
                    let weighted = value * weight.at(at.epochs_done());
                    let _ = weighted_sums[k]
                        .f_add_(&(weighted.detach().to_kind(Kind::Double) * batch.len as f64))?;
                    if is_ce[k] {
                        ce_part += &weighted;
                    }
                    total += weighted;
                }
                let _ = sums[losses.len()]
                    .f_add_(&(total.detach().to_kind(Kind::Double) * batch.len as f64))?;
                for p in &train_params {
                    p.shallow_clone().zero_grad();
                }
                match spec.combine {
                    Combine::Sum => total.backward(),
                    Combine::ClipToCe => {
                        backward_clip_to_ce(&train_params, &ce_part, &(&total - &ce_part), epoch)?
                    }
                }
                if let Some(max) = spec.grad_clip {
                    clip_grad_norm(&roles[0].built.vs, max);
                }
                opt.step(lr);
                let logits = s_out.logits.detach();
                let hits = logits
                    .argmax(-1, false)
                    .eq_tensor(&batch.labels)
                    .sum(Kind::Int64);
                let _ = correct.f_add_(&hits)?;
                seen += batch.len;
                if 2 * step >= steps_per_epoch {
                    let ce = logits.cross_entropy_for_logits(&batch.labels);
                    let _ = late_ce.f_add_(&(ce.to_kind(Kind::Double) * batch.len as f64))?;
                    let _ = late_correct.f_add_(&hits)?;
                    late_seen += batch.len;
                    late_steps += 1;
                }
                ctx.progress.tick(|| {
                    format!(
                        "loss {:.3} lr {lr:.4}",
                        sums[losses.len()].double_value(&[]) / seen.max(1) as f64
                    )
                });
                Ok(())
            },
        )?;
        ctx.progress.finish();
        if !finished {
            return Err(Error::Interrupted);
        }
        let train_seconds = t0.elapsed().as_secs_f64();
        let student = roles[0].built.model.as_ref();
        let evaluated = (epoch + 1) % spec.eval_every.max(1) == 0 || epoch + 1 == end_epoch;
        let (test_acc, test_loss) = match test.as_ref().filter(|_| evaluated) {
            Some((x, y)) => {
                let (a, l) = evaluate(student, x, y, spec.eval_batch_size);
                (Some(a), Some(l))
            }
            None => (None, None),
        };
        let val_acc = val
            .as_ref()
            .filter(|_| evaluated)
            .map(|(x, y)| evaluate(student, x, y, spec.eval_batch_size).0);
        let mut loss_means = BTreeMap::new();
        for (k, (label, _, _)) in losses.iter().enumerate() {
            loss_means.insert(label.clone(), sums[k].double_value(&[]) / seen as f64);
        }
        loss_means.insert(
            "total".to_string(),
            sums[losses.len()].double_value(&[]) / seen as f64,
        );
        let late_seen = late_seen.max(1) as f64;
        let now = health::EpochHealth {
            train_acc: late_correct.int64_value(&[]) as f64 / late_seen,
            train_ce: late_ce.double_value(&[]) / late_seen,
            steps: late_steps * 2,
        };
        let mut ce_history: Vec<f64> = history.iter().filter_map(|m| m.train_ce).collect();
        ce_history.push(now.train_ce);
        let stall = health::check(now, epoch + 1, &ce_history, shape.num_classes as usize);
        let m = EpochMetrics {
            epoch: epoch + 1,
            lr,
            loss: loss_means,
            train_acc: correct.int64_value(&[]) as f64 / seen as f64,
            test_acc,
            test_loss,
            val_acc,
            images_per_s: seen as f64 / train_seconds,
            seconds: t0.elapsed().as_secs_f64(),
            train_ce: Some(now.train_ce),
            stall,
        };
        ctx.progress.log(&format!(
            "{}: epoch {}/{} loss {:.4} train acc {:.4}{}{} ({:.0} img/s, {:.1}s)",
            ctx.label,
            m.epoch,
            spec.epochs,
            m.loss["total"],
            m.train_acc,
            m.test_acc
                .map(|v| format!(" test acc {v:.4}"))
                .unwrap_or_default(),
            m.val_acc
                .map(|v| format!(" val acc {v:.4}"))
                .unwrap_or_default(),
            m.images_per_s,
            m.seconds
        ));
        if epoch == 0 {
            log_loss_scales(ctx, &losses, &weighted_sums, seen);
        }
        if let Some(st) = &m.stall {
            warn(&st.message);
        }
        let stop = m
            .stall
            .clone()
            .filter(|_| spec.on_stall == health::OnStall::Stop);
        history.push(m);
        write_metrics(&metrics_path, &history)?;
        state::save(
            &state_dir,
            &roles[0].built.vs,
            opt.as_ref(),
            state::EpochState {
                epoch: epoch + 1,
                metrics: history.clone(),
                seed: ctx.seed.0,
                weights_sha256: String::new(),
                optimizer_sha256: String::new(),
            },
        )?;
        if let Some(st) = stop {
            return Err(Error::Stalled {
                stage: ctx.label.to_string(),
                message: st.message,
            });
        }
        if ctx.interrupted.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
    }
    write_metrics(&metrics_path, &history)?;
    if end_epoch < spec.epochs {
        return TrainOutcome::from_epochs(&history)
            .ok_or_else(|| Error::Invalid(format!("{}: zero epochs", ctx.label)));
    }
    let student = &roles[0].built;
    save_checkpoint(
        &ctx.dir.join("checkpoint"),
        &student.vs,
        "model.",
        &student.config,
        &student.spec,
    )?;
    TrainOutcome::from_epochs(&history)
        .ok_or_else(|| Error::Invalid(format!("{}: zero epochs", ctx.label)))
}

/// Logs the first epoch's mean of every loss term after its weight, so a term that
/// dominates (KD at T = 4 carries T^2 = 16) shows at a glance.
fn log_loss_scales(
    ctx: &TrainCtx<'_>,
    losses: &[(String, Box<dyn Loss>, WeightSchedule)],
    weighted_sums: &[Tensor],
    seen: usize,
) {
    let terms: Vec<String> = losses
        .iter()
        .zip(weighted_sums)
        .map(|((label, _, _), sum)| {
            format!("{label} {:.4}", sum.double_value(&[]) / seen.max(1) as f64)
        })
        .collect();
    ctx.progress.log(&format!(
        "{}: loss terms after their weights, epoch 1 mean: {}",
        ctx.label,
        terms.join(", ")
    ));
}

/// Writes `models.json`: each role's model entry and parameter count.
fn write_model_summary(dir: &Path, spec: &TrainSpec, roles: &[Role]) -> Result<()> {
    let mut names: Vec<&RoleSpec> = spec.roles.iter().filter(|r| r.trainable).collect();
    names.extend(spec.roles.iter().filter(|r| !r.trainable));
    let summary: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .zip(roles)
        .map(|(rs, role)| {
            let params: i64 = role
                .built
                .vs
                .variables()
                .iter()
                .filter(|(k, _)| k.starts_with("model."))
                .filter(|(_, t)| t.requires_grad() || !rs.trainable)
                .filter(|(k, _)| !k.contains("running_") && !k.ends_with("num_batches_tracked"))
                .map(|(_, t)| t.numel() as i64)
                .sum();
            (
                rs.name.clone(),
                serde_json::json!({ "model": role.built.config, "params": params }),
            )
        })
        .collect();
    crate::rundir::write_json(&dir.join("models.json"), &summary)
}

/// Accuracy and mean cross-entropy of `model` (eval mode, running BN statistics) on the
/// whole set, the last partial batch included.
pub fn evaluate(model: &dyn Model, x: &Tensor, y: &Tensor, batch: usize) -> (f64, f64) {
    let n = x.size()[0];
    let mut correct = 0i64;
    let mut loss = 0f64;
    tch::no_grad(|| {
        let mut start = 0;
        while start < n {
            let len = (batch as i64).min(n - start);
            let xs = x.narrow(0, start, len);
            let ys = y.narrow(0, start, len);
            let logits = model.forward(&xs, false).logits;
            correct += logits
                .argmax(-1, false)
                .eq_tensor(&ys)
                .sum(Kind::Int64)
                .int64_value(&[]);
            loss += logits.cross_entropy_for_logits(&ys).double_value(&[]) * len as f64;
            start += len;
        }
    });
    (correct as f64 / n.max(1) as f64, loss / n.max(1) as f64)
}

/// The trainable variables, sorted by name (a stable order for optimizer state). Weight
/// decay applies to all of them, as PyTorch's optimizers do by default.
fn trainable_params(vs: &tch::nn::VarStore) -> Vec<TrainableParam> {
    let mut v: Vec<TrainableParam> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .map(|(name, tensor)| TrainableParam {
            name,
            tensor,
            decay: true,
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// Sets each parameter's gradient to grad(CE) + clip(grad(D), ||grad(CE)|| sigmoid(epoch)),
/// through a surrogate whose gradient is exactly that combination.
fn backward_clip_to_ce(
    params: &[Tensor],
    ce: &Tensor,
    distill: &Tensor,
    epoch: usize,
) -> Result<()> {
    let g_ce = Tensor::f_run_backward(&[ce], params, true, false)?;
    let g_d = Tensor::f_run_backward(&[distill], params, false, false)?;
    let scale = 1.0 / (1.0 + (-(epoch as f64)).exp());
    let mut surrogate: Option<Tensor> = None;
    for ((p, c), d) in params.iter().zip(&g_ce).zip(&g_d) {
        let c = if c.defined() {
            c.shallow_clone()
        } else {
            p.zeros_like()
        };
        let d = if d.defined() {
            let max = c.norm().double_value(&[]) * scale;
            let norm = d.norm().double_value(&[]);
            if norm > max && norm > 0.0 {
                d * (max / norm)
            } else {
                d.shallow_clone()
            }
        } else {
            p.zeros_like()
        };
        let term = (p * (c + d).detach()).sum(Kind::Float);
        surrogate = Some(match surrogate {
            Some(s) => s + term,
            None => term,
        });
    }
    if let Some(s) = surrogate {
        s.backward();
    }
    Ok(())
}

fn clip_grad_norm(vs: &tch::nn::VarStore, max: f64) {
    let grads: Vec<Tensor> = vs
        .trainable_variables()
        .iter()
        .map(|p| p.grad())
        .filter(|g| g.defined())
        .collect();
    if grads.is_empty() {
        return;
    }
    let total: f64 = grads
        .iter()
        .map(|g| g.pow_tensor_scalar(2).sum(Kind::Double).double_value(&[]))
        .sum::<f64>()
        .sqrt();
    if total > max {
        let scale = max / (total + 1e-6);
        tch::no_grad(|| {
            for g in &grads {
                let mut g = g.shallow_clone();
                let _ = g.f_mul_scalar_(scale);
            }
        });
    }
}

fn concat_splits(
    a: &crate::plugin::data::DataSplit,
    b: &crate::plugin::data::DataSplit,
) -> crate::plugin::data::DataSplit {
    let mut images = a.images.clone();
    images.extend_from_slice(&b.images);
    let mut labels = a.labels.clone();
    labels.extend_from_slice(&b.labels);
    crate::plugin::data::DataSplit {
        images,
        labels,
        height: a.height,
        width: a.width,
        channels: a.channels,
    }
}

/// The checkpoint directory a finished training run leaves.
pub fn checkpoint_dir(stage_dir: &Path) -> PathBuf {
    stage_dir.join("checkpoint")
}

/// Fault injection for the reliability tests: `ROLEKD_FAULT_NAN=<label>@<epoch>` makes the
/// first step of that epoch of the run labelled `<label>` (a stage name, or
/// `<search>/m<k>` for a search member) see a non-finite loss.
fn injected_nan(label: &str, epoch: usize, step: usize) -> bool {
    static FAULT: std::sync::OnceLock<Option<(String, usize)>> = std::sync::OnceLock::new();
    let fault = FAULT.get_or_init(|| {
        let spec = std::env::var("ROLEKD_FAULT_NAN").ok()?;
        let (l, e) = spec.rsplit_once('@')?;
        Some((l.to_string(), e.parse().ok()?))
    });
    step == 0
        && fault
            .as_ref()
            .is_some_and(|(l, e)| l == label && *e == epoch)
}
