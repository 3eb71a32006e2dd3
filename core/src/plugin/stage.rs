//! Stage-kind plugins: a node of the experiment graph (train, distill, evaluate, search...).

use crate::artifact::ArtifactKind;
use crate::config::Params;
use crate::error::Result;
use crate::plugin::data::Dataset;
use crate::precision::Precision;
use crate::progress::Progress;
use crate::rng::Seed;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tch::Device;

/// An output a stage promises, so references to it can be checked before anything runs.
#[derive(Clone, Debug)]
pub struct OutputDecl {
    pub name: std::borrow::Cow<'static, str>,
    pub kind: ArtifactKind,
}

/// What a finished stage hands on: its artifacts (paths relative to the stage directory)
/// and the numbers the summary table shows.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct StageResult {
    pub outputs: BTreeMap<String, String>,
    pub summary: BTreeMap<String, f64>,
    /// What went wrong without failing the stage (a stalled training run, a search member
    /// that stalled), shown by the summary and the report next to the stage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The roles the stage trained and consulted (empty for stages without any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<crate::role::RoleRecord>,
}

impl StageResult {
    /// A result with `outputs` (name, path relative to the stage directory) and `summary`.
    pub fn new(outputs: &[(&str, &str)], summary: BTreeMap<String, f64>) -> StageResult {
        StageResult {
            outputs: outputs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            summary,
            ..Default::default()
        }
    }
}

/// What the runtime gives a running stage.
pub struct StageCtx<'a> {
    pub name: &'a str,
    pub dir: PathBuf,
    pub seed: Seed,
    pub device: Device,
    /// The pipeline named one GPU (`device: cuda:N`): a stage that could spread its work
    /// over the visible GPUs (a search's worker threads) keeps it on `device`.
    pub device_pinned: bool,
    /// The pipeline's `precision:` (default fp32), for stages whose own entry names none.
    pub precision: Precision,
    pub progress: &'a Progress,
    /// Set when the user interrupts: stages checkpoint and return `Error::Interrupted`.
    pub interrupted: &'a AtomicBool,
    pub data: &'a dyn Fn() -> Result<Arc<Dataset>>,
    /// The pipeline's `data` entry and the seed its dataset is built with: what a process
    /// outside this run (a search worker on another machine) needs to load the same data.
    pub data_params: &'a Params,
    pub data_seed: Seed,
}

/// A configured stage, built (and so validated) before anything runs.
pub trait Stage: Send {
    fn outputs(&self) -> Vec<OutputDecl>;
    /// Its roles, for `--dry-run` and the result (none by default).
    fn roles(&self) -> Vec<crate::role::RoleRecord> {
        Vec::new()
    }
    fn run(&self, ctx: &StageCtx<'_>) -> Result<StageResult>;
}

/// Builds a stage from its YAML mapping (without `kind`). References to other stages'
/// outputs arrive as typed placeholders during validation and as paths when it runs.
pub type StageFactory = fn(&Params) -> Result<Box<dyn Stage>>;
