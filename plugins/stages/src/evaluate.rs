//! `evaluate`: a checkpoint's accuracy on the test set (or the validation split).

use rolekd_core::artifact::{ArtifactKind, CheckpointPath};
use rolekd_core::config::Params;
use rolekd_core::layout;
use rolekd_core::plugin::stage::{OutputDecl, Stage, StageCtx, StageResult};
use rolekd_core::rundir::write_json;
use rolekd_core::trainer::{evaluate, load_model, spec_of, split_tensor};
use rolekd_core::{register_plugin, Result};
use serde::Deserialize;
use std::collections::BTreeMap;

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
        let built = load_model(self.p.checkpoint.path(), &spec_of(&data), ctx.device)?;
        let split = if self.p.split == "val" {
            &data.val
        } else {
            &data.test
        };
        let (x, y) = split_tensor(split, &data.mean, &data.std, ctx.device);
        // Channels-last, as the trainer evaluates (faster convolutions, same accuracy).
        layout::vars_channels_last(&built.vs);
        let x = layout::channels_last(&x);
        let batch = self.p.batch_size.max(1);
        let (acc, loss) = evaluate(built.model.as_ref(), &x, &y, batch, ctx.precision);
        ctx.progress.log(&format!(
            "{}: {} accuracy {:.4} ({} images)",
            ctx.name,
            self.p.split,
            acc,
            split.len()
        ));
        let key = format!("{}_acc", self.p.split);
        let mut summary = BTreeMap::new();
        summary.insert(key.clone(), acc);
        summary.insert(format!("{}_loss", self.p.split), loss);
        if self.p.split == "test" {
            summary.insert("final_test_acc".into(), acc);
        }
        write_json(&ctx.dir.join("metrics.json"), &summary)?;
        let mut outputs = BTreeMap::new();
        outputs.insert("metrics".into(), "metrics.json".into());
        Ok(StageResult {
            outputs,
            summary,
            ..Default::default()
        })
    }
}

register_plugin!(
    Stage,
    "evaluate",
    "Evaluate a checkpoint on the test (or validation) split",
    build
);
