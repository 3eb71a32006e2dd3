//! The search's coordination, written against [`PopulationStore`] only.
//!
//! A worker loops: claim a runnable member (a lease in the store), apply an exploit the
//! store holds for it (copy the donor's published state), train it to its next
//! perturbation point, publish that state as an immutable checkpoint, and report. The
//! report is one transaction: check the lease is still ours, record the rewards and the
//! checkpoint, and decide:
//!
//! - `sync: true`: once every member has reported this epoch, rank them all and apply the
//!   strategy's decisions (exploit rows, new genes, lineage, log), drawing from a stream of
//!   the seed and the epoch. Nobody trains past a perturbation point before the decision
//!   there, so a seeded search gives the same decisions whatever the number of workers,
//!   their timing, or a kill and restart.
//! - `sync: false`: rank the reporter among the members within `slack` epochs of it (their
//!   latest rewards) and decide for the reporter alone, at once (PBT's asynchronous mode;
//!   the result then depends on timing).
//!
//! A kill at any moment loses at most the unreported training of the members that were
//! being trained: on restart every lease is dropped (the run directory's lock guarantees
//! no other process is using the store), training resumes from each member's saved state,
//! and an exploit that was decided but not applied is applied again (idempotently).
//!
//! Training states need no shared file system: a member's published state (or, after an
//! exploit, the state the exploit gave it, published before the exploit is marked applied)
//! is where any worker continues it from ([`Population::resume_point`]); a worker's own
//! saved state is used only when it is that state or descends from it.

use crate::lineage::{inherit_log, Lineage, PbaLogLine};
use crate::space::check_genes;
use crate::store::{
    transact, CheckpointRef, Event, Lease, Member, Pending, PopulationStore, ResultRow, Status,
    StoreTx,
};
use rolekd_core::plugin::search::{
    DecideCtx, Decision, MemberScore, PolicySpace, SearchPlan, SearchStrategy,
};
use rolekd_core::rng::Seed;
use rolekd_core::{Error, Result};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The store's format tag.
pub const FORMAT: &str = "rolekd-population/1";

/// How a search runs.
#[derive(Clone, Debug)]
pub struct SearchConfig {
    /// The trial's epochs.
    pub epochs: usize,
    pub plan: SearchPlan,
    pub sync: bool,
    /// `sync: false`: rank among members within this many epochs of the reporter.
    pub slack: usize,
    /// How long a claim holds without renewal.
    pub lease: Duration,
    /// The search's random stream (`stage seed / "search"`): member `k`'s initial policy
    /// draws from `seed / k / "initial"`, decisions at epoch `e` from `seed / "decide" / e`.
    pub seed: Seed,
    /// The strategy's name, for errors.
    pub strategy_name: String,
}

/// A population search over a store.
pub struct Population<'a> {
    pub store: &'a dyn PopulationStore,
    pub strategy: &'a dyn SearchStrategy,
    pub space: &'a dyn PolicySpace,
    pub cfg: SearchConfig,
    /// Search seconds spent by earlier sessions (read by [`Population::init`]).
    wall_base: f64,
    started: Instant,
}

/// What [`Population::claim`] found.
#[derive(Clone, Debug, PartialEq)]
pub enum Claim {
    /// This member is ours to train until its next perturbation point.
    Member(Member),
    /// Nothing runnable now (members wait for a perturbation point or are leased).
    Wait,
    /// Every member has trained all epochs.
    Finished,
}

/// What [`Population::report`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum Reported {
    /// Recorded; `exploits` members were told to copy a donor.
    Recorded { exploits: usize },
    /// The lease had passed to another worker: nothing recorded.
    LostLease,
}

/// Everything the store knows, for outputs.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub members: Vec<Member>,
    pub results: Vec<ResultRow>,
    pub events: Vec<Event>,
    pub wall_seconds: f64,
}

impl Snapshot {
    /// The reward of `member` after `epoch` epochs (its latest row for that epoch).
    pub fn reward_at(&self, member: usize, epoch: usize) -> Option<f64> {
        reward_at(&self.results, member, epoch)
    }

    /// The member with the best final reward (ties: the lower id).
    pub fn best(&self, epochs: usize) -> Option<usize> {
        let rewards: Vec<f64> = self
            .members
            .iter()
            .map(|m| self.reward_at(m.id, epochs).unwrap_or(f64::NAN))
            .collect();
        crate::strategy::ranking(&rewards)
            .first()
            .map(|&i| self.members[i].id)
    }
}

/// The mean of `member`'s rewards over the `window` epochs ending at `epoch` (the epochs it
/// has a reward for), or None when it has none at `epoch`.
fn windowed_reward(
    results: &[ResultRow],
    member: usize,
    epoch: usize,
    window: usize,
) -> Option<f64> {
    let last = reward_at(results, member, epoch)?;
    let rewards: Vec<f64> = (epoch.saturating_sub(window.max(1)) + 1..epoch)
        .filter_map(|e| reward_at(results, member, e))
        .chain(std::iter::once(last))
        .collect();
    Some(rewards.iter().sum::<f64>() / rewards.len() as f64)
}

fn reward_at(results: &[ResultRow], member: usize, epoch: usize) -> Option<f64> {
    results
        .iter()
        .rev()
        .find(|r| r.member == member && r.epoch == epoch)
        .map(|r| r.reward)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Whether `owner` holds a live lease on `m` at the store's time `now`. This is the fence:
/// a worker that stalled past its lease (a paused VM, a stopped process) may still be
/// running, but from the moment the lease expired nothing it reports is recorded, even if
/// nobody has claimed the member since, so two workers can never both publish one step.
fn holds(m: &Member, owner: &str, now: i64) -> bool {
    m.lease
        .as_ref()
        .is_some_and(|l| l.owner == owner && l.expires_ms >= now)
}

/// What the store says about an earlier session, for the log.
#[derive(Clone, Debug, PartialEq)]
pub struct Resumed {
    pub members_done: usize,
    pub results: usize,
    pub leases_dropped: usize,
}

impl<'a> Population<'a> {
    pub fn new(
        store: &'a dyn PopulationStore,
        strategy: &'a dyn SearchStrategy,
        space: &'a dyn PolicySpace,
        cfg: SearchConfig,
    ) -> Self {
        Population {
            store,
            strategy,
            space,
            cfg,
            wall_base: 0.0,
            started: Instant::now(),
        }
    }

    /// The epoch a member at `epoch` trains to next.
    pub fn next_stop(&self, epoch: usize) -> usize {
        let i = self.cfg.plan.interval.max(1);
        ((epoch / i + 1) * i).min(self.cfg.epochs)
    }

    /// Creates the population (initial genes from the strategy) or, when the store holds
    /// one, checks it was made for this search and, with `reclaim`, drops every lease (when
    /// this process alone trains the search: it holds the run directory, so no earlier
    /// worker is alive; with workers in other processes their leases stay and expire on
    /// their own). `Some` when resuming.
    pub fn init(&mut self, reclaim: bool) -> Result<Option<Resumed>> {
        let cfg = self.cfg.clone();
        let (strategy, space) = (self.strategy, self.space);
        let shape = format!(
            "population {}, interval {}, epochs {}, sync {}, {} genes",
            cfg.plan.population,
            cfg.plan.interval,
            cfg.epochs,
            cfg.sync,
            space.gene_count()
        );
        let (resumed, wall) = transact(self.store, |tx| {
            let wall: f64 = tx
                .meta("wall_seconds")?
                .and_then(|w| w.parse().ok())
                .unwrap_or(0.0);
            match tx.meta("format")? {
                Some(f) => {
                    if f != FORMAT {
                        return Err(Error::Data(format!(
                            "population store of format `{f}`, expected `{FORMAT}`"
                        )));
                    }
                    let was = tx.meta("shape")?.unwrap_or_default();
                    if was != shape {
                        return Err(Error::Data(format!(
                            "the population store was made for a search with {was}, this one has {shape}; rerun with --force on this stage"
                        )));
                    }
                    let mut dropped = 0;
                    let members = tx.members()?;
                    for mut m in members.clone().into_iter().filter(|_| reclaim) {
                        if m.lease.take().is_some() {
                            dropped += 1;
                            tx.put_member(&m)?;
                        }
                    }
                    let resumed = Resumed {
                        members_done: members.iter().filter(|m| m.status == Status::Done).count(),
                        results: tx.results()?.len(),
                        leases_dropped: dropped,
                    };
                    Ok((Some(resumed), wall))
                }
                None => {
                    for k in 0..cfg.plan.population {
                        let mut rng = cfg.seed.index(k as u64).child("initial").rng();
                        let genes = strategy.initial(k, space, &mut rng)?;
                        check_genes(space, &genes).map_err(|e| {
                            Error::Invalid(format!(
                                "search strategy `{}`: initial policy of member {k}: {e}",
                                cfg.strategy_name
                            ))
                        })?;
                        tx.put_member(&Member {
                            id: k,
                            log: vec![PbaLogLine::start(k, &genes)],
                            lineage: Lineage::new(genes.clone()),
                            genes,
                            epoch: 0,
                            status: Status::Ready,
                            lease: None,
                            pending: None,
                        })?;
                    }
                    tx.set_meta("format", FORMAT)?;
                    tx.set_meta("shape", &shape)?;
                    Ok((None, 0.0))
                }
            }
        })?;
        self.wall_base = wall;
        self.started = Instant::now();
        Ok(resumed)
    }

    /// Search seconds so far, earlier sessions included.
    pub fn wall_seconds(&self) -> f64 {
        self.wall_base + self.started.elapsed().as_secs_f64()
    }

    /// Claims the runnable member with the fewest epochs (then the lowest id) for `owner`.
    pub fn claim(&self, owner: &str) -> Result<Claim> {
        self.claim_only(owner, None)
    }

    /// [`Population::claim`] restricted to member `only` when given (`Finished` once that
    /// member is done).
    pub fn claim_only(&self, owner: &str, only: Option<usize>) -> Result<Claim> {
        let (epochs, lease) = (self.cfg.epochs, self.cfg.lease);
        transact(self.store, |tx| {
            let now = tx.now_ms()?;
            let members = tx.members()?;
            if only.is_some_and(|i| !members.iter().any(|m| m.id == i)) {
                return Err(Error::Invalid(format!(
                    "member {} does not exist (population {})",
                    only.unwrap_or_default(),
                    members.len()
                )));
            }
            if members
                .iter()
                .filter(|m| only.is_none_or(|i| m.id == i))
                .all(|m| m.status == Status::Done)
            {
                return Ok(Claim::Finished);
            }
            let pick = members
                .iter()
                .filter(|m| {
                    only.is_none_or(|i| m.id == i)
                        && m.status == Status::Ready
                        && m.epoch < epochs
                        && m.lease.as_ref().is_none_or(|l| l.expires_ms < now)
                })
                .min_by_key(|m| (m.epoch, m.id));
            let Some(m) = pick else {
                return Ok(Claim::Wait);
            };
            let mut m = m.clone();
            m.lease = Some(Lease {
                owner: owner.to_string(),
                expires_ms: now + lease.as_millis() as i64,
            });
            tx.put_member(&m)?;
            Ok(Claim::Member(m))
        })
    }

    /// Extends `owner`'s lease on `id`; false when it is no longer theirs (taken over, or
    /// expired: an expired lease is never revived, see [`holds`]).
    pub fn renew(&self, id: usize, owner: &str) -> Result<bool> {
        let lease = self.cfg.lease;
        transact(self.store, |tx| {
            let now = tx.now_ms()?;
            let mut m = tx.member(id)?;
            if !holds(&m, owner, now) {
                return Ok(false);
            }
            m.lease = Some(Lease {
                owner: owner.to_string(),
                expires_ms: now + lease.as_millis() as i64,
            });
            tx.put_member(&m)?;
            Ok(true)
        })
    }

    /// Gives `owner`'s lease on `id` back (after a failure or an interrupt).
    pub fn release(&self, id: usize, owner: &str) -> Result<()> {
        transact(self.store, |tx| {
            let mut m = tx.member(id)?;
            if m.lease.as_ref().is_some_and(|l| l.owner == owner) {
                m.lease = None;
                tx.put_member(&m)?;
            }
            Ok(())
        })
    }

    /// The checkpoints a pending exploit copies from: the donor's, and the member's own
    /// (None when it was not published).
    pub fn pending_checkpoints(
        &self,
        id: usize,
        p: &Pending,
    ) -> Result<(CheckpointRef, Option<CheckpointRef>)> {
        transact(self.store, |tx| {
            let all = tx.checkpoints()?;
            let find = |m: usize, e: usize| all.iter().find(|c| c.member == m && c.epoch == e);
            let donor = find(p.donor, p.donor_epoch).cloned().ok_or_else(|| {
                Error::Data(format!(
                    "member {id} is to continue from member {}'s state after epoch {}, but the store has no such checkpoint",
                    p.donor, p.donor_epoch
                ))
            })?;
            Ok((donor, find(id, p.own_epoch).cloned()))
        })
    }

    fn base_key(id: usize) -> String {
        format!("base/{id}")
    }

    /// The published state `id` continues from after an applied exploit, if any.
    fn base(tx: &mut dyn StoreTx, id: usize) -> Result<Option<CheckpointRef>> {
        Ok(tx
            .meta(&Self::base_key(id))?
            .filter(|t| !t.is_empty())
            .and_then(|t| serde_json::from_str(&t).ok()))
    }

    /// Marks `id`'s pending exploit as applied to its training state, published as `base`
    /// (kept apart from its own checkpoints, which other exploits may still copy): a worker
    /// that takes the member over later, on any machine, continues from it.
    pub fn applied(&self, id: usize, owner: &str, base: Option<&CheckpointRef>) -> Result<bool> {
        transact(self.store, |tx| {
            let now = tx.now_ms()?;
            let mut m = tx.member(id)?;
            if !holds(&m, owner, now) {
                return Ok(false);
            }
            m.pending = None;
            tx.put_member(&m)?;
            if let Some(b) = base {
                tx.set_meta(
                    &Self::base_key(id),
                    &serde_json::to_string(b).expect("serialises"),
                )?;
            }
            Ok(true)
        })
    }

    /// The published state member `id` continues from at `epoch`: the one an exploit left
    /// it, else its own; None before its first report.
    pub fn resume_point(&self, id: usize, epoch: usize) -> Result<Option<CheckpointRef>> {
        transact(self.store, |tx| {
            if let Some(b) = Self::base(tx, id)?.filter(|b| b.epoch == epoch) {
                return Ok(Some(b));
            }
            Ok(tx
                .checkpoints()?
                .into_iter()
                .find(|c| c.member == id && c.epoch == epoch))
        })
    }

    /// Records `owner`'s training of `id` up to `ckpt.epoch` (its per-epoch rewards in
    /// `rows`, its published state in `ckpt`) and decides, all in one transaction.
    pub fn report(
        &self,
        id: usize,
        owner: &str,
        rows: &[ResultRow],
        ckpt: &CheckpointRef,
    ) -> Result<Reported> {
        self.record(id, owner, rows, ckpt.epoch, Some(ckpt))
    }

    /// Records that `id` diverged (a non-finite loss, or a stalled run) while training to epoch `to`: it gets
    /// reward 0 for the epochs it missed, so it ranks last; no state is published. When the
    /// strategy exploits it, it continues from its donor; otherwise it stops (done).
    pub fn report_diverged(&self, id: usize, owner: &str, to: usize) -> Result<Reported> {
        let from = transact(self.store, |tx| Ok(tx.member(id)?.epoch))?;
        let rows: Vec<ResultRow> = (from + 1..=to)
            .map(|epoch| ResultRow {
                member: id,
                epoch,
                reward: 0.0,
                train_acc: 0.0,
                loss: f64::INFINITY,
                seconds: 0.0,
            })
            .collect();
        self.record(id, owner, &rows, to, None)
    }

    fn diverged_key(id: usize) -> String {
        format!("diverged/{id}")
    }

    /// Stops members that diverged at `epoch` and were not given a donor.
    fn stop_diverged(&self, tx: &mut dyn StoreTx, epoch: usize) -> Result<()> {
        for mut m in tx.members()? {
            let diverged = tx.meta(&Self::diverged_key(m.id))?;
            if diverged.as_deref() == Some(&epoch.to_string()) && m.pending.is_none() {
                m.status = Status::Done;
                tx.put_member(&m)?;
            }
        }
        Ok(())
    }

    fn record(
        &self,
        id: usize,
        owner: &str,
        rows: &[ResultRow],
        e: usize,
        ckpt: Option<&CheckpointRef>,
    ) -> Result<Reported> {
        if !rows.iter().any(|r| r.member == id && r.epoch == e) {
            return Err(Error::Invalid(format!(
                "member {id}: no reward for epoch {e}"
            )));
        }
        let wall = self.wall_seconds();
        transact(self.store, |tx| {
            let now = tx.now_ms()?;
            let mut m = tx.member(id)?;
            if !holds(&m, owner, now) {
                return Ok(Reported::LostLease);
            }
            for r in rows {
                tx.add_result(r)?;
            }
            match ckpt {
                Some(c) => tx.put_checkpoint(c)?,
                None => tx.set_meta(&Self::diverged_key(id), &e.to_string())?,
            }
            m.epoch = e;
            m.lease = None;
            m.status = if e >= self.cfg.epochs {
                Status::Done
            } else if self.cfg.sync {
                Status::Waiting
            } else {
                Status::Ready
            };
            tx.put_member(&m)?;
            let exploits = if e >= self.cfg.epochs {
                0
            } else if self.cfg.sync {
                self.decide_sync(tx, e)?
            } else {
                self.decide_async(tx, id, e)?
            };
            if ckpt.is_none() && !self.cfg.sync && e < self.cfg.epochs {
                self.stop_diverged(tx, e)?;
            }
            tx.set_meta("wall_seconds", &wall.to_string())?;
            Ok(Reported::Recorded { exploits })
        })
    }

    /// Drops the checkpoints no one needs any more (older than a member's latest and not
    /// the source of a pending exploit) from the store and returns them for deletion.
    pub fn collect_garbage(&self) -> Result<Vec<CheckpointRef>> {
        transact(self.store, |tx| {
            let members = tx.members()?;
            let all = tx.checkpoints()?;
            let mut latest: BTreeMap<usize, usize> = BTreeMap::new();
            for c in &all {
                let e = latest.entry(c.member).or_insert(c.epoch);
                *e = (*e).max(c.epoch);
            }
            let needed = |c: &CheckpointRef| {
                latest.get(&c.member) == Some(&c.epoch)
                    || members.iter().any(|m| {
                        m.pending.is_some_and(|p| {
                            (p.donor == c.member && p.donor_epoch == c.epoch)
                                || (m.id == c.member && p.own_epoch == c.epoch)
                        })
                    })
            };
            let mut dropped = Vec::new();
            for c in all {
                if !needed(&c) {
                    tx.delete_checkpoint(c.member, c.epoch)?;
                    dropped.push(c);
                }
            }
            // An exploit's result is needed until the member moved past it.
            for m in &members {
                if let Some(b) = Self::base(tx, m.id)? {
                    if b.epoch != m.epoch || m.pending.is_some() {
                        tx.set_meta(&Self::base_key(m.id), "")?;
                        dropped.push(b);
                    }
                }
            }
            Ok(dropped)
        })
    }

    /// Everything the store holds.
    pub fn snapshot(&self) -> Result<Snapshot> {
        let base = self.wall_base;
        let (members, results, events, stored) = transact(self.store, |tx| {
            Ok((
                tx.members()?,
                tx.results()?,
                tx.events()?,
                tx.meta("wall_seconds")?.and_then(|w| w.parse::<f64>().ok()),
            ))
        })?;
        Ok(Snapshot {
            members,
            results,
            events,
            wall_seconds: stored.unwrap_or(base).max(self.wall_seconds()),
        })
    }
}

mod decide;
pub mod work;

#[cfg(test)]
mod tests;
