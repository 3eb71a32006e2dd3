//! `provenance.json` in the run directory: what produced the run, one entry per invocation
//! (a resumed run has several), so a figure can be traced to a rolekd commit, a libtorch
//! build and a machine.

use rolekd_core::error::Result;
use rolekd_core::files::{read_json, write_json};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The file's name.
pub const PROVENANCE_FILE: &str = "provenance.json";

/// The libtorch rolekd was compiled against (torch's `version.py` at build time).
pub const LIBTORCH_VERSION: &str = env!("ROLEKD_LIBTORCH_VERSION");
/// The CUDA version that libtorch was built for (`none` for a CPU build).
pub const LIBTORCH_CUDA: &str = env!("ROLEKD_LIBTORCH_CUDA");

/// Who is running: the binary's name, version and commit, and its command line.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Invoker {
    pub tool: String,
    pub version: String,
    /// `git rev-parse HEAD` when the binary was built (None outside a git checkout), with
    /// `-dirty` when the tree had uncommitted changes.
    pub git_commit: Option<String>,
    pub command_line: Vec<String>,
}

/// One invocation's facts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Invocation {
    #[serde(flatten)]
    pub invoker: Invoker,
    pub libtorch: String,
    pub libtorch_cuda: String,
    pub cuda_available: bool,
    pub cuda_devices: i64,
    /// The device the pipeline resolved to (`Cpu`, `Cuda(0)`).
    pub device: String,
    pub host: Option<String>,
    pub cpu: Option<String>,
    pub cpu_threads: i32,
    /// Unix seconds.
    pub started: f64,
}

/// Every invocation that wrote into the run directory, oldest first.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Provenance {
    pub invocations: Vec<Invocation>,
}

impl Invocation {
    /// This process's facts.
    pub fn now(invoker: &Invoker, device: tch::Device) -> Invocation {
        Invocation {
            invoker: invoker.clone(),
            libtorch: LIBTORCH_VERSION.to_string(),
            libtorch_cuda: LIBTORCH_CUDA.to_string(),
            cuda_available: tch::Cuda::is_available(),
            cuda_devices: tch::Cuda::device_count(),
            device: format!("{device:?}"),
            host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string()),
            cpu: cpu_model(),
            cpu_threads: tch::get_num_threads(),
            started: crate::tensorboard::unix_now(),
        }
    }
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

/// Appends `inv` to `dir/provenance.json` (a damaged file is started over rather than
/// failing the run: provenance must never cost results).
pub fn record(dir: &Path, inv: Invocation) -> Result<()> {
    let path = dir.join(PROVENANCE_FILE);
    let mut p: Provenance = read_json(&path).ok().flatten().unwrap_or_default();
    p.invocations.push(inv);
    write_json(&path, &p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocations_accumulate() {
        let d = tempfile::tempdir().unwrap();
        let who = Invoker {
            tool: "rolekd-run".into(),
            version: "0.1.0".into(),
            git_commit: Some("abc".into()),
            command_line: vec!["rolekd-run".into(), "p.yaml".into()],
        };
        record(d.path(), Invocation::now(&who, tch::Device::Cpu)).unwrap();
        record(d.path(), Invocation::now(&who, tch::Device::Cpu)).unwrap();
        let p: Provenance = read_json(&d.path().join(PROVENANCE_FILE)).unwrap().unwrap();
        assert_eq!(p.invocations.len(), 2);
        assert_eq!(p.invocations[0].invoker, who);
        assert_eq!(p.invocations[0].device, "Cpu");
        assert!(
            p.invocations[0].libtorch.starts_with("2."),
            "{:?}",
            p.invocations[0]
        );
        assert!(p.invocations[0].cpu_threads >= 1);
        // A damaged file does not stop a run.
        std::fs::write(d.path().join(PROVENANCE_FILE), "{").unwrap();
        record(d.path(), Invocation::now(&who, tch::Device::Cpu)).unwrap();
        let p: Provenance = read_json(&d.path().join(PROVENANCE_FILE)).unwrap().unwrap();
        assert_eq!(p.invocations.len(), 1);
    }
}
