//! `import`: a stage kind that brings a PyTorch teacher into a pipeline, so a run starts
//! from the public teachers every published KD table uses (`teacher: ${t.checkpoint}`).
//!
//! ```yaml
//! resnet32x4:
//!   kind: import
//!   file: teachers/resnet32x4_vanilla.pth
//!   from: repdistiller          # pytorch (default) | repdistiller | torchvision
//!   model: {type: resnet32x4}
//! ```
//! The checkpoint is then evaluated on the test split, so the report shows what the
//! imported teacher scores on this data.

use crate::import::{import, Source};
use rolekd_core::artifact::ArtifactKind;
use rolekd_core::config::{Key, Params};
use rolekd_core::plugin::stage::{OutputDecl, Stage, StageCtx, StageResult};
use rolekd_core::{register_plugin, Error, Result};
use rolekd_engine::trainer::{evaluate_checkpoint, spec_of, EvalData};
use serde::Deserialize;
use std::path::PathBuf;

/// Every key of an `import` stage, in the order an "unknown field" error lists them.
const KEYS: &[Key] = &[
    Key::Field("file"),
    Key::Field("from"),
    // The rolekd model the weights are for (checked in `build`, read through `Params`).
    Key::Required("model"),
];

/// The typed fields of an `import` stage (see [`KEYS`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportParams {
    /// The `.pth`/`.pt`/`.safetensors` state_dict.
    file: PathBuf,
    /// Whose names the file uses.
    #[serde(default = "default_from")]
    from: String,
}

fn default_from() -> String {
    "pytorch".into()
}

struct ImportStage {
    p: ImportParams,
    source: Source,
    model: Params,
}

const SOURCES: [&str; 3] = ["pytorch", "repdistiller", "torchvision"];

fn build(params: &Params) -> Result<Box<dyn Stage>> {
    let p: ImportParams = params.parse_with_entries(KEYS)?;
    let source = match p.from.as_str() {
        "pytorch" => Source::Pytorch,
        "repdistiller" => Source::RepDistiller,
        "torchvision" => Source::Torchvision,
        other => {
            return Err(params
                .child_error(
                    "from",
                    format!(
                        "`{other}`: expected one of {}{}",
                        SOURCES.join(", "),
                        rolekd_core::config::did_you_mean(other, &SOURCES)
                    ),
                )
                .into())
        }
    };
    let model = params.get("model").expect("parsed above");
    let model_type = model.type_name()?;
    crate::names::Scheme::of_model(&model_type).map_err(|e| model.error(e.to_string()))?;
    Ok(Box::new(ImportStage { p, source, model }))
}

impl Stage for ImportStage {
    fn outputs(&self) -> Vec<OutputDecl> {
        vec![OutputDecl {
            name: "checkpoint".into(),
            kind: ArtifactKind::Checkpoint,
        }]
    }

    fn run(&self, ctx: &StageCtx<'_>) -> Result<StageResult> {
        let data = (ctx.data)()?;
        let want = spec_of(&data);
        let out = ctx.dir.join("checkpoint");
        let r = import(
            &self.p.file,
            self.source,
            &self.model,
            want.height,
            want.width,
            &out,
        )?;
        if r.spec != want {
            let _ = std::fs::remove_dir_all(&out);
            return Err(Error::Data(format!(
                "{}: the weights take {} channels and give {} classes; the dataset has {} and {}",
                self.p.file.display(),
                r.spec.in_channels,
                r.spec.num_classes,
                want.in_channels,
                want.num_classes
            )));
        }
        let test = EvalData::of(
            &data.test,
            &data.mean,
            &data.std,
            ctx.device,
            true,
            EvalData::WORKERS,
        );
        let ev = evaluate_checkpoint(&out, &want, &test, 256, ctx.device, ctx.precision)?;
        ctx.progress.log(&format!(
            "{}: imported {} tensors from {}; test accuracy {:.4}",
            ctx.name,
            r.tensors,
            self.p.file.display(),
            ev.acc
        ));
        Ok(StageResult::new(
            &[("checkpoint", "checkpoint")],
            ev.summary("test"),
        ))
    }
}

register_plugin!(
    Stage,
    "import",
    "A PyTorch state_dict (file, from: pytorch|repdistiller|torchvision, model) as a checkpoint, evaluated on the test split",
    build
);
