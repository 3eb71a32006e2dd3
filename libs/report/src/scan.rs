//! Reading a run directory back: the resolved pipeline for stage order and seeds, each
//! stage's `result.json`, `metrics.jsonl` and `config.yaml`.

use rolekd_core::plugin::stage::StageResult;
use rolekd_core::{Error, Result};
use rolekd_engine::trainer::{read_metrics, EpochMetrics};
use serde_yaml_ng::Value;
use std::path::{Path, PathBuf};

/// One stage of one seed.
#[derive(Clone, Debug)]
pub struct StageScan {
    pub name: String,
    pub kind: String,
    pub dir: PathBuf,
    /// None while the stage has not finished.
    pub result: Option<StageResult>,
    /// Per-epoch metrics of a training stage (empty otherwise or before its first epoch).
    pub metrics: Vec<EpochMetrics>,
    /// The stage's params as it ran (references replaced by paths).
    pub config: Value,
}

impl StageScan {
    pub fn summary(&self, key: &str) -> Option<f64> {
        self.result.as_ref()?.summary.get(key).copied()
    }

    /// Final test accuracy (train, distill: last epoch; evaluate: its figure).
    pub fn test_acc(&self) -> Option<f64> {
        self.summary("final_test_acc")
            .or_else(|| self.summary("test_acc"))
    }

    /// A test figure beyond top-1 (`top5`, `ece`, `agreement`): a training stage's last
    /// epoch, or an evaluate stage's.
    pub fn test_extra(&self, name: &str) -> Option<f64> {
        self.summary(&format!("final_test_{name}"))
            .or_else(|| self.summary(&format!("test_{name}")))
    }

    /// The names of the roles the stage trained (several for peers learning together).
    pub fn trained_roles(&self) -> Vec<String> {
        self.result
            .iter()
            .flat_map(|r| &r.roles)
            .filter(|r| r.trained)
            .map(|r| r.name.clone())
            .collect()
    }

    /// An output's absolute path, once the stage has finished.
    pub fn output(&self, name: &str) -> Option<PathBuf> {
        let rel = self.result.as_ref()?.outputs.get(name)?;
        Some(self.dir.join(rel))
    }

    /// The `type` of a nested plugin entry, e.g. `strategy` or `augment`.
    pub fn plugin_type(&self, field: &str) -> Option<String> {
        let v = self.config.get(field)?;
        v.get("type")?.as_str().map(str::to_string)
    }
}

/// A run directory: one entry per seed (a single `None` for a run without `seeds:`).
#[derive(Clone, Debug)]
pub struct RunScan {
    pub name: String,
    pub run_dir: PathBuf,
    pub seeds: Vec<(Option<u64>, Vec<StageScan>)>,
}

impl RunScan {
    /// Stage names in pipeline order.
    pub fn stage_names(&self) -> Vec<&str> {
        self.seeds
            .first()
            .map(|(_, st)| st.iter().map(|s| s.name.as_str()).collect())
            .unwrap_or_default()
    }

    /// Stage `i` of every seed.
    pub fn across_seeds(&self, i: usize) -> impl Iterator<Item = &StageScan> {
        self.seeds.iter().filter_map(move |(_, st)| st.get(i))
    }

    /// Whether some stage (or search trial) has a frozen role loaded from stage `name`'s
    /// checkpoint: read from the stages' recorded roles, or, for results written before
    /// stages recorded them, from their `teacher:` fields.
    pub fn is_teacher(&self, name: &str) -> bool {
        let Some((_, stages)) = self.seeds.first() else {
            return false;
        };
        let names_stage = |p: Option<&str>| {
            p.is_some_and(|p| Path::new(p).components().any(|c| c.as_os_str() == name))
        };
        stages
            .iter()
            .any(|s| match s.result.as_ref().map(|r| &r.roles) {
                Some(roles) if !roles.is_empty() => roles
                    .iter()
                    .any(|r| !r.trained && names_stage(r.from.as_deref())),
                _ => {
                    names_stage(s.config.get("teacher").and_then(Value::as_str))
                        || names_stage(
                            s.config
                                .get("trial")
                                .and_then(|t| t.get("teacher"))
                                .and_then(Value::as_str),
                        )
                }
            })
    }
}

/// Reads `run_dir` (the directory `rolekd-run` wrote, with its `pipeline.yaml`).
pub fn scan_run(run_dir: &Path) -> Result<RunScan> {
    let resolved = run_dir.join("pipeline.yaml");
    let text = std::fs::read_to_string(&resolved).map_err(|e| {
        Error::Invalid(format!(
            "{}: not a run directory (cannot read its pipeline.yaml: {e})",
            run_dir.display()
        ))
    })?;
    let doc: Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| Error::Data(format!("{}: {e}", resolved.display())))?;
    let name = doc
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("pipeline")
        .to_string();
    let stage_names: Vec<String> = doc
        .get("stages")
        .and_then(Value::as_mapping)
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut seed_list: Vec<u64> = doc
        .get("seeds")
        .and_then(Value::as_sequence)
        .map(|s| s.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    if !seed_list.is_empty() {
        // A run directory filled by several invocations (`--set 'seeds=[3]'`) keeps the
        // last one's pipeline.yaml: its seed folders say which seeds it holds ...
        // ... and a listed seed without a folder there is not part of it (an exported
        // subset of seeds), unless no seed has started yet.
        let present = seed_dirs(run_dir);
        if !present.is_empty() {
            seed_list = present;
        }
        seed_list.sort_unstable();
        seed_list.dedup();
    }
    let seeds = if seed_list.is_empty() {
        vec![(None, scan_stages(run_dir, &stage_names)?)]
    } else {
        seed_list
            .iter()
            .map(|&s| {
                let dir = rolekd_engine::runtime::seed_dir(run_dir, s);
                Ok((Some(s), scan_stages(&dir, &stage_names)?))
            })
            .collect::<Result<_>>()?
    };
    Ok(RunScan {
        name,
        run_dir: run_dir.to_path_buf(),
        seeds,
    })
}

/// The seeds of the `seed-N` folders in `run_dir`.
fn seed_dirs(run_dir: &Path) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("seed-")?.parse().ok())
        .collect()
}

fn scan_stages(dir: &Path, names: &[String]) -> Result<Vec<StageScan>> {
    names.iter().map(|n| scan_stage(&dir.join(n), n)).collect()
}

fn scan_stage(dir: &Path, name: &str) -> Result<StageScan> {
    let record: Option<serde_json::Value> =
        read_optional(&dir.join("result.json"))?.or(read_optional(&dir.join("stage.json"))?);
    let kind = record
        .as_ref()
        .and_then(|r| r.get("kind"))
        .and_then(|k| k.as_str())
        .unwrap_or("-")
        .to_string();
    let result = match record.as_ref().and_then(|r| r.get("result")) {
        Some(v) if !v.is_null() => Some(
            serde_json::from_value::<StageResult>(v.clone())
                .map_err(|e| Error::Data(format!("{}/result.json: {e}", dir.display())))?,
        ),
        _ => None,
    };
    let metrics_path = dir.join("metrics.jsonl");
    let metrics = if metrics_path.is_file() {
        read_metrics(&metrics_path)?
    } else {
        Vec::new()
    };
    let config_path = dir.join("config.yaml");
    let config = match std::fs::read_to_string(&config_path) {
        Ok(t) => serde_yaml_ng::from_str(&t)
            .map_err(|e| Error::Data(format!("{}: {e}", config_path.display())))?,
        Err(_) => Value::Null,
    };
    Ok(StageScan {
        name: name.to_string(),
        kind,
        dir: dir.to_path_buf(),
        result,
        metrics,
        config,
    })
}

fn read_optional(path: &Path) -> Result<Option<serde_json::Value>> {
    match std::fs::read_to_string(path) {
        Ok(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|e| Error::Data(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}
