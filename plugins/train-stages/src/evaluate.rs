//! `evaluate`: a checkpoint's accuracy on the test set (or the validation split).

use rolekd_core::artifact::{ArtifactKind, CheckpointPath};
use rolekd_core::config::Params;
use rolekd_core::files::write_json;
use rolekd_core::plugin::stage::{OutputDecl, Stage, StageCtx, StageResult};
use rolekd_core::{register_plugin, Result};
use rolekd_engine::trainer::{evaluate_checkpoint, spec_of, EvalData};
use serde::Deserialize;

/// Fields of an `evaluate` stage.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvaluateParams {
    /// The checkpoint to evaluate (`${student.checkpoint}`).
    checkpoint: CheckpointPath,
    /// `test` (default) or `val`.
    #[serde(default = "default_split")]
    split: String,
    /// Evaluation batch size.
    #[serde(default = "default_batch")]
    batch_size: usize,
    /// A teacher checkpoint: the summary then gains the share of images on which the
    /// evaluated model predicts the teacher's class (`test_agreement`).
    #[serde(default)]
    teacher: Option<CheckpointPath>,
}

fn default_split() -> String {
    "test".into()
}
fn default_batch() -> usize {
    256
}

struct EvaluateStage {
    p: EvaluateParams,
}

fn build(params: &Params) -> Result<Box<dyn Stage>> {
    let p: EvaluateParams = params.parse()?;
    if p.split != "test" && p.split != "val" {
        return Err(params
            .child_error("split", format!("`{}`: expected `test` or `val`", p.split))
            .into());
    }
    Ok(Box::new(EvaluateStage { p }))
}

impl Stage for EvaluateStage {
    fn outputs(&self) -> Vec<OutputDecl> {
        vec![OutputDecl {
            name: "metrics".into(),
            kind: ArtifactKind::Metrics,
        }]
    }

    fn run(&self, ctx: &StageCtx<'_>) -> Result<StageResult> {
        let data = (ctx.data)()?;
        let spec = spec_of(&data);
        let split = if self.p.split == "val" {
            &data.val
        } else {
            &data.test
        };
        let images = EvalData::of(
            split,
            &data.mean,
            &data.std,
            ctx.device,
            true,
            EvalData::WORKERS,
        );
        let eval = |dir: &std::path::Path| {
            evaluate_checkpoint(
                dir,
                &spec,
                &images,
                self.p.batch_size,
                ctx.device,
                ctx.precision,
            )
        };
        let ev = eval(self.p.checkpoint.path())?;
        let agreement = match &self.p.teacher {
            Some(t) => Some(ev.agreement(&eval(t.path())?.predictions)),
            None => None,
        };
        ctx.progress.log(&format!(
            "{}: {} accuracy {:.4}{}, ECE {:.4}{} ({} images)",
            ctx.name,
            self.p.split,
            ev.acc,
            ev.top5
                .map(|v| format!(", top-5 {v:.4}"))
                .unwrap_or_default(),
            ev.ece,
            agreement
                .map(|v| format!(", agreement with the teacher {v:.4}"))
                .unwrap_or_default(),
            split.len()
        ));
        let mut summary = ev.summary(&self.p.split);
        if let Some(v) = agreement {
            summary.insert(format!("{}_agreement", self.p.split), v);
        }
        write_json(&ctx.dir.join("metrics.json"), &summary)?;
        Ok(StageResult::new(&[("metrics", "metrics.json")], summary))
    }
}

register_plugin!(
    Stage,
    "evaluate",
    "Evaluate a checkpoint on the test (or validation) split",
    build
);
