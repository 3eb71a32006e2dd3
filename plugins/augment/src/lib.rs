//! rolekd-augment: the built-in augmentation plugins.
//!
//! - [`ops`]: image operations as functions (pad-crop, flip, cutout, PBA's 15 ops with
//!   Pillow's arithmetic).
//! - [`policy`]: per-role policies (`none`, `standard`, ...).

pub mod ops;
pub mod policy;

/// Called by the binary so the linker keeps this crate's plugin registrations.
pub fn link() {}
