//! Members trained by the engine's trainer. Member `k` lives in `trials/<k>/` (the
//! trainer's `state/`, `metrics.jsonl`, final `checkpoint/`, and `schedule.json`: its
//! lineage so far, the current policy extended to the end, which the trial's
//! `pba-schedule` entry reads).
//! Published states go to the search's [`CheckpointStore`]: by default hard links (copies
//! across file systems) of the trainer's epoch files in the stage directory's
//! `checkpoints/<k>/epoch-<e>-<tag>/` (the trainer only ever renames new files into place
//! and deletes old epochs, so a published state never changes), or uploads to an object
//! store. A member's local state is checked against the published one it continues from
//! before training, and replaced by it when it is missing or another lineage's: a worker on
//! another machine takes a member over from its last published state.

use crate::checkpoints::{remove_dir_if_exists, CheckpointStore, FINAL, STATE_FILES};
use crate::population::work::Trials;
use crate::space::SearchSpace;
use crate::store::{CheckpointRef, Member, ResultRow};
use rolekd_core::config::Params;
use rolekd_core::files::{file_sha256, read_json, write_json};
use rolekd_core::plugin::data::Dataset;
use rolekd_core::plugin::search::SearchPlan;
use rolekd_core::progress::Progress;
use rolekd_core::rng::Seed;
use rolekd_core::{Error, Result};
use rolekd_engine::checkpoint::{read_tensors, write_tensors};
use rolekd_engine::checkpoint::{META_FILE, WEIGHTS_FILE};
use rolekd_engine::trainer::state::{
    copy_epoch_state, epoch_dir, latest_epoch, EpochState, OPTIMIZER, STATE, WEIGHTS,
};
use rolekd_engine::trainer::{self, read_metrics, TrainCtx, TrainSpec};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tch::Device;

/// Trains members with [`trainer::train`].
pub struct TrainerTrials<'a> {
    /// The trial as its `train`/`distill` mapping describes it.
    pub spec: TrainSpec,
    /// The index in `spec.roles` of the role whose schedule is searched.
    pub searched: usize,
    /// The trial's own augmentation entry (finishing options), if any.
    pub augment: Option<Params>,
    pub space: &'a dyn SearchSpace,
    /// The stage directory.
    pub dir: PathBuf,
    /// The search's stream; member `k` trains with `seed / k`.
    pub seed: Seed,
    pub device: Device,
    /// The search's split (train / val).
    pub data: Arc<Dataset>,
    pub progress: &'a Progress,
    /// The stage's name, for log lines.
    pub label: String,
    /// Names of the trained model's non-trainable variables (BatchNorm statistics), kept
    /// from the member itself when an exploit copies weights only.
    pub buffers: BTreeSet<String>,
    /// Where published states go.
    pub checkpoints: CheckpointStore,
}

/// A member's directory.
pub fn trial_dir(stage_dir: &Path, member: usize) -> PathBuf {
    stage_dir.join("trials").join(member.to_string())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

impl TrainerTrials<'_> {
    /// The spec member `member` trains with up to `to` epochs.
    pub fn member_spec(&self, schedule_file: &Path, to: usize) -> Result<TrainSpec> {
        let mut spec = self.spec.clone();
        spec.roles[self.searched].augment = Some(
            self.space
                .augment_entry(self.augment.as_ref(), schedule_file)?,
        );
        spec.stop_after = Some(to);
        spec.eval_test = false;
        spec.train_on_val_too = false;
        Ok(spec)
    }
}

impl TrainerTrials<'_> {
    /// Makes `member`'s local training state continue from the published state `from`:
    /// kept when its own epoch file is that state (it may have trained on past it),
    /// replaced by a copy of it otherwise (another machine trained the member last, or an
    /// exploit since gave it another lineage).
    fn align_local_state(&self, member: usize, from: &CheckpointRef) -> Result<()> {
        let tdir = trial_dir(&self.dir, member);
        let state_dir = tdir.join("state");
        let e = from.epoch;
        let wanted: EpochState = serde_json::from_slice(&self.checkpoints.read(&from.path, STATE)?)
            .map_err(|err| Error::Data(format!("{}/{STATE}: {err}", from.path)))?;
        let local: Option<EpochState> = read_json(&epoch_dir(&state_dir, e).join(STATE))
            .ok()
            .flatten();
        let latest = latest_epoch(&state_dir);
        if local.is_some_and(|l| l.weights_sha256 == wanted.weights_sha256)
            && latest.is_some_and(|l| l >= e)
        {
            return Ok(());
        }
        let staging = tdir.join(".restore");
        remove_dir_if_exists(&staging)?;
        self.checkpoints
            .get(&from.path, &epoch_dir(&staging, e), &STATE_FILES)?;
        remove_dir_if_exists(&state_dir)?;
        copy_epoch_state(&staging, &state_dir, e)?;
        remove_dir_if_exists(&staging)
    }

    /// Copies published state `ckpt` into a fresh local folder `name` of `member`'s.
    fn fetch(&self, member: usize, ckpt: &CheckpointRef, name: &str) -> Result<PathBuf> {
        let dst = trial_dir(&self.dir, member).join(name);
        remove_dir_if_exists(&dst)?;
        self.checkpoints.get(&ckpt.path, &dst, &STATE_FILES)?;
        Ok(dst)
    }

    /// Makes `trials/<member>/checkpoint/` the final checkpoint published with `ckpt`, when
    /// it published one (the member finished on another machine).
    pub fn fetch_final(&self, member: usize, ckpt: &CheckpointRef) -> Result<bool> {
        let names = [
            format!("{FINAL}/{WEIGHTS_FILE}"),
            format!("{FINAL}/{META_FILE}"),
        ];
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        if !self.checkpoints.holds(&ckpt.path, &names)? {
            return Ok(false);
        }
        let tdir = trial_dir(&self.dir, member);
        let staging = tdir.join(".final");
        remove_dir_if_exists(&staging)?;
        self.checkpoints.get(&ckpt.path, &staging, &names)?;
        let dst = tdir.join("checkpoint");
        remove_dir_if_exists(&dst)?;
        std::fs::rename(staging.join(FINAL), &dst).map_err(io(&dst))?;
        remove_dir_if_exists(&staging)?;
        Ok(true)
    }
}

/// A fresh tag for a published state's key: no two publishes share one.
fn publish_tag() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl TrainerTrials<'_> {
    /// [`Trials::train`] on `device` (a search's worker threads may train on different
    /// GPUs: [`OnDevice`]).
    fn train_on(
        &self,
        device: Device,
        member: &Member,
        from: Option<&CheckpointRef>,
        to: usize,
        halt: &AtomicBool,
    ) -> Result<Vec<ResultRow>> {
        let dir = trial_dir(&self.dir, member.id);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        if let Some(from) = from {
            self.align_local_state(member.id, from)?;
        }
        let schedule = dir.join("schedule.json");
        self.space
            .write_schedule(&member.lineage, self.spec.epochs, &schedule)?;
        let spec = self.member_spec(&schedule, to)?;
        let label = format!("{}/m{}", self.label, member.id);
        trainer::train(
            &spec,
            &TrainCtx {
                label: &label,
                dir: dir.clone(),
                seed: self.seed.index(member.id as u64),
                device,
                data: self.data.clone(),
                progress: self.progress,
                interrupted: halt,
                precision: spec.precision.unwrap_or_default(),
                save_mid_epoch: false,
            },
        )?;
        let history = read_metrics(&dir.join("metrics.jsonl"))?;
        history
            .iter()
            .filter(|e| e.epoch > member.epoch && e.epoch <= to)
            .map(|e| {
                Ok(ResultRow {
                    member: member.id,
                    epoch: e.epoch,
                    reward: e.val_acc.ok_or_else(|| {
                        Error::Invalid(format!(
                            "{label}: no validation accuracy at epoch {}",
                            e.epoch
                        ))
                    })?,
                    train_acc: e.train_acc,
                    loss: e.loss.get("total").copied().unwrap_or(f64::NAN),
                    seconds: e.seconds,
                })
            })
            .collect()
    }
}

/// Trials trained on a device of their own: one of a search's worker threads
/// ([`crate::stage::worker_device`]); everything else as `trials` does it.
pub struct OnDevice<'t, 'a> {
    pub trials: &'t TrainerTrials<'a>,
    pub device: Device,
}

impl Trials for OnDevice<'_, '_> {
    fn train(
        &self,
        member: &Member,
        from: Option<&CheckpointRef>,
        to: usize,
        halt: &AtomicBool,
    ) -> Result<Vec<ResultRow>> {
        self.trials.train_on(self.device, member, from, to, halt)
    }

    fn publish(&self, member: usize, epoch: usize) -> Result<CheckpointRef> {
        self.trials.publish(member, epoch)
    }

    fn exploit(
        &self,
        member: usize,
        donor: &CheckpointRef,
        own: Option<&CheckpointRef>,
        plan: &SearchPlan,
    ) -> Result<()> {
        self.trials.exploit(member, donor, own, plan)
    }

    fn discard(&self, ckpt: &CheckpointRef) -> Result<()> {
        self.trials.discard(ckpt)
    }

    fn log(&self, line: &str) {
        self.trials.log(line)
    }
}

impl Trials for TrainerTrials<'_> {
    fn train(
        &self,
        member: &Member,
        from: Option<&CheckpointRef>,
        to: usize,
        halt: &AtomicBool,
    ) -> Result<Vec<ResultRow>> {
        self.train_on(self.device, member, from, to, halt)
    }

    fn publish(&self, member: usize, epoch: usize) -> Result<CheckpointRef> {
        let tdir = trial_dir(&self.dir, member);
        let src = epoch_dir(&tdir.join("state"), epoch);
        // One folder holding what goes out: the epoch state, and after the last epoch the
        // final checkpoint (links, no copies).
        let staging = tdir.join(".publish");
        remove_dir_if_exists(&staging)?;
        std::fs::create_dir_all(staging.join(FINAL)).map_err(io(&staging))?;
        let mut names: Vec<String> = STATE_FILES.iter().map(|f| f.to_string()).collect();
        for f in STATE_FILES {
            crate::checkpoints::link_or_copy(&src.join(f), &staging.join(f))?;
        }
        let fin = tdir.join("checkpoint");
        if epoch >= self.spec.epochs && fin.join(META_FILE).exists() {
            for f in [WEIGHTS_FILE, META_FILE] {
                crate::checkpoints::link_or_copy(&fin.join(f), &staging.join(FINAL).join(f))?;
                names.push(format!("{FINAL}/{f}"));
            }
        }
        let rel = format!("checkpoints/{member}/epoch-{epoch}-{}", publish_tag());
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.checkpoints.put(&rel, &staging, &names)?;
        remove_dir_if_exists(&staging)?;
        Ok(CheckpointRef {
            member,
            epoch,
            path: rel,
        })
    }

    fn exploit(
        &self,
        member: usize,
        donor: &CheckpointRef,
        own: Option<&CheckpointRef>,
        plan: &SearchPlan,
    ) -> Result<()> {
        let e = donor.epoch;
        let from = self.fetch(member, donor, ".donor")?;
        let own_dir = own.map(|o| self.fetch(member, o, ".own")).transpose()?;
        let tdir = trial_dir(&self.dir, member);
        let staging = tdir.join(".exploit");
        remove_dir_if_exists(&staging)?;
        let edir = epoch_dir(&staging, e);
        std::fs::create_dir_all(&edir).map_err(io(&edir))?;
        // Weights: the donor's, with the member's own buffers unless they are copied too.
        match &own_dir {
            Some(own_dir) if !plan.copy_buffers && !self.buffers.is_empty() => {
                let mine: BTreeMap<String, tch::Tensor> =
                    read_tensors(&own_dir.join(WEIGHTS))?.into_iter().collect();
                let merged: Vec<(String, tch::Tensor)> = read_tensors(&from.join(WEIGHTS))?
                    .into_iter()
                    .map(|(name, t)| match mine.get(&name) {
                        Some(m) if self.buffers.contains(&name) => (name, m.shallow_clone()),
                        _ => (name, t),
                    })
                    .collect();
                write_tensors(&edir.join(WEIGHTS), &merged)?;
            }
            _ => crate::checkpoints::link_or_copy(&from.join(WEIGHTS), &edir.join(WEIGHTS))?,
        }
        let opt_from = match &own_dir {
            Some(own_dir) if !plan.copy_optimizer => own_dir.clone(),
            _ => from.clone(),
        };
        crate::checkpoints::link_or_copy(&opt_from.join(OPTIMIZER), &edir.join(OPTIMIZER))?;
        // The member keeps its own metrics history (up to the epoch it continues from).
        let state_from = own_dir.clone().unwrap_or_else(|| from.clone());
        let mut state: EpochState = read_json(&state_from.join(STATE))?
            .ok_or_else(|| Error::Data(format!("{}: no {STATE}", state_from.display())))?;
        state.epoch = e;
        state.metrics.retain(|m| m.epoch <= e);
        state.weights_sha256 = file_sha256(&edir.join(WEIGHTS))?;
        state.optimizer_sha256 = file_sha256(&edir.join(OPTIMIZER))?;
        write_json(&edir.join(STATE), &state)?;
        copy_epoch_state(&staging, &tdir.join("state"), e)?;
        for d in [staging, from] {
            remove_dir_if_exists(&d)?;
        }
        if let Some(d) = own_dir {
            remove_dir_if_exists(&d)?;
        }
        Ok(())
    }

    fn discard(&self, ckpt: &CheckpointRef) -> Result<()> {
        self.checkpoints.delete(&ckpt.path)
    }

    fn log(&self, line: &str) {
        self.progress.log(&format!("{}: {line}", self.label));
    }
}

/// Names of the non-trainable variables (BatchNorm statistics...) of the model `spec`
/// trains, as its state files name them.
pub fn buffer_names(spec: &TrainSpec, data: &Dataset) -> Result<BTreeSet<String>> {
    // With several trained roles the state names carry role prefixes: buffers are then
    // copied with the weights.
    let trained: Vec<&trainer::RoleSpec> = spec.roles.iter().filter(|r| r.trainable).collect();
    let [only] = trained.as_slice() else {
        return Ok(BTreeSet::new());
    };
    let trainer::ModelSource::Config(entry) = &only.model else {
        return Ok(BTreeSet::new());
    };
    let built = trainer::build_model(entry, &trainer::spec_of(data), Device::Cpu, Seed(0))?;
    Ok(built
        .vs
        .variables()
        .into_iter()
        .filter(|(_, t)| !t.requires_grad())
        .map(|(n, _)| n)
        .collect())
}
