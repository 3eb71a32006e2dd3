//! A training run's state, built once, and the phases that do not touch batches:
//! `build` and `resume` (the epoch's phases are in `epoch.rs`, one step in `step.rs`).

use super::eval::evaluate;
use super::eval_data::EvalData;
use super::loader::{batches_per_epoch, LoaderSpec};
use super::metrics::EpochMetrics;
use super::parts::{Role, Term, Trained};
use super::roles::spec_of;
use super::setup;
use super::spec::{TrainCtx, TrainSpec};
use super::state::{self, StatePart};
use super::sums::EpochSums;
use crate::autocast::CheckPrecision;
use crate::checkpoint::SpecRecord;
use rolekd_core::error::Result;
use rolekd_core::plugin::optim::LrSchedule;
use rolekd_core::precision::Precision;
use std::sync::Arc;
use tch::Tensor;

/// One training run, from built state to its final checkpoints.
pub(super) struct Run<'a> {
    pub spec: &'a TrainSpec,
    pub ctx: &'a TrainCtx<'a>,
    pub shape: SpecRecord,
    /// Trained roles first (in the spec's order), then frozen ones.
    pub roles: Vec<Role>,
    /// One per trained role, in [`Run::roles`] order.
    pub trained: Vec<Trained>,
    pub terms: Vec<Term>,
    pub schedule: Box<dyn LrSchedule>,
    pub loader: Arc<LoaderSpec>,
    pub steps_per_epoch: usize,
    pub val: Option<EvalData>,
    pub test: Option<EvalData>,
    pub history: Vec<EpochMetrics>,
    pub start_epoch: usize,
    /// Batches of `start_epoch` already trained before an interrupt (resumed mid-epoch).
    pub start_step: usize,
    /// The running sums of `start_epoch` when resumed mid-epoch.
    pub resumed_sums: Option<EpochSums>,
    pub end_epoch: usize,
    /// The spec's precision, or the pipeline's.
    pub precision: Precision,
    /// The teacher's (first frozen role's) test predictions, for agreement.
    pub teacher_test_predictions: Option<Tensor>,
    /// The stage's TensorBoard event file, once opened.
    pub events: Option<crate::tensorboard::EventFile>,
}

impl<'a> Run<'a> {
    /// Builds everything a run needs, checking the spec against the data on the way.
    pub fn build(spec: &'a TrainSpec, ctx: &'a TrainCtx<'a>) -> Result<Run<'a>> {
        let precision = spec.precision.unwrap_or(ctx.precision);
        precision.check(ctx.device)?;
        if precision == Precision::Bf16
            && ctx.device == tch::Device::Cpu
            && crate::autocast::cpu_has_native_bf16() == Some(false)
        {
            ctx.progress.log(&format!(
                "warning: {}: this CPU has no native bf16 (no avx512_bf16 or amx_bf16 flag): \
                 bf16 is emulated and trains many times slower than fp32 here",
                ctx.label
            ));
        }
        let shape = spec_of(&ctx.data);
        let (roles, views) = setup::build_roles(spec, ctx, &shape)?;
        setup::write_model_summary(&ctx.dir, &roles)?;
        let terms = setup::build_terms(spec, ctx, &shape, &roles)?;
        setup::check_every_frozen_role_is_read(&roles, &terms)?;
        let narrow = roles
            .iter()
            .any(|r| rolekd_core::layout::has_narrow_pointwise_conv(&r.built.vs));
        let channels_last = spec.channels_last && !narrow;
        if spec.channels_last && narrow {
            ctx.progress.log(&format!(
                "note: {}: a 1x1 convolution with fewer than {} channels: training in NCHW \
                 (oneDNN's channels-last kernels for it crash or hang on some CPUs)",
                ctx.label,
                rolekd_core::layout::MIN_POINTWISE_CHANNELS
            ));
        }
        if channels_last {
            for r in &roles {
                rolekd_core::layout::vars_channels_last(&r.built.vs);
            }
        }
        let trained = setup::build_optimizers(spec, &roles)?;
        let schedule = setup::build_schedule(spec)?;
        let (loader, val, test) = setup::build_data(spec, ctx, views, channels_last);
        let steps_per_epoch = batches_per_epoch(loader.split.len(), spec.batch_size);
        let teacher_test_predictions = match (&test, roles.iter().find(|r| !r.trainable)) {
            (Some(data), Some(teacher)) => Some(
                evaluate(
                    teacher.built.model.as_ref(),
                    data,
                    spec.eval_batch_size,
                    precision,
                )?
                .predictions,
            ),
            _ => None,
        };
        setup::check_combine(spec, ctx, &terms, trained.len())?;
        Ok(Run {
            spec,
            ctx,
            shape,
            roles,
            trained,
            terms,
            schedule,
            loader: Arc::new(loader),
            steps_per_epoch,
            val,
            test,
            history: Vec::new(),
            start_epoch: 0,
            start_step: 0,
            resumed_sums: None,
            end_epoch: spec.stop_after.unwrap_or(spec.epochs).min(spec.epochs),
            precision,
            teacher_test_predictions,
            events: None,
        })
    }

    /// Each trained role's part of the resume state: with one trained role its names as
    /// they are (the layout searches copy), with several each under `<role>/`.
    pub fn state_parts(&mut self) -> Vec<StatePart<'_>> {
        let several = self.trained.len() > 1;
        let roles = &self.roles;
        self.trained
            .iter_mut()
            .map(|t| StatePart {
                prefix: if several {
                    format!("{}/", roles[t.role].name)
                } else {
                    String::new()
                },
                vs: &roles[t.role].built.vs,
                opt: t.opt.as_mut(),
            })
            .collect()
    }

    /// Continues from the newest intact state (an epoch's end, or a step inside one),
    /// when there is one.
    pub fn resume(&mut self) -> Result<()> {
        let state_dir = self.ctx.dir.join("state");
        let ctx = self.ctx;
        let warn = |m: &str| ctx.progress.log(&format!("warning: {}: {m}", ctx.label));
        let mut parts = self.state_parts();
        let Some(restored) = state::restore(&state_dir, &mut parts, &warn)? else {
            return Ok(());
        };
        let st = restored.state;
        self.start_epoch = st.epoch;
        self.history = st.metrics;
        if st.step > 0 {
            self.start_step = st.step;
            self.resumed_sums = Some(EpochSums::from_tensors(
                &restored.sums,
                self.terms.len(),
                self.trained.len(),
                ctx.device,
            )?);
            ctx.progress.log(&format!(
                "{}: resuming inside epoch {}/{}, after step {}/{}",
                ctx.label,
                st.epoch + 1,
                self.spec.epochs,
                st.step,
                self.steps_per_epoch
            ));
        } else {
            ctx.progress.log(&format!(
                "{}: resuming after epoch {}/{}",
                ctx.label, self.start_epoch, self.spec.epochs
            ));
        }
        Ok(())
    }

    /// The first trained role (the stage's main model).
    pub fn main_role(&self) -> &Role {
        &self.roles[self.trained[0].role]
    }
}
