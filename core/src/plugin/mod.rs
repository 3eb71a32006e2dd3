//! The plugin traits, one module per plugin kind. A plugin crate implements one of these
//! and registers a factory with [`crate::register_plugin!`]; [`defaults`] is the one hook
//! that is not a kind: what a training stage gets for what it leaves out.

pub mod augment;
pub mod data;
pub mod defaults;
pub mod image;
pub mod loss;
pub mod model;
pub mod optim;
pub mod search;
pub mod stage;
pub mod stream;
