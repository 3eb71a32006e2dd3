//! A static rolekd plugin crate: plugins registered with `register_plugin!` and linked
//! into a binary next to the built-ins (`src/main.rs`).
//!
//! - loss `logit-mse`: mean squared error between student and teacher logits;
//! - augmentation op `salt-pepper`, and the policy `op-list` that applies a list of ops
//!   (any registered ones, looked up by name) before a base policy (default `standard`).
//!
//! `examples/static-plugin/pipeline.yaml` uses them.

mod logit_mse;
mod op_list;
mod salt_pepper;

/// Called by the binary so the linker keeps this crate (and its registrations).
pub fn link() {}
