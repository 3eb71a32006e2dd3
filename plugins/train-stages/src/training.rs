//! `train` and `distill`: one params struct, one stage type; `distill` adds a teacher.

use rolekd_core::artifact::ArtifactKind;
use rolekd_core::config::Params;
use rolekd_core::plugin::stage::{OutputDecl, Stage, StageCtx, StageResult};
use rolekd_core::role::RoleRecord;
use rolekd_core::{register_plugin, Error, Result};
use rolekd_engine::trainer::{self, RoleSpec, TrainCtx, TrainSpec};

/// The YAML is read by the engine's builder ([`trainer::build_spec`]), which search trials
/// share.
struct TrainingStage {
    spec: TrainSpec,
    distill: bool,
    /// The stage's mapping, to locate a stop on stall.
    at: Params,
}

fn build(params: &Params, distill: bool) -> Result<Box<dyn Stage>> {
    let spec = trainer::build_spec(params, distill)?;
    Ok(Box::new(TrainingStage {
        spec,
        distill,
        at: params.clone(),
    }))
}

impl Stage for TrainingStage {
    fn roles(&self) -> Vec<RoleRecord> {
        self.spec.roles.iter().map(RoleSpec::record).collect()
    }

    /// `checkpoint` (the first trained role's) and `metrics`; with several trained roles,
    /// also `<role>_checkpoint` for each.
    fn outputs(&self) -> Vec<OutputDecl> {
        let mut out = vec![
            OutputDecl {
                name: "checkpoint".into(),
                kind: ArtifactKind::Checkpoint,
            },
            OutputDecl {
                name: "metrics".into(),
                kind: ArtifactKind::Metrics,
            },
        ];
        for (name, _) in self.role_checkpoints() {
            out.push(OutputDecl {
                name: name.into(),
                kind: ArtifactKind::Checkpoint,
            });
        }
        out
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
            precision: ctx.precision,
            save_mid_epoch: true,
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
        let history = trainer::read_metrics(&ctx.dir.join("metrics.jsonl"))?;
        let mut summary = trainer::TrainOutcome::summary_with_roles(&history);
        // Kept for readers of earlier results; `roles` says the same, typed.
        summary.insert("distilled".into(), if self.distill { 1.0 } else { 0.0 });
        let mut result = StageResult::new(
            &[("checkpoint", "checkpoint"), ("metrics", "metrics.jsonl")],
            summary,
        );
        result.outputs.extend(self.role_checkpoints());
        result.warnings = outcome.stalls.into_iter().map(|s| s.message).collect();
        result.roles = self.roles();
        Ok(result)
    }
}

impl TrainingStage {
    /// With several trained roles: each one's output name and checkpoint directory.
    fn role_checkpoints(&self) -> Vec<(String, String)> {
        let trained = self.spec.trained_roles();
        if trained.len() < 2 {
            return Vec::new();
        }
        trained
            .iter()
            .map(|r| {
                let dir = trainer::role_checkpoint_dir(std::path::Path::new(""), &self.spec, r);
                (format!("{r}_checkpoint"), dir.display().to_string())
            })
            .collect()
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
