//! The steps that end every per-image policy: pad-and-crop, random flip, cutout.

use crate::ops::basic;
use rand::Rng;
use rolekd_core::plugin::image::Image;
use rolekd_core::rng::StreamRng;
use serde::Deserialize;

/// Which crop offsets pad-and-crop draws.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CropOffsets {
    /// Each offset uniform in `0..=2*pad` (the usual convention: every shift of at most
    /// `pad` pixels, the unshifted crop in the middle).
    #[default]
    Full,
    /// Each offset uniform in `0..2*pad` (the original PBA code: `randint(0, 2*pad)`, which
    /// never shifts by +pad).
    Pba,
}

/// Pad-crop, flip and cutout settings, in the order they are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Finish {
    pub pad: usize,
    pub crop_offsets: CropOffsets,
    pub flip: bool,
    pub cutout: usize,
}

impl Finish {
    /// The largest crop offset drawn.
    pub fn max_offset(&self) -> usize {
        match self.crop_offsets {
            CropOffsets::Full => 2 * self.pad,
            CropOffsets::Pba => (2 * self.pad).saturating_sub(1),
        }
    }

    /// Applies pad-crop (if `pad > 0`), a flip with probability 0.5 (if `flip`), then a
    /// cutout square of side `cutout` (if > 0) whose pixels are marked uncovered.
    pub fn apply(&self, img: &mut Image, rng: &mut StreamRng) {
        // The draws in the order of the steps; the shift and the flip then run as one pass.
        let (mut sx, mut sy) = (0, 0);
        if self.pad > 0 {
            let dx = rng.random_range(0..=self.max_offset());
            let dy = rng.random_range(0..=self.max_offset());
            sx = dx as isize - self.pad as isize;
            sy = dy as isize - self.pad as isize;
        }
        let flip = self.flip && rng.random::<f64>() < 0.5;
        basic::shift(img, sx, sy, flip);
        if self.cutout > 0 {
            basic::cutout(img, self.cutout, &[0], rng);
        }
    }
}

pub(crate) fn default_pad() -> usize {
    4
}

pub(crate) fn default_true() -> bool {
    true
}
