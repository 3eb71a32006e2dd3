//! rolekd-core: the plugin API of rolekd, what every plugin crate builds on.
//!
//! - [`plugin`]: the traits every plugin kind implements (dataset, model, augmentation op
//!   and policy, loss, search strategy, optimizer, LR schedule, stage kind).
//! - [`registry`]: one table per kind, filled by [`register_plugin!`] and, through the
//!   engine, by dynamic libraries alike; [`dynamic`]: what a `cdylib` plugin exports
//!   ([`export_plugins!`]) and the build fingerprint the host checks.
//! - [`config`]: pipeline YAML with located errors; [`error`]: the one error type.
//! - The types plugins and stages exchange: [`rng`] (seeds and streams), [`role`] (what a
//!   stage reports of its roles), [`layout`] (channels-last), [`precision`] (fp32/bf16),
//!   [`progress`] (the terminal), [`artifact`] (references between stages), [`files`]
//!   (atomic writes).
//!
//! The runtime (graph, trainer, checkpoints, plugin loading) is rolekd-engine. The core
//! knows no concrete op, loss, model or dataset.

pub mod artifact;
pub mod config;
pub mod dynamic;
pub mod error;
pub mod files;
pub mod layout;
pub mod plugin;
pub mod precision;
pub mod progress;
pub mod registry;
pub mod rng;
pub mod role;

pub use error::{Error, Result};
pub use inventory;
pub use serde_yaml_ng as yaml;
pub use tch;
