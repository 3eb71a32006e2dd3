//! What a search stage records for its workers, read by `rolekd-run worker` (the stage
//! writes it, the worker reads it: a module of its own, so neither imports the other's).

use rolekd_core::precision::Precision;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use tch::Device;

/// The store's meta key holding the [`WorkerSpec`] (JSON).
pub const SPEC_KEY: &str = "worker";

/// Everything a worker needs besides the store, as the stage saw it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkerSpec {
    /// The stage's name (log lines).
    pub stage: String,
    /// The stage's params with references resolved, as YAML.
    pub params: String,
    /// The pipeline's `data` entry, as YAML, and the seed its dataset is built with.
    pub data: String,
    pub data_seed: u64,
    /// The stage's seed (the search's stream is `seed / "search"`).
    pub seed: u64,
    /// The stage directory: members' training states and published checkpoints.
    pub dir: PathBuf,
    /// The pipeline's device (`cpu`, `cuda:N`, `auto`).
    pub device: String,
    /// The pipeline's precision, for a trial that names none (absent in older records: fp32).
    #[serde(default)]
    pub precision: Precision,
}

/// The device's name as a pipeline writes it.
pub fn device_name(d: Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => "auto".into(),
    }
}
