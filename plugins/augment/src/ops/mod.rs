//! Image operations on [`Image`](rolekd_core::plugin::image::Image)s, as plain functions
//! with Pillow's arithmetic. [`pba`] maps PBA's magnitude levels onto them and
//! [`crate::op_plugins`] registers them as `augmentation op` plugins.

pub mod affine;
pub mod basic;
pub mod enhance;
pub mod pba;
pub mod point;
#[cfg(test)]
mod reference;
mod scratch;

pub use basic::{cutout, cutout_at, flip_lr, pad_crop, pad_crop_at};
