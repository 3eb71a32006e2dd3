//! Augmentation policies (kind `augmentation policy`): `none`, `standard`, `pba`,
//! `pba-schedule`, `autoaugment-cifar10`, `randaugment`, `trivialaugment`, `mixup`,
//! `cutmix`.

pub mod auto;
pub mod finish;
pub mod mix;
pub mod pba;
pub mod standard;
