//! Model checkpoints: a directory with `model.json` (what to build: the model's YAML params
//! and the problem shape) and `weights.safetensors`, whose checksum `model.json` records.
//! A later stage rebuilds the model from the checkpoint alone (`teacher: ${t.checkpoint}`).

use rolekd_core::error::{Error, Result};
use rolekd_core::files::{file_sha256, read_json, tmp_path, write_json};
use rolekd_core::plugin::model::{Model, ModelSpec, QuantSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{nn::VarStore, Tensor};

pub const CHECKPOINT_FORMAT: &str = "rolekd-checkpoint/1";
pub const WEIGHTS_FILE: &str = "weights.safetensors";
pub const META_FILE: &str = "model.json";

/// The problem shape a model was built for.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SpecRecord {
    pub in_channels: i64,
    pub num_classes: i64,
    pub height: i64,
    pub width: i64,
}

impl SpecRecord {
    pub fn from_spec(s: &ModelSpec) -> Self {
        SpecRecord {
            in_channels: s.in_channels,
            num_classes: s.num_classes,
            height: s.height,
            width: s.width,
        }
    }

    pub fn to_spec(&self, quant: QuantSpec) -> ModelSpec {
        ModelSpec {
            in_channels: self.in_channels,
            num_classes: self.num_classes,
            height: self.height,
            width: self.width,
            quant,
        }
    }
}

/// `model.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub format: String,
    /// The model entry as written in YAML (`type`, params, `quant`).
    pub model: serde_json::Value,
    /// [`Model::revision`] of the model that wrote the weights (1 in files from before the
    /// field).
    #[serde(default = "first_revision")]
    pub model_revision: u32,
    pub spec: SpecRecord,
    pub weights_sha256: String,
}

fn first_revision() -> u32 {
    1
}

/// Refuses the checkpoint in `dir` when its model computed another function at the time it
/// was written (`meta.model_revision` is not `model`'s): its weights would load without
/// complaint and give other outputs.
pub fn check_revision(dir: &Path, meta: &CheckpointMeta, model: &dyn Model) -> Result<()> {
    let now = model.revision();
    if meta.model_revision == now {
        return Ok(());
    }
    let kind = meta
        .model
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or("model");
    Err(Error::Data(format!(
        "{}: written by a rolekd whose `{kind}` computed another function (model revision {}, \
         now {now}; docs/pytorch.md says what changed): these weights would give other \
         outputs; retrain it, or import the original PyTorch weights again",
        dir.display(),
        meta.model_revision
    )))
}

/// Saves the tensors whose names start with `prefix` (e.g. `model.`) from `vs`, with the
/// prefix stripped, plus `model.json` (with the model's [`Model::revision`]).
pub fn save_checkpoint(
    dir: &Path,
    vs: &VarStore,
    prefix: &str,
    model: &serde_json::Value,
    model_revision: u32,
    spec: &SpecRecord,
) -> Result<()> {
    let tensors = named_tensors(vs, prefix);
    let weights = dir.join(WEIGHTS_FILE);
    write_tensors(&weights, &tensors)?;
    let meta = CheckpointMeta {
        format: CHECKPOINT_FORMAT.into(),
        model: model.clone(),
        model_revision,
        spec: spec.clone(),
        weights_sha256: file_sha256(&weights)?,
    };
    write_json(&dir.join(META_FILE), &meta)
}

/// Reads and checks `model.json`.
pub fn read_meta(dir: &Path) -> Result<CheckpointMeta> {
    let path = dir.join(META_FILE);
    let meta: CheckpointMeta = read_json(&path)?.ok_or_else(|| {
        Error::Data(format!(
            "{}: not a rolekd checkpoint (no {META_FILE})",
            dir.display()
        ))
    })?;
    if meta.format != CHECKPOINT_FORMAT {
        return Err(Error::Data(format!(
            "{}: format `{}`, expected `{CHECKPOINT_FORMAT}`",
            path.display(),
            meta.format
        )));
    }
    Ok(meta)
}

/// Loads a checkpoint's weights into the variables of `vs` under `prefix`, after verifying
/// the checksum. Every variable must be present with the same shape (a checkpoint of
/// another architecture is refused, naming the first mismatch).
pub fn load_checkpoint(dir: &Path, vs: &VarStore, prefix: &str) -> Result<CheckpointMeta> {
    let meta = read_meta(dir)?;
    let weights = dir.join(WEIGHTS_FILE);
    let sum = file_sha256(&weights)?;
    if sum != meta.weights_sha256 {
        return Err(Error::Data(format!(
            "{}: checksum mismatch (file is corrupt or truncated)",
            weights.display()
        )));
    }
    let saved: BTreeMap<String, Tensor> = read_tensors(&weights)?.into_iter().collect();
    copy_into(vs, prefix, &saved, &weights.display().to_string())?;
    Ok(meta)
}

/// Copies `saved` into the variables of `vs` under `prefix`.
pub fn copy_into(
    vs: &VarStore,
    prefix: &str,
    saved: &BTreeMap<String, Tensor>,
    origin: &str,
) -> Result<()> {
    let vars = vs.variables();
    let mut names: Vec<&String> = vars.keys().filter(|k| k.starts_with(prefix)).collect();
    names.sort();
    tch::no_grad(|| -> Result<()> {
        for name in names {
            let short = &name[prefix.len()..];
            let dst = &vars[name];
            let src = saved.get(short).ok_or_else(|| {
                Error::Data(format!(
                    "{origin}: no tensor `{short}`: the checkpoint is of another architecture"
                ))
            })?;
            if src.size() != dst.size() {
                return Err(Error::Data(format!(
                    "{origin}: `{short}` has shape {:?}, the model expects {:?}: the checkpoint is of another architecture",
                    src.size(),
                    dst.size()
                )));
            }
            let mut d = dst.shallow_clone();
            d.f_copy_(src)?;
        }
        Ok(())
    })
}

/// The variables of `vs` under `prefix`, prefix stripped, sorted by name.
pub fn named_tensors(vs: &VarStore, prefix: &str) -> Vec<(String, Tensor)> {
    let mut out: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|s| (s.to_string(), v)))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Writes named tensors as safetensors, atomically.
pub fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = tmp_path(path);
    let cpu: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(n, t)| {
            (
                n.clone(),
                t.detach().to_device(tch::Device::Cpu).contiguous(),
            )
        })
        .collect();
    let refs: Vec<(&str, &Tensor)> = cpu.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let written = Tensor::write_safetensors(&refs, &tmp)
        .map_err(|e| Error::write_failed_text(path, e.to_string()))
        .and_then(|()| {
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .and_then(|()| std::fs::rename(&tmp, path))
                .map_err(|e| Error::io(path, e))
        });
    if written.is_err() {
        // Half a file under its temporary name is never read, but need not stay.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Reads a safetensors file, with a clear error for a damaged one.
pub fn read_tensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    Tensor::read_safetensors(path)
        .map_err(|e| Error::Data(format!("{}: cannot read tensors: {e}", path.display())))
}
