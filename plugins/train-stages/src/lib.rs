//! Built-in stage kinds: `train` (a model alone), `distill` (a student from a frozen
//! teacher) and `evaluate` (a checkpoint on the test set). All three run the engine's
//! trainer. [`defaults`]: what a training stage gets for what it leaves out.

pub mod defaults;
mod evaluate;
pub mod training;

/// Keeps this crate's registrations in a binary that links it.
pub fn link() {}
