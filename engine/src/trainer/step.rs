//! One training step: every role's forward pass, the loss terms, the gradient, and one
//! optimizer step per trained role, added to the epoch's sums ([`super::sums`]).

use super::grad::{backward_clip_to_ce, clip_grad_norm};
use super::loader::Batch;
use super::parts::Teacher;
use super::run::Run;
use super::spec::Combine;
use super::sums::{zero, EpochSums};
use crate::autocast::Autocast;
use rolekd_core::error::{Error, Result};
use rolekd_core::plugin::loss::LossInputs;
use rolekd_core::plugin::model::ModelOutput;
use rolekd_core::plugin::optim::TrainProgress;
use rolekd_core::precision::{output_to_fp32, Precision};
use tch::{Kind, Tensor};

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
