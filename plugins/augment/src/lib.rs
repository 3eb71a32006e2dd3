//! rolekd-augment: the built-in augmentation plugins.
//!
//! - [`ops`]: image operations as functions, with Pillow's arithmetic (affine, enhance,
//!   point ops, pad-crop, flip, cutout) and PBA's level mapping ([`ops::pba::PbaOp`]).
//! - [`op_plugins`]: the ops registered as `augmentation op` plugins.
//! - [`policy`]: per-role policies (`none`, `standard`, ...).

pub mod op_plugins;
pub mod ops;
pub mod policy;

/// Called by the binary so the linker keeps this crate's plugin registrations.
pub fn link() {}
