//! rolekd-core: the runtime of rolekd.
//!
//! - [`plugin`]: the traits every plugin kind implements (dataset, model, augmentation op
//!   and policy, loss, search strategy, optimizer, LR schedule, stage kind).
//! - [`registry`]: one table per kind, filled by [`register_plugin!`] and by dynamic
//!   libraries alike.
//! - [`config`]: pipeline YAML with located errors; [`artifact`]: references between stages.
//! - [`graph`] and [`runtime`]: the experiment graph, checked, ordered, cached and run.
//! - [`trainer`]: the one training loop behind every stage kind; [`rundir`]: atomic files.
//!
//! The core knows no concrete op, loss, model or dataset.

pub mod artifact;
pub mod checkpoint;
pub mod config;
pub mod dynamic;
pub mod error;
pub mod graph;
pub mod layout;
pub mod pipeline;
pub mod plugin;
pub mod precision;
pub mod progress;
pub mod provenance;
pub mod registry;
pub mod rng;
pub mod role;
pub mod run_metrics;
pub mod rundir;
pub mod runtime;
pub mod tensorboard;
pub mod trainer;

pub use error::{Error, Result};
pub use inventory;
pub use serde_yaml_ng as yaml;
pub use tch;
