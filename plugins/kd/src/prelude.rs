//! What every loss module uses: the loss plugin interface, its parameters, tensors, and the
//! helpers that find a loss's feature taps and sum its terms.

pub use crate::util::{
    l2_normalize, need_taps, pool_to, pooled, resolve_taps, same_channels, sum_over_taps,
    sum_terms, tap_pair, teacher, DefaultTaps, FeatureSel, Tap,
};
pub use rolekd_core::config::Params;
pub use rolekd_core::plugin::loss::{Loss, LossCtx, LossInputs};
pub use rolekd_core::{Error, Result};
pub use serde::Deserialize;
pub use tch::{nn, Kind, Tensor};
