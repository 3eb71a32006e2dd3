//! Augmentation plugins: single ops (kind `augmentation op`) and per-role policies (kind
//! `augmentation policy`).

use super::image::Image;
use crate::config::Params;
use crate::error::Result;
use crate::rng::StreamRng;

/// One image operation at a magnitude level (0..=9, PBA's scale).
pub trait AugmentOp: Send + Sync {
    /// Applies the op. `negate` flips the sign of signed ops (rotate, shear, translate);
    /// unsigned ops ignore it.
    fn apply(&self, img: &mut Image, level: u8, negate: bool, rng: &mut StreamRng);

    /// Whether the op has a sign (a policy flips it with probability 0.5).
    fn signed(&self) -> bool {
        false
    }
}

/// Builds an op from its YAML params (most ops take none).
pub type AugmentOpFactory = fn(&Params) -> Result<Box<dyn AugmentOp>>;

/// Where a policy is being applied.
#[derive(Clone, Copy, Debug)]
pub struct AugmentCtx {
    /// The training epoch (0-based), for schedules.
    pub epoch: usize,
    /// The run's total epochs, for schedules searched over a different length.
    pub epochs: usize,
}

/// A batch of normalised images (NCHW, f32) with soft targets (N x classes), for the
/// batch-level policies (mixup, cutmix).
pub struct MixBatch<'a> {
    pub images: &'a mut [f32],
    pub targets: &'a mut [f32],
    pub shape: [usize; 4],
    pub classes: usize,
}

/// What a role does to each training image. Every image draws its own ops from `rng`,
/// a stream private to that image, role and epoch.
pub trait AugmentPolicy: Send + Sync {
    fn augment(&self, img: &mut Image, ctx: &AugmentCtx, rng: &mut StreamRng);

    /// Batch-level mixing after per-image augmentation. Returns true when it changed the
    /// targets (the losses then see soft targets).
    fn mix_batch(
        &self,
        _batch: &mut MixBatch<'_>,
        _ctx: &AugmentCtx,
        _rng: &mut StreamRng,
    ) -> bool {
        false
    }
}

/// What a policy needs to know when it is built.
#[derive(Clone, Debug)]
pub struct PolicyCtx {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    /// Epochs of the stage that uses the policy (schedules stretch to it).
    pub epochs: usize,
}

/// Builds a policy from its YAML params.
pub type AugmentPolicyFactory = fn(&Params, &PolicyCtx) -> Result<Box<dyn AugmentPolicy>>;
