//! Epoch checkpoints for resuming an interrupted stage. Each epoch writes a new
//! `state/epoch-<k>/` (weights, optimizer, `state.json` with checksums) and then points
//! `state/latest.json` at it; the previous one is kept as a fallback for a damaged latest.
//! An interrupt (Ctrl-C, SIGTERM) inside an epoch writes `state/epoch-<k>-step-<s>/`: the
//! same files after `s` batches of epoch `k + 1`, plus the epoch's running sums, so the
//! resumed epoch ends with the figures of an uninterrupted one.
//! Several trained roles share one state: each role's tensors under its [`StatePart`]
//! prefix, so an epoch's state stays one checksummed unit that a search can copy whole.

use super::metrics::EpochMetrics;
use crate::checkpoint::{copy_into, named_tensors, read_tensors, write_tensors};
use rolekd_core::error::{Error, Result};
use rolekd_core::files::{file_sha256, read_json, write_json};
use rolekd_core::plugin::optim::Optimizer;
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
/// A mid-epoch state's running sums of the epoch in progress.
pub const SUMS: &str = "sums.safetensors";
/// The files of one epoch state, in the order they are written.
pub const FILES: [&str; 3] = [WEIGHTS, OPTIMIZER, STATE];
/// The pointer to the newest complete epoch state.
const LATEST: &str = "latest.json";

/// The folder (under a run's `state/`) of the state after `epoch` epochs.
pub fn epoch_dir(state_dir: &Path, epoch: usize) -> PathBuf {
    state_dir.join(format!("epoch-{epoch}"))
}

/// The folder of the state `step` batches into the epoch after `epoch` finished ones.
pub fn step_dir(state_dir: &Path, epoch: usize, step: usize) -> PathBuf {
    match step {
        0 => epoch_dir(state_dir, epoch),
        _ => state_dir.join(format!("epoch-{epoch}-step-{step}")),
    }
}

/// Where a state folder named `name` stands: (epochs finished, batches into the next).
fn position_of(name: &str) -> Option<(usize, usize)> {
    let rest = name.strip_prefix("epoch-")?;
    match rest.split_once("-step-") {
        Some((e, s)) => Some((e.parse().ok()?, s.parse().ok()?)),
        None => Some((rest.parse().ok()?, 0)),
    }
}

/// Every state folder under `dir` with its position.
fn positions(dir: &Path) -> Vec<((usize, usize), PathBuf)> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let pos = position_of(&e.file_name().to_string_lossy())?;
                    Some((pos, e.path()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The finished epochs of the state `state_dir/latest.json` points at, if it is readable.
pub fn latest_epoch(state_dir: &Path) -> Option<usize> {
    read_json::<Latest>(&state_dir.join(LATEST))
        .ok()
        .flatten()
        .map(|l| l.epoch)
}

#[derive(Serialize, Deserialize)]
struct Latest {
    epoch: usize,
    /// Batches into the next epoch (a mid-epoch state); 0 at an epoch's end.
    #[serde(default)]
    step: usize,
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
    /// Batches of epoch `epoch + 1` already trained (a mid-epoch state); 0 otherwise.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub step: usize,
    /// The checksum of [`SUMS`], in a mid-epoch state.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sums_sha256: String,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A restored state: what `state.json` holds, and in a mid-epoch state the running sums
/// of the epoch in progress (empty otherwise).
pub struct Restored {
    pub state: EpochState,
    pub sums: Vec<(String, Tensor)>,
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
pub fn save(dir: &Path, parts: &[StatePart<'_>], state: EpochState) -> Result<()> {
    write(dir, parts, EpochState { step: 0, ..state }, &[])
}

/// Saves the state `state.step` batches into epoch `state.epoch + 1`, with the epoch's
/// running `sums` (an interrupt inside an epoch).
pub fn save_mid_epoch(
    dir: &Path,
    parts: &[StatePart<'_>],
    state: EpochState,
    sums: &[(String, Tensor)],
) -> Result<()> {
    write(dir, parts, state, sums)
}

fn write(
    dir: &Path,
    parts: &[StatePart<'_>],
    mut state: EpochState,
    sums: &[(String, Tensor)],
) -> Result<()> {
    let pos = (state.epoch, state.step);
    let edir = step_dir(dir, pos.0, pos.1);
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
    state.sums_sha256 = String::new();
    if pos.1 > 0 {
        let s = edir.join(SUMS);
        write_tensors(&s, sums)?;
        state.sums_sha256 = file_sha256(&s)?;
    }
    write_json(&edir.join(STATE), &state)?;
    write_json(
        &dir.join(LATEST),
        &Latest {
            epoch: pos.0,
            step: pos.1,
            dir: edir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        },
    )?;
    // Keep this state and the two newest epoch ends before it; older epoch ends and
    // every earlier mid-epoch state are no longer needed.
    for (q, path) in positions(dir) {
        let stale = match q.1 {
            0 => q.0 + 1 < pos.0,
            _ => q < pos,
        };
        if stale {
            let _ = std::fs::remove_dir_all(path);
        }
    }
    Ok(())
}

/// Restores the newest intact state, if any. A damaged one is reported through `warn`
/// and the one before it is tried.
pub fn restore(
    dir: &Path,
    parts: &mut [StatePart<'_>],
    warn: &dyn Fn(&str),
) -> Result<Option<Restored>> {
    let latest: Option<Latest> = match read_json(&dir.join(LATEST)) {
        Ok(l) => l,
        Err(e) => {
            warn(&format!("ignoring {}: {e}", dir.join(LATEST).display()));
            None
        }
    };
    let mut candidates = positions(dir);
    candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
    if let Some(l) = &latest {
        candidates.retain(|(q, _)| *q <= (l.epoch, l.step));
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

fn try_restore(edir: &Path, parts: &mut [StatePart<'_>]) -> Result<Restored> {
    let state: EpochState =
        read_json(&edir.join(STATE))?.ok_or_else(|| Error::Data(format!("no {STATE}")))?;
    let w = edir.join(WEIGHTS);
    let o = edir.join(OPTIMIZER);
    if file_sha256(&w)? != state.weights_sha256 || file_sha256(&o)? != state.optimizer_sha256 {
        return Err(Error::Data("checksum mismatch".into()));
    }
    let sums = match state.step {
        0 => Vec::new(),
        _ => {
            let s = edir.join(SUMS);
            if file_sha256(&s)? != state.sums_sha256 {
                return Err(Error::Data("checksum mismatch".into()));
            }
            read_tensors(&s)?
        }
    };
    let weights = read_tensors(&w)?;
    let optim = read_tensors(&o)?;
    for p in parts.iter_mut() {
        let saved: BTreeMap<_, _> = under(&p.prefix, &weights).into_iter().collect();
        copy_into(p.vs, "", &saved, &w.display().to_string())?;
        p.opt.load_state(&under(&p.prefix, &optim))?;
    }
    Ok(Restored { state, sums })
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
    // A mid-epoch state of the member's old lineage must not outrank the copy.
    for (q, path) in positions(to) {
        if q.1 > 0 {
            std::fs::remove_dir_all(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    std::fs::create_dir_all(&dst).map_err(|e| Error::io(&dst, e))?;
    for f in FILES {
        let bytes = std::fs::read(src.join(f)).map_err(|e| Error::io(src.join(f), e))?;
        rolekd_core::files::write_atomic(&dst.join(f), &bytes)?;
    }
    if file_sha256(&dst.join(WEIGHTS))? != state.weights_sha256 {
        return Err(Error::Data(format!(
            "{}: copy does not match its checksum",
            dst.display()
        )));
    }
    write_json(
        &to.join(LATEST),
        &Latest {
            epoch,
            step: 0,
            dir: name,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// An optimizer whose whole state is one counter, so a restore shows which save it
    /// came from.
    struct Counter(Tensor);

    impl Optimizer for Counter {
        fn step(&mut self, _: f64) {}
        fn state(&self) -> Vec<(String, Tensor)> {
            vec![("count".into(), self.0.shallow_clone())]
        }
        fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
            self.0 = state[0].1.shallow_clone();
            Ok(())
        }
    }

    fn at(epoch: usize, step: usize) -> EpochState {
        EpochState {
            epoch,
            metrics: Vec::new(),
            seed: 1,
            weights_sha256: String::new(),
            optimizer_sha256: String::new(),
            step,
            sums_sha256: String::new(),
        }
    }

    fn save_at(dir: &Path, vs: &VarStore, epoch: usize, step: usize) {
        let mut opt = Counter(Tensor::from((epoch * 100 + step) as i64));
        let parts = [StatePart {
            prefix: String::new(),
            vs,
            opt: &mut opt,
        }];
        let sums = [("seen".to_string(), Tensor::from(step as i64 * 10))];
        match step {
            0 => save(dir, &parts, at(epoch, 0)).unwrap(),
            _ => save_mid_epoch(dir, &parts, at(epoch, step), &sums).unwrap(),
        }
    }

    /// What a restore found: epochs, step, the optimizer's counter, the sums.
    type Found = (usize, usize, i64, Vec<(String, Tensor)>);

    fn restore_at(dir: &Path, vs: &VarStore) -> Option<Found> {
        let mut opt = Counter(Tensor::from(-1i64));
        let r = {
            let mut parts = [StatePart {
                prefix: String::new(),
                vs,
                opt: &mut opt,
            }];
            restore(dir, &mut parts, &|_| {}).unwrap()?
        };
        Some((r.state.epoch, r.state.step, opt.0.int64_value(&[]), r.sums))
    }

    fn folders(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = positions(dir)
            .into_iter()
            .map(|(_, p)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn positions_order_epoch_ends_and_steps_inside_epochs() {
        assert_eq!(position_of("epoch-3"), Some((3, 0)));
        assert_eq!(position_of("epoch-3-step-17"), Some((3, 17)));
        assert_eq!(position_of("epoch-x"), None);
        assert_eq!(position_of("latest.json"), None);
        assert!((3, 17) > (3, 0) && (3, 17) < (4, 0));
    }

    #[test]
    fn a_mid_epoch_state_restores_with_its_sums_and_is_cleared_by_the_next_epoch_end() {
        let d = tempfile::tempdir().unwrap();
        let vs = VarStore::new(Device::Cpu);
        let _w = vs.root().zeros("w", &[2]);
        save_at(d.path(), &vs, 1, 0);
        save_at(d.path(), &vs, 2, 0);
        save_at(d.path(), &vs, 2, 5);
        assert_eq!(folders(d.path()), ["epoch-1", "epoch-2", "epoch-2-step-5"]);
        let (epoch, step, count, sums) = restore_at(d.path(), &vs).unwrap();
        assert_eq!((epoch, step, count), (2, 5, 205));
        assert_eq!(sums[0].0, "seen");
        assert_eq!(sums[0].1.int64_value(&[]), 50);
        // A later step inside the same epoch replaces the earlier one.
        save_at(d.path(), &vs, 2, 9);
        assert_eq!(folders(d.path()), ["epoch-1", "epoch-2", "epoch-2-step-9"]);
        // The epoch's end supersedes every mid-epoch state.
        save_at(d.path(), &vs, 3, 0);
        assert_eq!(folders(d.path()), ["epoch-2", "epoch-3"]);
        assert_eq!(restore_at(d.path(), &vs).unwrap().0, 3);
    }

    #[test]
    fn a_damaged_mid_epoch_state_falls_back_to_the_epoch_end() {
        let d = tempfile::tempdir().unwrap();
        let vs = VarStore::new(Device::Cpu);
        let _w = vs.root().zeros("w", &[2]);
        save_at(d.path(), &vs, 2, 0);
        save_at(d.path(), &vs, 2, 5);
        std::fs::write(step_dir(d.path(), 2, 5).join(SUMS), b"damaged").unwrap();
        let (epoch, step, count, sums) = restore_at(d.path(), &vs).unwrap();
        assert_eq!((epoch, step, count), (2, 0, 200));
        assert!(sums.is_empty());
    }

    #[test]
    fn copying_an_epoch_state_drops_the_old_lineage_s_mid_epoch_state() {
        let d = tempfile::tempdir().unwrap();
        let (donor, member) = (d.path().join("donor"), d.path().join("member"));
        let vs = VarStore::new(Device::Cpu);
        let _w = vs.root().zeros("w", &[2]);
        save_at(&donor, &vs, 3, 0);
        save_at(&member, &vs, 3, 4);
        copy_epoch_state(&donor, &member, 3).unwrap();
        assert_eq!(folders(&member), ["epoch-3"]);
        let (epoch, step, count, _) = restore_at(&member, &vs).unwrap();
        assert_eq!((epoch, step, count), (3, 0, 300));
    }
}
