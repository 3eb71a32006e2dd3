//! Augmentation policies (kind `augmentation policy`).

pub mod finish;
pub mod standard;
