//! One training step: every role's forward pass, the loss terms, the gradient, and one
//! optimizer step per trained role; and the sums an epoch keeps of them.

use super::grad::{backward_clip_to_ce, clip_grad_norm};
use super::loader::Batch;
use super::parts::Teacher;
use super::run::Run;
use super::spec::Combine;
use crate::autocast::Autocast;
use rolekd_core::error::{Error, Result};
use rolekd_core::plugin::loss::LossInputs;
use rolekd_core::plugin::model::ModelOutput;
use rolekd_core::plugin::optim::TrainProgress;
use rolekd_core::precision::{output_to_fp32, Precision};
use tch::{Device, Kind, Tensor};

/// A trained role's running figures over an epoch.
pub(super) struct RoleSums {
    pub correct: Tensor,
    /// Cross-entropy and hits over the epoch's second half, for the health check.
    pub late_ce: Tensor,
    pub late_correct: Tensor,
    pub late_seen: usize,
    pub late_steps: usize,
}

/// An epoch's running sums (on the device, read once at the end).
pub(super) struct EpochSums {
    /// Per term, unweighted, times batch size.
    pub terms: Vec<Tensor>,
    /// Per term, after its weight.
    pub weighted: Vec<Tensor>,
    pub total: Tensor,
    pub seen: usize,
    /// One per trained role.
    pub roles: Vec<RoleSums>,
    /// The first trained role's last learning rate.
    pub lr: f64,
    pub seconds: f64,
}

fn zero(kind: Kind, device: Device) -> Tensor {
    Tensor::zeros([], (kind, device))
}

impl EpochSums {
    pub fn new(terms: usize, trained: usize, device: Device) -> EpochSums {
        EpochSums {
            terms: (0..terms).map(|_| zero(Kind::Double, device)).collect(),
            weighted: (0..terms).map(|_| zero(Kind::Double, device)).collect(),
            total: zero(Kind::Double, device),
            seen: 0,
            roles: (0..trained)
                .map(|_| RoleSums {
                    correct: zero(Kind::Int64, device),
                    late_ce: zero(Kind::Double, device),
                    late_correct: zero(Kind::Int64, device),
                    late_seen: 0,
                    late_steps: 0,
                })
                .collect(),
            lr: 0.0,
            seconds: 0.0,
        }
    }

    /// The sums as named tensors, for a mid-epoch state: stored exactly, so an epoch
    /// resumed from them ends with the figures of an uninterrupted one.
    pub fn to_tensors(&self) -> Vec<(String, Tensor)> {
        let count = |n: usize| Tensor::scalar_tensor(n as f64, (Kind::Int64, Device::Cpu));
        let real = |x: f64| Tensor::scalar_tensor(x, (Kind::Double, Device::Cpu));
        let mut out = vec![
            ("seen".to_string(), count(self.seen)),
            ("lr".to_string(), real(self.lr)),
            ("seconds".to_string(), real(self.seconds)),
            ("total".to_string(), self.total.shallow_clone()),
        ];
        for (k, (t, w)) in self.terms.iter().zip(&self.weighted).enumerate() {
            out.push((format!("terms.{k}"), t.shallow_clone()));
            out.push((format!("weighted.{k}"), w.shallow_clone()));
        }
        for (i, r) in self.roles.iter().enumerate() {
            out.push((format!("roles.{i}.correct"), r.correct.shallow_clone()));
            out.push((format!("roles.{i}.late_ce"), r.late_ce.shallow_clone()));
            out.push((
                format!("roles.{i}.late_correct"),
                r.late_correct.shallow_clone(),
            ));
            out.push((format!("roles.{i}.late_seen"), count(r.late_seen)));
            out.push((format!("roles.{i}.late_steps"), count(r.late_steps)));
        }
        out
    }

    /// The sums [`EpochSums::to_tensors`] saved, for a run with `terms` loss terms and
    /// `trained` trained roles; an error names what is missing.
    pub fn from_tensors(
        saved: &[(String, Tensor)],
        terms: usize,
        trained: usize,
        device: Device,
    ) -> Result<EpochSums> {
        let get = |name: &str| -> Result<Tensor> {
            saved
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.to_device(device))
                .ok_or_else(|| Error::Data(format!("mid-epoch sums: no `{name}`")))
        };
        let count = |name: &str| -> Result<usize> { Ok(get(name)?.int64_value(&[]) as usize) };
        let mut sums = EpochSums::new(terms, trained, device);
        sums.seen = count("seen")?;
        sums.lr = get("lr")?.double_value(&[]);
        sums.seconds = get("seconds")?.double_value(&[]);
        sums.total = get("total")?;
        for k in 0..terms {
            sums.terms[k] = get(&format!("terms.{k}"))?;
            sums.weighted[k] = get(&format!("weighted.{k}"))?;
        }
        for (i, r) in sums.roles.iter_mut().enumerate() {
            r.correct = get(&format!("roles.{i}.correct"))?;
            r.late_ce = get(&format!("roles.{i}.late_ce"))?;
            r.late_correct = get(&format!("roles.{i}.late_correct"))?;
            r.late_seen = count(&format!("roles.{i}.late_seen"))?;
            r.late_steps = count(&format!("roles.{i}.late_steps"))?;
        }
        Ok(sums)
    }

    /// The mean total loss so far (for the progress line).
    pub fn mean_total(&self) -> f64 {
        self.total.double_value(&[]) / self.seen.max(1) as f64
    }
}

fn add(acc: &mut Tensor, value: &Tensor, times: usize) -> Result<()> {
    let _ = acc.f_add_(&(value.detach().to_kind(Kind::Double) * times as f64))?;
    Ok(())
}

impl Run<'_> {
    /// Every role's outputs: trained roles in training mode with their graph, frozen ones
    /// in eval mode without one; under bf16 autocast when the run asks for it, the outputs
    /// then brought back to fp32 for the losses.
    fn forward(&self, batch: &Batch) -> Vec<ModelOutput> {
        let outs: Vec<ModelOutput> = {
            let _autocast = Autocast::begin(self.precision, self.ctx.device);
            self.roles
                .iter()
                .map(|r| {
                    let x = &batch.views[r.view];
                    if r.trainable {
                        r.built.model.forward(x, true)
                    } else {
                        tch::no_grad(|| r.built.model.forward(x, false)).detach()
                    }
                })
                .collect()
        };
        match self.precision {
            Precision::Fp32 => outs,
            Precision::Bf16 => outs.into_iter().map(output_to_fp32).collect(),
        }
    }

    /// What each term learns from: a frozen role's outputs, a trained peer's detached, or
    /// the mean of several roles' logits.
    fn teacher_outputs(&self, outs: &[ModelOutput]) -> Vec<Option<ModelOutput>> {
        let as_teacher = |i: usize| {
            if self.roles[i].trainable {
                outs[i].detach()
            } else {
                outs[i].shallow_clone()
            }
        };
        self.terms
            .iter()
            .map(|t| match &t.teacher {
                Teacher::None => None,
                Teacher::One(i) => Some(as_teacher(*i)),
                Teacher::Mean(ks) => {
                    let sum = ks
                        .iter()
                        .map(|&k| as_teacher(k).logits)
                        .reduce(|a, b| a + b)
                        .expect("a mean of at least two roles");
                    Some(ModelOutput {
                        logits: sum / ks.len() as f64,
                        features: Vec::new(),
                    })
                }
            })
            .collect()
    }

    /// Trains one batch: forward, loss terms, gradient, each trained role's step.
    pub(super) fn step(
        &mut self,
        epoch: usize,
        step: usize,
        batch: &Batch,
        sums: &mut EpochSums,
    ) -> Result<()> {
        let at = TrainProgress {
            epoch,
            step_in_epoch: step,
            steps_per_epoch: self.steps_per_epoch,
            epochs: self.spec.epochs,
        };
        let outs = self.forward(batch);
        let teachers = self.teacher_outputs(&outs);
        let named: Vec<(&str, &ModelOutput)> = self
            .roles
            .iter()
            .zip(&outs)
            .map(|(r, o)| (r.name.as_str(), o))
            .collect();
        let device = self.ctx.device;
        let mut total = zero(Kind::Float, device);
        let mut ce_part = zero(Kind::Float, device);
        for (k, term) in self.terms.iter_mut().enumerate() {
            let inputs = LossInputs {
                student: &outs[term.student],
                teacher: teachers[k].as_ref(),
                roles: &named,
                labels: &batch.labels,
                soft_targets: batch.soft_targets.as_ref(),
                indices: &batch.indices,
                epoch,
                step: epoch * self.steps_per_epoch + step,
            };
            let value = term.loss.compute(&inputs)?;
            let v = value.double_value(&[]);
            if !v.is_finite() || injected_nan(self.ctx.label, epoch + 1, step) {
                return Err(Error::NonFinite {
                    stage: self.ctx.label.to_string(),
                    term: term.label.clone(),
                    epoch: epoch + 1,
                    step: step + 1,
                });
            }
            add(&mut sums.terms[k], &value, batch.len)?;
            let weighted = value * term.weight.at(at.epochs_done());
            add(&mut sums.weighted[k], &weighted, batch.len)?;
            if term.is_ce {
                ce_part += &weighted;
            }
            total += weighted;
        }
        add(&mut sums.total, &total, batch.len)?;
        self.descend(&total, &ce_part, epoch, at, sums)?;
        self.count_hits(&outs, batch, step, sums)?;
        Ok(())
    }

    /// The gradient of the step's loss, then each trained role's clipped optimizer step.
    fn descend(
        &mut self,
        total: &Tensor,
        ce_part: &Tensor,
        epoch: usize,
        at: TrainProgress,
        sums: &mut EpochSums,
    ) -> Result<()> {
        for t in &self.trained {
            for p in &t.params {
                p.shallow_clone().zero_grad();
            }
        }
        match self.spec.combine {
            Combine::Sum => total.backward(),
            Combine::ClipToCe => {
                let params = &self.trained[0].params;
                backward_clip_to_ce(params, ce_part, &(total - ce_part), epoch)?
            }
        }
        for (i, t) in self.trained.iter_mut().enumerate() {
            if let Some(max) = self.spec.grad_clip {
                clip_grad_norm(&self.roles[t.role].built.vs, max);
            }
            let lr = self.schedule.lr(t.lr, at);
            t.opt.step(lr);
            if i == 0 {
                sums.lr = lr;
            }
        }
        Ok(())
    }

    /// Each trained role's hits, and its cross-entropy over the epoch's second half.
    fn count_hits(
        &self,
        outs: &[ModelOutput],
        batch: &Batch,
        step: usize,
        sums: &mut EpochSums,
    ) -> Result<()> {
        let late = 2 * step >= self.steps_per_epoch;
        for (t, rs) in self.trained.iter().zip(sums.roles.iter_mut()) {
            let logits = outs[t.role].logits.detach();
            let hits = logits
                .argmax(-1, false)
                .eq_tensor(&batch.labels)
                .sum(Kind::Int64);
            let _ = rs.correct.f_add_(&hits)?;
            if late {
                let ce = logits.cross_entropy_for_logits(&batch.labels);
                add(&mut rs.late_ce, &ce, batch.len)?;
                let _ = rs.late_correct.f_add_(&hits)?;
                rs.late_seen += batch.len;
                rs.late_steps += 1;
            }
        }
        sums.seen += batch.len;
        Ok(())
    }
}

/// Fault injection for the reliability tests: `ROLEKD_FAULT_NAN=<label>@<epoch>` makes the
/// first step of that epoch of the run labelled `<label>` (a stage name, or
/// `<search>/m<k>` for a search member) see a non-finite loss.
pub(super) fn injected_nan(label: &str, epoch: usize, step: usize) -> bool {
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
