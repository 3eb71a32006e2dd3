//! rolekd-models: the built-in model zoo.
//!
//! Every model returns logits and named per-stage features (`stage1`, `stage2`, ...) for
//! feature-distillation losses, and honours the role's DoReFa [`QuantSpec`]
//! (see [`quant`]).
//!
//! - [`small_cnn`] — `small-cnn`
//! - [`resnet_cifar`] — `resnet-cifar`, the named CIFAR ResNets `resnet8`, `resnet14`,
//!   `resnet20`, `resnet32`, `resnet44`, `resnet56`, `resnet110`, `resnet8x4`,
//!   `resnet32x4` (fixed depth and width, no parameters), `resnet18-cifar`, and `resnet18`
//!   (torchvision's layout, ImageNet stem)
//! - [`wrn`] — `wrn`; [`vgg`] — `vgg-cifar`; [`mobilenetv2`] — `mobilenetv2-cifar`;
//!   [`shufflenetv2`] — `shufflenetv2-cifar`
//! - [`layers`] — quantising conv / linear layers with PyTorch's inits, MAC recording
//! - [`param_count`], [`count_macs`] — numbers for the `rolekd-run models` table
//!
//! [`QuantSpec`]: rolekd_core::plugin::model::QuantSpec

pub mod layers;
pub mod mobilenetv2;
pub mod quant;
pub mod resnet_cifar;
pub mod shufflenetv2;
pub mod small_cnn;
pub mod vgg;
pub mod wrn;

use rolekd_core::config::Params;
use rolekd_core::plugin::model::{Model, ModelSpec};
use rolekd_core::Result;
use tch::{nn, Device, Kind, Tensor};

/// Called by the binary so the linker keeps this crate's plugin registrations.
pub fn link() {}

/// The number of trainable scalars in a VarStore (BatchNorm running statistics excluded).
pub fn param_count(vs: &nn::VarStore) -> i64 {
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}

/// Multiply-accumulates of one forward pass on one image of the spec's shape.
///
/// Measured, not derived: the model runs (eval mode, no grad) on a single zero image
/// while this crate's [`layers::Conv`] and [`layers::Linear`] record
/// `H_out W_out C_out C_in/groups k k` and `in out` MACs. BatchNorm, activations, pooling
/// and additions are not counted. A model built from other layers reports 0.
pub fn count_macs(model: &dyn Model, spec: &ModelSpec, device: Device) -> i64 {
    let xs = Tensor::zeros(
        [1, spec.in_channels, spec.height, spec.width],
        (Kind::Float, device),
    );
    let (_, macs) = layers::with_mac_counter(|| tch::no_grad(|| model.forward(&xs, false)));
    macs
}

/// What the `rolekd-run models` table shows for one model.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSummary {
    /// Trainable parameters.
    pub params: i64,
    /// Multiply-accumulates per image (see [`count_macs`]).
    pub macs: i64,
    /// Feature taps and their shapes `[1, C, H, W]` for one image.
    pub features: Vec<(String, Vec<i64>)>,
}

/// Builds a registered model on the CPU (any model plugin, not only this crate's) and
/// measures it.
pub fn summarize(name: &str, params: &Params, spec: &ModelSpec) -> Result<ModelSummary> {
    let factory = rolekd_core::registry::model(name)
        .map_err(|e| rolekd_core::Error::Invalid(e.to_string()))?;
    let vs = nn::VarStore::new(Device::Cpu);
    let model = factory(params, spec, &vs.root())?;
    let xs = Tensor::zeros(
        [1, spec.in_channels, spec.height, spec.width],
        (Kind::Float, Device::Cpu),
    );
    let (out, macs) = layers::with_mac_counter(|| tch::no_grad(|| model.forward(&xs, false)));
    Ok(ModelSummary {
        params: param_count(&vs),
        macs,
        features: out
            .features
            .iter()
            .map(|(n, t)| (n.clone(), t.size()))
            .collect(),
    })
}

#[cfg(test)]
mod tests;
