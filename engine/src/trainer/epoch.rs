//! An epoch's phases: `run_epoch` (every batch), `evaluate` (each trained role's figures
//! and health), `record` (log, metrics, resume state, stall and interrupt stops), and the
//! run's `finish` (final checkpoints).

use super::eval::evaluate;
use super::health::{self, EpochHealth, OnStall};
use super::loader::{self, Pass};
use super::metrics::{write_metrics, EpochMetrics, RoleMetrics, TestExtras, TrainOutcome};
use super::parts::Role;
use super::run::Run;
use super::spec::role_checkpoint_dir;
use super::state::{self, EpochState};
use super::sums::{EpochSums, RoleSums};
use crate::checkpoint::save_checkpoint;
use rolekd_core::error::{Error, Result};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Run<'_> {
    /// Trains every batch of `epoch` (those left of it when resumed mid-epoch). An interrupt
    /// saves the state reached inside the epoch, when the run keeps one.
    pub(super) fn run_epoch(&mut self, epoch: usize) -> Result<EpochSums> {
        let t0 = Instant::now();
        let ctx = self.ctx;
        let (first, resumed) = match epoch == self.start_epoch {
            true => (self.start_step, self.resumed_sums.take()),
            false => (0, None),
        };
        let mut sums = resumed
            .unwrap_or_else(|| EpochSums::new(self.terms.len(), self.trained.len(), ctx.device));
        let seconds_before = sums.seconds;
        ctx.progress.start(
            &format!("{} {}/{}", ctx.label, epoch + 1, self.spec.epochs),
            (self.steps_per_epoch - first.min(self.steps_per_epoch)) as u64,
        );
        let first_step = epoch == self.start_epoch;
        let loader = self.loader.clone();
        let pass = loader::for_each_batch(
            &loader,
            epoch,
            first,
            ctx.device,
            ctx.interrupted,
            |step, batch| {
                if first_step && step == first {
                    ctx.progress.log(&format!(
                        "{}: first training step {:.2}s after start",
                        ctx.label,
                        ctx.progress.since_start()
                    ));
                }
                if batch.len == 0 {
                    return Ok(()); // every image of it unreadable and skipped
                }
                self.step(epoch, step, &batch, &mut sums)?;
                ctx.progress
                    .tick(|| format!("loss {:.3} lr {:.4}", sums.mean_total(), sums.lr));
                Ok(())
            },
        )?;
        ctx.progress.finish();
        sums.seconds = seconds_before + t0.elapsed().as_secs_f64();
        if let Pass::Stopped { done } = pass {
            if ctx.save_mid_epoch && done > first {
                self.save_mid_epoch(epoch, done, &sums)?;
            }
            return Err(Error::Interrupted);
        }
        if epoch == 0 {
            self.log_loss_scales(&sums);
        }
        Ok(sums)
    }

    /// What a resume state records besides tensors, `step` batches after `epoch` epochs
    /// (the checksums are filled in when it is saved).
    fn resume_state(&self, epoch: usize, step: usize) -> EpochState {
        EpochState {
            epoch,
            metrics: self.history.clone(),
            seed: self.ctx.seed.0,
            weights_sha256: String::new(),
            optimizer_sha256: String::new(),
            step,
            sums_sha256: String::new(),
        }
    }

    /// The state `done` batches into `epoch`, with the epoch's running sums.
    fn save_mid_epoch(&mut self, epoch: usize, done: usize, sums: &EpochSums) -> Result<()> {
        let ctx = self.ctx;
        let state = self.resume_state(epoch, done);
        let dir = ctx.dir.join("state");
        state::save_mid_epoch(&dir, &self.state_parts(), state, &sums.to_tensors())?;
        ctx.progress.log(&format!(
            "{}: interrupted inside epoch {}/{} after step {}/{}: state saved, a rerun resumes there",
            ctx.label,
            epoch + 1,
            self.spec.epochs,
            done,
            self.steps_per_epoch
        ));
        Ok(())
    }

    /// One trained role's figures: accuracies (validation and test on evaluated epochs)
    /// and the health verdict on its training cross-entropy.
    fn role_metrics(
        &self,
        role: &Role,
        sums: &RoleSums,
        seen: usize,
        epoch: usize,
    ) -> Result<RoleMetrics> {
        let evaluated =
            (epoch + 1).is_multiple_of(self.spec.eval_every.max(1)) || epoch + 1 == self.end_epoch;
        let model = role.built.model.as_ref();
        let batch = self.spec.eval_batch_size;
        let test = self
            .test
            .as_ref()
            .filter(|_| evaluated)
            .map(|data| evaluate(model, data, batch, self.precision))
            .transpose()?;
        let val_acc = self
            .val
            .as_ref()
            .filter(|_| evaluated)
            .map(|data| evaluate(model, data, batch, self.precision).map(|e| e.acc))
            .transpose()?;
        let late_seen = sums.late_seen.max(1) as f64;
        let now = EpochHealth {
            train_acc: sums.late_correct.int64_value(&[]) as f64 / late_seen,
            train_ce: sums.late_ce.double_value(&[]) / late_seen,
            steps: sums.late_steps * 2,
        };
        let several = self.trained.len() > 1;
        let mut ce_history: Vec<f64> = self
            .history
            .iter()
            .filter_map(|m| match several {
                true => m.roles.get(&role.name).and_then(|r| r.train_ce),
                false => m.train_ce,
            })
            .collect();
        ce_history.push(now.train_ce);
        let classes = self.shape.num_classes as usize;
        let stall = health::check(now, epoch + 1, &ce_history, classes).map(|mut s| {
            if several {
                s.message = format!("role `{}`: {}", role.name, s.message);
            }
            s
        });
        Ok(RoleMetrics {
            train_acc: sums.correct.int64_value(&[]) as f64 / seen.max(1) as f64,
            test_acc: test.as_ref().map(|t| t.acc),
            test_loss: test.as_ref().map(|t| t.loss),
            val_acc,
            test_extras: test
                .as_ref()
                .map(|t| TestExtras {
                    test_top5: t.top5,
                    test_ece: Some(t.ece),
                    test_agreement: self
                        .teacher_test_predictions
                        .as_ref()
                        .map(|p| t.agreement(p)),
                })
                .unwrap_or_default(),
            train_ce: Some(now.train_ce),
            stall,
        })
    }

    /// The epoch's metrics: the first trained role's in the main fields, every trained
    /// role's under `roles` when there are several.
    pub(super) fn evaluate(&self, epoch: usize, sums: EpochSums) -> Result<EpochMetrics> {
        let per_role: Vec<(String, RoleMetrics)> = self
            .trained
            .iter()
            .zip(&sums.roles)
            .map(|(t, rs)| {
                let role = &self.roles[t.role];
                Ok((
                    role.name.clone(),
                    self.role_metrics(role, rs, sums.seen, epoch)?,
                ))
            })
            .collect::<Result<_>>()?;
        let seen = sums.seen.max(1) as f64;
        let mut loss: BTreeMap<String, f64> = self
            .terms
            .iter()
            .zip(&sums.terms)
            .map(|(t, s)| (t.label.clone(), s.double_value(&[]) / seen))
            .collect();
        loss.insert("total".into(), sums.total.double_value(&[]) / seen);
        let main = per_role[0].1.clone();
        let stall = per_role.iter().find_map(|(_, r)| r.stall.clone());
        Ok(EpochMetrics {
            epoch: epoch + 1,
            lr: sums.lr,
            loss,
            train_acc: main.train_acc,
            test_acc: main.test_acc,
            test_loss: main.test_loss,
            val_acc: main.val_acc,
            test_extras: main.test_extras.clone(),
            wall_time: Some(crate::tensorboard::unix_now()),
            images_per_s: sums.seen as f64 / sums.seconds.max(1e-9),
            seconds: sums.seconds,
            train_ce: main.train_ce,
            stall,
            roles: if per_role.len() > 1 {
                per_role.into_iter().collect()
            } else {
                BTreeMap::new()
            },
        })
    }

    /// Logs the epoch, appends it to `metrics.jsonl`, saves the resume state, and stops
    /// on a stall (`on_stall: stop`) or an interrupt.
    pub(super) fn record(&mut self, m: EpochMetrics) -> Result<()> {
        let ctx = self.ctx;
        self.log_epoch(&m);
        if let Some(st) = &m.stall {
            ctx.progress
                .log(&format!("warning: {}: {}", ctx.label, st.message));
        }
        let stop = m
            .stall
            .clone()
            .filter(|_| self.spec.on_stall == OnStall::Stop);
        let epoch = m.epoch;
        self.append_events(&m)?;
        self.history.push(m);
        write_metrics(&self.ctx.dir.join("metrics.jsonl"), &self.history)?;
        let state = self.resume_state(epoch, 0);
        let dir = ctx.dir.join("state");
        state::save(&dir, &self.state_parts(), state)?;
        if let Some(st) = stop {
            return Err(Error::Stalled {
                stage: ctx.label.to_string(),
                message: st.message,
            });
        }
        if ctx.interrupted.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        Ok(())
    }

    fn log_epoch(&self, m: &EpochMetrics) {
        let ctx = self.ctx;
        let acc = |train: f64, test: Option<f64>, val: Option<f64>| {
            format!(
                "train acc {train:.4}{}{}",
                test.map(|v| format!(" test acc {v:.4}"))
                    .unwrap_or_default(),
                val.map(|v| format!(" val acc {v:.4}")).unwrap_or_default()
            )
        };
        ctx.progress.log(&format!(
            "{}: epoch {}/{} loss {:.4} {} ({:.0} img/s, {:.1}s)",
            ctx.label,
            m.epoch,
            self.spec.epochs,
            m.loss["total"],
            acc(m.train_acc, m.test_acc, m.val_acc),
            m.images_per_s,
            m.seconds
        ));
        for (name, r) in m.roles.iter().filter(|(n, _)| **n != self.main_role().name) {
            ctx.progress.log(&format!(
                "{}: epoch {}/{} role {name}: {}",
                ctx.label,
                m.epoch,
                self.spec.epochs,
                acc(r.train_acc, r.test_acc, r.val_acc)
            ));
        }
    }

    /// Logs the first epoch's mean of every loss term after its weight, so a term that
    /// dominates (KD at T = 4 carries T^2 = 16) shows at a glance.
    fn log_loss_scales(&self, sums: &EpochSums) {
        let seen = sums.seen.max(1) as f64;
        let terms: Vec<String> = self
            .terms
            .iter()
            .zip(&sums.weighted)
            .map(|(t, w)| format!("{} {:.4}", t.label, w.double_value(&[]) / seen))
            .collect();
        self.ctx.progress.log(&format!(
            "{}: loss terms after their weights, epoch 1 mean: {}",
            self.ctx.label,
            terms.join(", ")
        ));
    }

    /// Writes the metrics and, when the run trained to its last epoch, each trained role's
    /// final checkpoint.
    pub(super) fn finish(self) -> Result<TrainOutcome> {
        let ctx = self.ctx;
        write_metrics(&ctx.dir.join("metrics.jsonl"), &self.history)?;
        if self.end_epoch == self.spec.epochs {
            for t in &self.trained {
                let role = &self.roles[t.role];
                save_checkpoint(
                    &role_checkpoint_dir(&ctx.dir, self.spec, &role.name),
                    &role.built.vs,
                    "model.",
                    &role.built.config,
                    role.built.model.revision(),
                    &role.built.spec,
                )?;
            }
        }
        TrainOutcome::from_epochs(&self.history)
            .ok_or_else(|| Error::Invalid(format!("{}: zero epochs", ctx.label)))
    }
}
