//! The layers every model is built from: conv and linear layers that quantise their own
//! weights (DoReFa, see [`crate::quant`]) and record their multiply-accumulates, and a
//! BatchNorm with PyTorch's initialisation.
//!
//! Initialisation (PyTorch's ResNet convention):
//! - conv weights: Kaiming normal, fan-out, ReLU gain (`std = sqrt(2 / (C_out k k))`),
//!   conv biases (where present) zero;
//! - BatchNorm: weight 1, bias 0 (tch's default weight init is U(0, 1): set explicitly);
//! - linear: PyTorch's default, weight and bias uniform in `±1/sqrt(fan_in)`.

use crate::quant::{quantize_weight, FULL_PRECISION};
use std::cell::Cell;
use tch::nn::{self, Init};
use tch::Tensor;

thread_local! {
    static MACS: Cell<Option<i64>> = const { Cell::new(None) };
}

/// Adds `n` multiply-accumulates to the running count, when one is open on this thread.
pub(crate) fn record_macs(n: i64) {
    MACS.with(|m| {
        if let Some(v) = m.get() {
            m.set(Some(v + n))
        }
    })
}

/// Runs `f` with MAC counting open on this thread; returns what the layers recorded.
pub(crate) fn with_mac_counter<T>(f: impl FnOnce() -> T) -> (T, i64) {
    struct Close;
    impl Drop for Close {
        fn drop(&mut self) {
            MACS.with(|m| m.set(None));
        }
    }
    MACS.with(|m| m.set(Some(0)));
    let _close = Close;
    let out = f();
    let n = MACS.with(|m| m.get().unwrap_or(0));
    (out, n)
}

/// A 2-D convolution (no bias by default), weight quantised to `bits` on the fly.
#[derive(Debug)]
pub struct Conv {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    stride: i64,
    padding: i64,
    groups: i64,
    bits: u32,
}

/// Options of a [`Conv`].
#[derive(Clone, Copy, Debug)]
pub struct ConvOpts {
    pub stride: i64,
    pub padding: i64,
    pub groups: i64,
    pub bias: bool,
    pub bits: u32,
}

impl Default for ConvOpts {
    fn default() -> Self {
        ConvOpts {
            stride: 1,
            padding: 0,
            groups: 1,
            bias: false,
            bits: FULL_PRECISION,
        }
    }
}

impl Conv {
    pub fn new(vs: &nn::Path, c_in: i64, c_out: i64, k: i64, o: ConvOpts) -> Conv {
        let weight = vs.var(
            "weight",
            &[c_out, c_in / o.groups, k, k],
            Init::Kaiming {
                dist: nn::init::NormalOrUniform::Normal,
                fan: nn::init::FanInOut::FanOut,
                non_linearity: nn::init::NonLinearity::ReLU,
            },
        );
        let bias = o.bias.then(|| vs.var("bias", &[c_out], Init::Const(0.0)));
        Conv {
            weight,
            bias,
            stride: o.stride,
            padding: o.padding,
            groups: o.groups,
            bits: o.bits,
        }
    }

    /// A 3x3 conv, padding 1.
    pub fn k3(vs: &nn::Path, c_in: i64, c_out: i64, stride: i64, bits: u32) -> Conv {
        let o = ConvOpts {
            stride,
            padding: 1,
            bits,
            ..ConvOpts::default()
        };
        Conv::new(vs, c_in, c_out, 3, o)
    }

    /// A 1x1 conv, no padding.
    pub fn k1(vs: &nn::Path, c_in: i64, c_out: i64, stride: i64, bits: u32) -> Conv {
        let o = ConvOpts {
            stride,
            bits,
            ..ConvOpts::default()
        };
        Conv::new(vs, c_in, c_out, 1, o)
    }

    pub fn forward(&self, xs: &Tensor) -> Tensor {
        let w = quantize_weight(&self.weight, self.bits);
        let y = xs.conv2d(
            &w,
            self.bias.as_ref(),
            [self.stride, self.stride],
            [self.padding, self.padding],
            [1, 1],
            self.groups,
        );
        let ws = self.weight.size();
        let ys = y.size();
        // per image: H_out W_out C_out (C_in / groups) k_h k_w
        record_macs(ys[1] * ys[2] * ys[3] * ws[1] * ws[2] * ws[3]);
        y
    }
}

/// A fully connected layer, weight quantised to `bits` on the fly (the bias stays as is).
#[derive(Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Tensor,
    bits: u32,
}

impl Linear {
    pub fn new(vs: &nn::Path, c_in: i64, c_out: i64, bits: u32) -> Linear {
        let bound = 1.0 / (c_in as f64).sqrt();
        let init = Init::Uniform {
            lo: -bound,
            up: bound,
        };
        Linear::with_init(vs, c_in, c_out, bits, [init, init])
    }

    /// A linear layer whose weight and bias start from `[weight, bias]` (a model that
    /// follows a reference implementation's init rather than PyTorch's default).
    pub fn with_init(vs: &nn::Path, c_in: i64, c_out: i64, bits: u32, init: [Init; 2]) -> Linear {
        Linear {
            weight: vs.var("weight", &[c_out, c_in], init[0]),
            bias: vs.var("bias", &[c_out], init[1]),
            bits,
        }
    }

    pub fn forward(&self, xs: &Tensor) -> Tensor {
        let w = quantize_weight(&self.weight, self.bits);
        let ws = self.weight.size();
        record_macs(ws[0] * ws[1]);
        xs.linear(&w, Some(&self.bias))
    }
}

/// BatchNorm2d with weight 1 and bias 0, eps 1e-5, momentum 0.1 (PyTorch's defaults).
pub fn bn2d(vs: &nn::Path, c: i64) -> nn::BatchNorm {
    nn::batch_norm2d(
        vs,
        c,
        nn::BatchNormConfig {
            ws_init: Init::Const(1.0),
            bs_init: Init::Const(0.0),
            ..Default::default()
        },
    )
}

/// Global average pooling to `[B, C]`.
pub fn global_avg_pool(xs: &Tensor) -> Tensor {
    xs.adaptive_avg_pool2d([1, 1]).flatten(1, -1)
}
