//! rolekd-kd: the built-in loss terms (supervised and distillation).
//!
//! Each term computes one unweighted scalar; the stage multiplies it by its `weight:`.
//!
//! - [`ce`] — `ce`
//! - [`kd`] — `kd` (Hinton et al. 2015)

pub mod ce;
pub mod kd;
pub mod util;

/// Called by the binary so the linker keeps this crate's plugin registrations.
pub fn link() {}

#[cfg(test)]
mod tests;
