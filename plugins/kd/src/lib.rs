//! rolekd-kd: the built-in loss terms (supervised and distillation).
//!
//! Each term computes one unweighted scalar; the stage multiplies it by its `weight:`.
//! Feature losses take `features:` (stage names from the models, or
//! `{student: .., teacher: ..}` pairs, or `logits`) and check them against both models'
//! stages when they are built (see [`util::resolve_taps`]). Learnable parts (connectors,
//! regressors, embeddings, memory banks) live under the loss's path in the student's
//! VarStore, so they are optimised and checkpointed with the student.
//!
//! Logits: [`ce`], [`kd`], [`dkd`], [`dist`], [`logits`].
//! Features: [`fitnet`], [`at`], [`nst`], [`sp`], [`pkt`], [`cc`], [`rkd`], [`vid`],
//! [`ab`], [`fsp`], [`ft`], [`crd`], [`ickd`], [`svd`] (`kd-svd`, `mhgd`).

// Hand computations in the tests read best as index loops.
#![cfg_attr(test, allow(clippy::needless_range_loop))]

pub mod ab;
pub mod at;
pub mod cc;
pub mod ce;
pub mod crd;
pub mod dist;
pub mod dkd;
pub mod fitnet;
pub mod fsp;
pub mod ft;
pub mod ickd;
pub mod kd;
pub mod logits;
pub mod nst;
pub mod pkt;
mod prelude;
pub mod rkd;
pub mod sp;
pub mod svd;
pub mod util;
pub mod vid;

/// Called by the binary so the linker keeps this crate's plugin registrations.
pub fn link() {}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;
