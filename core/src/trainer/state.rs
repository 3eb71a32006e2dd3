//! Epoch checkpoints for resuming an interrupted stage. Each epoch writes a new
//! `state/epoch-<k>/` (weights, optimizer, `state.json` with checksums) and then points
//! `state/latest.json` at it; the previous one is kept as a fallback for a damaged latest.
//! Several trained roles share one state: each role's tensors under its [`StatePart`]
//! prefix, so an epoch's state stays one checksummed unit that a search can copy whole.

use super::metrics::EpochMetrics;
use crate::checkpoint::{copy_into, named_tensors, read_tensors, write_tensors};
use crate::error::{Error, Result};
use crate::plugin::optim::Optimizer;
use crate::rundir::{file_sha256, read_json, write_json};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::nn::VarStore;
use tch::Tensor;

/// An epoch state's weights (every trained role's variables).
pub const WEIGHTS: &str = "weights.safetensors";
/// An epoch state's optimizer state (every trained role's).
pub const OPTIMIZER: &str = "optimizer.safetensors";
/// An epoch state's [`EpochState`], with the two files' checksums.
pub const STATE: &str = "state.json";
/// The files of one epoch state, in the order they are written.
pub const FILES: [&str; 3] = [WEIGHTS, OPTIMIZER, STATE];
/// The pointer to the newest complete epoch state.
const LATEST: &str = "latest.json";

/// The folder (under a run's `state/`) of the state after `epoch` epochs.
pub fn epoch_dir(state_dir: &Path, epoch: usize) -> PathBuf {
    state_dir.join(format!("epoch-{epoch}"))
}

/// The epoch `state_dir/latest.json` points at, if it is readable.
pub fn latest_epoch(state_dir: &Path) -> Option<usize> {
    read_json::<Latest>(&state_dir.join(LATEST))
        .ok()
        .flatten()
        .map(|l| l.epoch)
}

#[derive(Serialize, Deserialize)]
struct Latest {
    epoch: usize,
    dir: String,
}

/// What is restored besides tensors.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EpochState {
    /// Epochs completed.
    pub epoch: usize,
    pub metrics: Vec<EpochMetrics>,
    /// Random streams are a pure function of (seed, epoch, position): recording the seed
    /// and the epoch restores them.
    pub seed: u64,
    pub weights_sha256: String,
    pub optimizer_sha256: String,
}

/// One trained role's share of the state: its variables and optimizer, named under
/// `prefix` in the state files.
pub struct StatePart<'a> {
    pub prefix: String,
    pub vs: &'a VarStore,
    pub opt: &'a mut dyn Optimizer,
}

fn prefixed(prefix: &str, tensors: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
    tensors
        .into_iter()
        .map(|(k, t)| (format!("{prefix}{k}"), t))
        .collect()
}

/// The tensors named under `prefix`, without it.
fn under(prefix: &str, tensors: &[(String, Tensor)]) -> Vec<(String, Tensor)> {
    tensors
        .iter()
        .filter_map(|(k, t)| Some((k.strip_prefix(prefix)?.to_string(), t.shallow_clone())))
        .collect()
}

/// Saves the trained roles' variables and optimizers after `state.epoch` epochs.
pub fn save(dir: &Path, parts: &[StatePart<'_>], mut state: EpochState) -> Result<()> {
    let edir = epoch_dir(dir, state.epoch);
    let w = edir.join(WEIGHTS);
    let o = edir.join(OPTIMIZER);
    let mut weights = Vec::new();
    let mut optim = Vec::new();
    for p in parts {
        weights.extend(prefixed(&p.prefix, named_tensors(p.vs, "")));
        optim.extend(prefixed(&p.prefix, p.opt.state()));
    }
    write_tensors(&w, &weights)?;
    write_tensors(&o, &optim)?;
    state.weights_sha256 = file_sha256(&w)?;
    state.optimizer_sha256 = file_sha256(&o)?;
    write_json(&edir.join(STATE), &state)?;
    write_json(
        &dir.join(LATEST),
        &Latest {
            epoch: state.epoch,
            dir: format!("epoch-{}", state.epoch),
        },
    )?;
    // Keep this epoch and the one before; older ones are no longer needed.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(k) = name
                .strip_prefix("epoch-")
                .and_then(|k| k.parse::<usize>().ok())
            {
                if k + 1 < state.epoch {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
    Ok(())
}

/// Restores the newest intact epoch state, if any. A damaged one is reported through
/// `warn` and the previous epoch is tried.
pub fn restore(
    dir: &Path,
    parts: &mut [StatePart<'_>],
    warn: &dyn Fn(&str),
) -> Result<Option<EpochState>> {
    let latest: Option<Latest> = match read_json(&dir.join(LATEST)) {
        Ok(l) => l,
        Err(e) => {
            warn(&format!("ignoring {}: {e}", dir.join(LATEST).display()));
            None
        }
    };
    let mut candidates: Vec<(usize, PathBuf)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let k = name.strip_prefix("epoch-")?.parse::<usize>().ok()?;
                    Some((k, e.path()))
                })
                .collect()
        })
        .unwrap_or_default();
    candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
    if let Some(l) = &latest {
        candidates.retain(|(k, _)| *k <= l.epoch);
    }
    for (_, edir) in candidates {
        match try_restore(&edir, parts) {
            Ok(state) => return Ok(Some(state)),
            Err(e) => warn(&format!(
                "checkpoint {} is unusable ({e}); trying an older one",
                edir.display()
            )),
        }
    }
    Ok(None)
}

fn try_restore(edir: &Path, parts: &mut [StatePart<'_>]) -> Result<EpochState> {
    let state: EpochState =
        read_json(&edir.join(STATE))?.ok_or_else(|| Error::Data(format!("no {STATE}")))?;
    let w = edir.join(WEIGHTS);
    let o = edir.join(OPTIMIZER);
    if file_sha256(&w)? != state.weights_sha256 || file_sha256(&o)? != state.optimizer_sha256 {
        return Err(Error::Data("checksum mismatch".into()));
    }
    let weights = read_tensors(&w)?;
    let optim = read_tensors(&o)?;
    for p in parts.iter_mut() {
        let saved: BTreeMap<_, _> = under(&p.prefix, &weights).into_iter().collect();
        copy_into(p.vs, "", &saved, &w.display().to_string())?;
        p.opt.load_state(&under(&p.prefix, &optim))?;
    }
    Ok(state)
}

/// Makes `to` resume from `from`'s state after `epoch` epochs (a search's exploit step:
/// the member continues from the donor's weights and optimizer). The copy is verified
/// against the donor's checksums before `to/latest.json` points at it.
pub fn copy_epoch_state(from: &Path, to: &Path, epoch: usize) -> Result<()> {
    let name = format!("epoch-{epoch}");
    let src = from.join(&name);
    let dst = to.join(&name);
    let state: EpochState = read_json(&src.join(STATE))?
        .ok_or_else(|| Error::Data(format!("{}: no state.json", src.display())))?;
    if dst.exists() {
        std::fs::remove_dir_all(&dst).map_err(|e| Error::io(&dst, e))?;
    }
    std::fs::create_dir_all(&dst).map_err(|e| Error::io(&dst, e))?;
    for f in FILES {
        let bytes = std::fs::read(src.join(f)).map_err(|e| Error::io(src.join(f), e))?;
        crate::rundir::write_atomic(&dst.join(f), &bytes)?;
    }
    if file_sha256(&dst.join(WEIGHTS))? != state.weights_sha256 {
        return Err(Error::Data(format!(
            "{}: copy does not match its checksum",
            dst.display()
        )));
    }
    write_json(&to.join(LATEST), &Latest { epoch, dir: name })
}
