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
//! - [`trials`]: training one member with the core trainer (state, publish, exploit copy).
//! - [`report`]: outputs (schedules, logs, metrics, `rewards.png`, `schedule.png`).

pub mod checkpoints;
pub mod lineage;
pub mod member_scalars;
pub mod population;
pub mod report;
pub mod s3_server;
pub mod space;
pub mod stage;
pub mod store;
pub mod strategy;
pub mod test_servers;
pub mod trials;
pub mod worker;
pub mod worker_spec;

/// Called by the binary so the linker keeps this crate's plugin registrations.
pub fn link() {}
