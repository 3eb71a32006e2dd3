//! What a population store holds (members, leases, pending trials, results, exploit
//! events, checkpoint references) and the two traits a backend implements.

use crate::lineage::{Lineage, PbaLogLine};
use rolekd_core::Result;
use serde::{Deserialize, Serialize};

/// Where a member is in the search.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Can be claimed and trained to its next perturbation point.
    Ready,
    /// Reported at a perturbation point; waits until every member has (sync mode).
    Waiting,
    /// Trained all epochs.
    Done,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ready => "ready",
            Status::Waiting => "waiting",
            Status::Done => "done",
        }
    }

    pub fn from_label(s: &str) -> Option<Status> {
        [Status::Ready, Status::Waiting, Status::Done]
            .into_iter()
            .find(|k| k.label() == s)
    }
}

/// A worker's claim on a member, valid until `expires_ms` (Unix milliseconds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub owner: String,
    pub expires_ms: i64,
}

/// An exploit decided but not yet applied to the member's training state: continue from
/// `donor`'s checkpoint after `donor_epoch` epochs; `own_epoch` is the member's own
/// checkpoint it reported, which it keeps its optimizer state or buffers from when the
/// plan copies only the donor's weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub donor: usize,
    pub donor_epoch: usize,
    pub own_epoch: usize,
}

/// One member of the population.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub id: usize,
    /// The policy it trains with now.
    pub genes: Vec<i64>,
    /// Epochs of training its state holds (published), or, with an exploit pending, the
    /// epoch it continues from.
    pub epoch: usize,
    pub status: Status,
    pub lease: Option<Lease>,
    pub pending: Option<Pending>,
    /// The chain of policies it inherited and explored, with the epochs they took effect.
    pub lineage: Lineage,
    /// Its PBA log (`pbt_policy_<id>.txt`), one line per ancestor exploit.
    pub log: Vec<PbaLogLine>,
}

/// A member's validation reward after some epoch (one row per trained epoch).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    pub member: usize,
    pub epoch: usize,
    pub reward: f64,
    pub train_acc: f64,
    pub loss: f64,
    pub seconds: f64,
}

/// An exploit: `member` (reward `reward` at `epoch`) continues from `donor`'s state after
/// `donor_epoch` epochs (reward `donor_reward`), with `new_genes` explored from the donor's
/// `donor_genes`; `old_genes` were the member's own.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: i64,
    pub member: usize,
    pub donor: usize,
    pub epoch: usize,
    pub donor_epoch: usize,
    pub old_genes: Vec<i64>,
    pub donor_genes: Vec<i64>,
    pub new_genes: Vec<i64>,
    pub reward: f64,
    pub donor_reward: f64,
}

/// A published, immutable training state of `member` after `epoch` epochs; `path` is
/// relative to the stage directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRef {
    pub member: usize,
    pub epoch: usize,
    pub path: String,
}

/// Reads and writes inside one transaction.
pub trait StoreTx {
    /// The store's clock (Unix milliseconds), which leases are measured against: with
    /// workers on several machines only one clock may decide when a lease expired, and the
    /// database's is the one they all share.
    fn now_ms(&mut self) -> Result<i64>;
    fn meta(&mut self, key: &str) -> Result<Option<String>>;
    fn set_meta(&mut self, key: &str, value: &str) -> Result<()>;
    /// Every member, by id.
    fn members(&mut self) -> Result<Vec<Member>>;
    fn member(&mut self, id: usize) -> Result<Member>;
    /// Inserts or replaces a member.
    fn put_member(&mut self, m: &Member) -> Result<()>;
    fn add_result(&mut self, r: &ResultRow) -> Result<()>;
    /// Every result row, in insertion order.
    fn results(&mut self) -> Result<Vec<ResultRow>>;
    /// Records an event (its `seq` is assigned by the store).
    fn add_event(&mut self, e: &Event) -> Result<()>;
    /// Every event, in order.
    fn events(&mut self) -> Result<Vec<Event>>;
    /// Inserts or replaces a checkpoint reference.
    fn put_checkpoint(&mut self, c: &CheckpointRef) -> Result<()>;
    fn checkpoints(&mut self) -> Result<Vec<CheckpointRef>>;
    fn delete_checkpoint(&mut self, member: usize, epoch: usize) -> Result<()>;
    /// Deletes the whole population (meta included): a stage redone from scratch must not
    /// resume a shared store's stale population whose checkpoints are gone.
    fn clear(&mut self) -> Result<()>;
}

/// A store of one population.
pub trait PopulationStore: Send + Sync {
    /// Runs `f` in one transaction: committed when it returns `Ok`, rolled back otherwise.
    fn transaction(&self, f: &mut dyn FnMut(&mut dyn StoreTx) -> Result<()>) -> Result<()>;
}

/// [`PopulationStore::transaction`] with a return value.
pub fn transact<T>(
    store: &dyn PopulationStore,
    mut f: impl FnMut(&mut dyn StoreTx) -> Result<T>,
) -> Result<T> {
    let mut out = None;
    store.transaction(&mut |tx| {
        out = Some(f(tx)?);
        Ok(())
    })?;
    Ok(out.expect("a committed transaction ran its closure"))
}
