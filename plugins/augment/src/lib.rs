//! rolekd-augment: the built-in augmentation plugins.
//!
//! - [`ops`]: image operations as functions, with Pillow's arithmetic (affine, enhance,
//!   point ops, pad-crop, flip, cutout) and PBA's level mapping ([`ops::pba::PbaOp`]).
//! - [`op_plugins`]: the ops registered as `augmentation op` plugins.
//! - [`policy`]: per-role policies (`none`, `standard`, `pba`, `pba-schedule`,
//!   `autoaugment-cifar10`, `randaugment`, `trivialaugment`, `mixup`, `cutmix`).
//! - [`schedule`]: PBA schedules (JSON, PBA log import, stretch rule, table).
//! - [`space`]: PBA's 60-gene policy space and explore rule.
//! - [`plot`]: schedule plots and preview grids as PNG (no plotting stack).

pub mod op_plugins;
pub mod ops;
pub mod plot;
pub mod policy;
pub mod schedule;
pub mod space;

/// Called by the binary so the linker keeps this crate's plugin registrations.
pub fn link() {}
