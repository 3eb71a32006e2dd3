//! Image operations on [`Image`](rolekd_core::plugin::image::Image)s, as plain functions.
//! [`crate::op_plugins`] wraps them as registered `augmentation op` plugins.

pub mod basic;

pub use basic::{cutout, cutout_at, flip_lr, pad_crop, pad_crop_at};
