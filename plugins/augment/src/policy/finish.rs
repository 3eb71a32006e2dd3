//! The steps that end every per-image policy: pad-and-crop, random flip, cutout.

use crate::ops::basic;
use rand::Rng;
use rolekd_core::config::Params;
use rolekd_core::plugin::augment::PolicyCtx;
use rolekd_core::plugin::image::Image;
use rolekd_core::rng::StreamRng;
use rolekd_core::Result;
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

/// Declares a per-image policy's parameters: its own fields, then the finishing fields
/// every such policy takes (`pad`, `crop_offsets`, `flip`, `cutout`), unknown keys refused
/// (so a misspelt key gets the closest of all of them). Adds `finish()` and
/// `checked_finish(params, ctx)`, which refuses a pad or cutout larger than the images.
macro_rules! params_with_finish {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        $vis struct $name {
            $( $(#[$fmeta])* $fvis $field: $ty, )*
            /// Padding on each side before the random crop, in pixels (padded pixels are
            /// uncovered: they become the dataset mean); 0 turns pad-and-crop off.
            #[serde(default = "crate::policy::finish::default_pad")]
            pub pad: usize,
            /// Crop offsets: `full` (each offset in 0..=2*pad, the usual convention) or
            /// `pba` (0..2*pad, as the original PBA code drew them).
            #[serde(default)]
            pub crop_offsets: $crate::policy::finish::CropOffsets,
            /// Flip left-right with probability 0.5.
            #[serde(default = "crate::policy::finish::default_true")]
            pub flip: bool,
            /// Side of the final cutout square in pixels (16 in AutoAugment's and PBA's
            /// CIFAR-10 runs, 8 in PBA's CIFAR-100 runs); 0 turns cutout off.
            #[serde(default)]
            pub cutout: usize,
        }

        impl $name {
            /// The finishing steps these parameters ask for.
            pub fn finish(&self) -> $crate::policy::finish::Finish {
                $crate::policy::finish::Finish {
                    pad: self.pad,
                    crop_offsets: self.crop_offsets,
                    flip: self.flip,
                    cutout: self.cutout,
                }
            }

            /// [`Self::finish`], with a pad or cutout larger than `ctx`'s images refused.
            pub fn checked_finish(
                &self,
                params: &rolekd_core::config::Params,
                ctx: &rolekd_core::plugin::augment::PolicyCtx,
            ) -> rolekd_core::Result<$crate::policy::finish::Finish> {
                $crate::policy::finish::check_sizes(params, ctx, self.pad, self.cutout)?;
                Ok(self.finish())
            }
        }
    };
}
pub(crate) use params_with_finish;

/// Refuses a pad or cutout larger than the images.
pub(crate) fn check_sizes(
    params: &Params,
    ctx: &PolicyCtx,
    pad: usize,
    cutout: usize,
) -> Result<()> {
    let side = ctx.width.max(ctx.height);
    if side > 0 && pad > side {
        return Err(params
            .child_error(
                "pad",
                format!("pad {pad} is larger than the {side}-pixel images"),
            )
            .into());
    }
    if side > 0 && cutout > 2 * side {
        return Err(params
            .child_error(
                "cutout",
                format!("cutout {cutout} is larger than twice the {side}-pixel images"),
            )
            .into());
    }
    Ok(())
}
