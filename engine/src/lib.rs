//! rolekd-engine: the runtime of rolekd, built on the plugin API of rolekd-core.
//!
//! - [`pipeline`]: a pipeline file read into its top-level settings; [`graph`]: its stages
//!   checked and ordered; [`runtime`]: the graph run, cached and resumed in a run directory
//!   ([`rundir`]: its lock), with [`provenance`] and [`run_metrics`] (`metrics.csv`).
//! - [`trainer`]: the one training loop behind every stage kind, with [`checkpoint`]s,
//!   [`tensorboard`] events and bf16 [`autocast`].
//! - [`dynamic`]: the host side of dynamic plugins (loading `.so` files, ABI checks) into
//!   core's registry.
//!
//! The engine knows no concrete op, loss, model or dataset either: what a stage gets for
//! what it leaves out comes from a plugin crate (see [`trainer::assemble`]).

pub mod autocast;
pub mod checkpoint;
pub mod dynamic;
pub mod graph;
pub mod pipeline;
pub mod provenance;
pub mod run_metrics;
pub mod rundir;
pub mod runtime;
pub mod tensorboard;
pub mod trainer;
