//! Memory layout of image tensors. Convolutions on CPU (oneDNN) run markedly faster on
//! channels-last (NHWC) data than on the default NCHW, forward and backward; libtorch picks
//! the layout from the strides, and every op downstream keeps it. A channels-last tensor
//! keeps its NCHW shape, so nothing else changes, except that `view` on it may fail
//! (code here uses `reshape`).

use tch::nn::VarStore;
use tch::Tensor;

/// `t` with channels-last strides when it is 4-D (a batch of images, a conv weight).
/// The strides are set explicitly: with one channel, NCHW and NHWC are the same bytes and
/// a permute-and-copy would keep the NCHW strides, so a grey image batch or a first conv's
/// weight would stay NCHW and every layer after it would switch layouts back and forth.
pub fn channels_last(t: &Tensor) -> Tensor {
    if t.dim() != 4 {
        return t.shallow_clone();
    }
    let s = t.size();
    let (c, h, w) = (s[1], s[2], s[3]);
    let nhwc = t.permute([0, 2, 3, 1]).contiguous();
    nhwc.as_strided(s.as_slice(), [h * w * c, 1, w * c, c], None::<i64>)
}

/// Re-lays every 4-D variable of `vs` (conv weights) channels-last, in place.
pub fn vars_channels_last(vs: &VarStore) {
    tch::no_grad(|| {
        for (_, mut v) in vs.variables() {
            if v.dim() == 4 {
                let cl = channels_last(&v);
                v.set_data(&cl);
            }
        }
    });
}

/// Narrowest channel count of a 1x1 convolution that trains channels-last.
pub const MIN_POINTWISE_CHANNELS: i64 = 16;

/// Whether `vs` holds a 1x1 convolution with fewer than [`MIN_POINTWISE_CHANNELS`] input or
/// output channels. oneDNN's channels-last weight-gradient kernels for such convolutions
/// crash (AVX-512, libtorch 2.11) or hang (AVX2) on some CPUs, so the trainer lays such a
/// model out NCHW instead (docs/reliability.md, known problems).
pub fn has_narrow_pointwise_conv(vs: &VarStore) -> bool {
    vs.variables().values().any(|v| {
        let s = v.size();
        s.len() == 4 && s[2] == 1 && s[3] == 1 && s[0].min(s[1]) < MIN_POINTWISE_CHANNELS
    })
}

/// Whether `t`'s strides are channels-last.
pub fn is_channels_last(t: &Tensor) -> bool {
    t.dim() == 4 && t.stride()[1] == 1 && t.stride()[3] == t.size()[1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn channels_last_keeps_shape_and_values_and_changes_strides() {
        let x = Tensor::randn([2, 3, 4, 5], (Kind::Float, Device::Cpu));
        let y = channels_last(&x);
        assert_eq!(y.size(), x.size());
        assert!(is_channels_last(&y) && !is_channels_last(&x));
        assert_eq!(y.stride(), vec![60, 1, 15, 3]);
        assert!(y.equal(&x));
        // One channel: the strides still say channels-last (libtorch reads the layout
        // from them), and the values are untouched.
        let g = Tensor::randn([2, 1, 4, 5], (Kind::Float, Device::Cpu));
        let cl = channels_last(&g);
        assert_eq!(cl.stride(), vec![20, 1, 5, 1]);
        assert!(cl.equal(&g));
    }

    #[test]
    fn narrow_pointwise_convs_are_spotted() {
        let vs = VarStore::new(Device::Cpu);
        let _wide = tch::nn::conv2d(vs.root().sub("a"), 16, 32, 1, Default::default());
        let _k3 = tch::nn::conv2d(vs.root().sub("b"), 3, 8, 3, Default::default());
        assert!(!has_narrow_pointwise_conv(&vs));
        let _narrow = tch::nn::conv2d(vs.root().sub("c"), 8, 16, 1, Default::default());
        assert!(has_narrow_pointwise_conv(&vs));
    }

    #[test]
    fn variables_are_relaid_in_place_and_stay_trainable() {
        let vs = VarStore::new(Device::Cpu);
        let conv = tch::nn::conv2d(vs.root(), 3, 8, 3, Default::default());
        let before = conv.ws.copy();
        vars_channels_last(&vs);
        let w = &vs.variables()["weight"];
        assert!(is_channels_last(w) && w.requires_grad());
        assert!(w.equal(&before));
        // The module sees the re-laid weight: same output, gradients flow.
        let x = Tensor::randn([2, 3, 6, 6], (Kind::Float, Device::Cpu));
        let y = x.apply(&conv);
        let reference = x.conv2d(&before, conv.bs.as_ref(), [1, 1], [0, 0], [1, 1], 1);
        assert!(y.allclose(&reference, 1e-5, 1e-5, false));
        y.sum(Kind::Float).backward();
        assert!(conv.ws.grad().defined());
    }
}
