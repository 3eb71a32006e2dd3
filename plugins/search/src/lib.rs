//! rolekd-search: population search over augmentation policies (Population Based
//! Augmentation, Ho et al. 2019), as the `search` stage kind.
//!
//! - [`stage`]: the `search` stage (params, data re-split, workers, outputs).
//! - [`population`]: the store-agnostic coordination: claim a member with a lease, train
//!   it to the next perturbation point, report, and decide exploit/explore in one
//!   transaction; resume after a kill.
//! - [`store`]: the [`store::PopulationStore`] trait, its embedded SQLite implementation
//!   (`population.sqlite`) and a PostgreSQL one for workers on several machines.
//! - [`worker`]: a worker process joining a search through the store alone.
//! - [`strategy`]: the `pba`, `random` and `grid` search-strategy plugins.
//! - [`space`]: policy spaces a search can explore (PBA's 60 genes).
//! - [`lineage`]: a member's chain of policies, its schedule, and PBA-compatible logs.
//! - [`trials`]: training one member with the engine's trainer (state, publish, exploit
//!   copy).
//! - [`report`]: outputs (schedules, logs, metrics, `rewards.png`, `schedule.png`).
//!
//! The `cluster` feature (on by default) adds what workers on several machines need: the
//! PostgreSQL population store and S3 checkpoint stores (the `postgres`, `object_store`
//! and `tokio` crates, about half of the binary's dependencies). Without it a search runs
//! on one machine: SQLite, the stage directory or a `file://` checkpoint store.

pub mod checkpoints;
pub mod lineage;
pub mod member_scalars;
pub mod population;
pub mod report;
pub mod space;
pub mod stage;
pub mod store;
pub mod strategy;
pub mod trials;
pub mod worker;
pub mod worker_spec;

/// Called by the binary so the linker keeps this crate's plugin registrations.
pub fn link() {}

/// What is wrong with a cluster store named in a build without the `cluster` feature.
#[cfg(not(feature = "cluster"))]
pub(crate) fn without_cluster(what: &str) -> String {
    format!(
        "{what}: this rolekd-run was built without the `cluster` feature (PostgreSQL and S3 \
         stores); rebuild with default features, or use an SQLite store and a file:// or \
         stage-directory checkpoint store"
    )
}
