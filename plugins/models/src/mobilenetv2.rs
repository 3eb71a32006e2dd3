//! `mobilenetv2-cifar`: MobileNetV2 (Sandler et al., CVPR 2018) for 32x32 inputs.

use crate::layers::{bn2d, global_avg_pool, Conv, ConvOpts, Linear};
use crate::quant::{Act, QuantPlan};
use rolekd_core::config::Params;
use rolekd_core::plugin::model::{Model, ModelOutput, ModelSpec};
use rolekd_core::Result;
use serde::Deserialize;
use tch::{nn, nn::ModuleT, Tensor};

/// Parameters of `mobilenetv2-cifar`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct MobileNetV2Params {
    /// Width multiplier (channels rounded to multiples of 8; default 1.0).
    #[serde(default = "one")]
    pub width_mult: f64,
}

fn one() -> f64 {
    1.0
}

/// Channels rounded to a multiple of 8, never down by more than 10%.
fn divisible(v: f64) -> i64 {
    let mut n = (((v + 4.0) as i64) / 8 * 8).max(8);
    if (n as f64) < 0.9 * v {
        n += 8;
    }
    n
}

/// (expansion t, output channels c, repeats n, first stride s, feature tapped after it)
const SETTINGS: [(i64, i64, i64, i64, Option<&str>); 7] = [
    (1, 16, 1, 1, None),
    (6, 24, 2, 1, Some("stage1")),
    (6, 32, 3, 2, Some("stage2")),
    (6, 64, 4, 2, None),
    (6, 96, 3, 1, Some("stage3")),
    (6, 160, 3, 2, None),
    (6, 320, 1, 1, None),
];

struct ConvBn {
    conv: Conv,
    bn: nn::BatchNorm,
    act: Option<Act>,
}

impl ConvBn {
    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let y = self.bn.forward_t(&self.conv.forward(x), train);
        match self.act {
            Some(a) => a.apply(&y),
            None => y,
        }
    }
}

struct InvertedResidual {
    layers: Vec<ConvBn>,
    residual: bool,
}

/// MobileNetV2 with the CIFAR changes of common CIFAR ports: stem 3x3 conv stride 1 and
/// the second bottleneck group at stride 1 (so 32x32 inputs end at 4x4). Inverted residual
/// blocks: 1x1 expand-BN-ReLU6, 3x3 depthwise-BN-ReLU6, 1x1 project-BN (linear), identity
/// residual when stride 1 and shapes match. Then 1x1 conv to 1280-BN-ReLU6, global
/// average pooling, linear. Features: `stage1` (24 ch, full resolution), `stage2` (32 ch,
/// /2), `stage3` (96 ch, /4), `stage4` (the 1280-channel head, /8). Init: conv
/// Kaiming-normal (fan-out, ReLU), BN 1/0, linear PyTorch default. DoReFa replaces ReLU6
/// by the quantised activation like any ReLU.
pub struct MobileNetV2 {
    stem: ConvBn,
    blocks: Vec<(InvertedResidual, Option<&'static str>)>,
    head: ConvBn,
    fc: Linear,
}

impl Model for MobileNetV2 {
    fn forward(&self, xs: &Tensor, train: bool) -> ModelOutput {
        let mut x = self.stem.forward(xs, train);
        let mut features = Vec::new();
        for (block, tap) in &self.blocks {
            let mut y = x.shallow_clone();
            for l in &block.layers {
                y = l.forward(&y, train);
            }
            x = if block.residual { y + &x } else { y };
            if let Some(name) = tap {
                features.push((name.to_string(), x.shallow_clone()));
            }
        }
        let x = self.head.forward(&x, train);
        features.push(("stage4".to_string(), x.shallow_clone()));
        ModelOutput {
            logits: self.fc.forward(&global_avg_pool(&x)),
            features,
        }
    }
}

/// A convolution, its BatchNorm and an optional activation, under `vs`.
fn conv_bn(vs: &nn::Path, c_in: i64, c_out: i64, k: i64, o: ConvOpts, act: Option<Act>) -> ConvBn {
    ConvBn {
        conv: Conv::new(&vs.sub("conv"), c_in, c_out, k, o),
        bn: bn2d(&vs.sub("bn"), c_out),
        act,
    }
}

/// One inverted residual: 1x1 expand by `t` (none when `t` is 1), 3x3 depthwise at
/// `stride`, linear 1x1 projection; residual when the shape is kept.
fn inverted_residual(
    vs: &nn::Path,
    (c_in, c_out): (i64, i64),
    t: i64,
    stride: i64,
    bits: u32,
    act: Act,
) -> InvertedResidual {
    let hidden = c_in * t;
    let plain = ConvOpts {
        bits,
        ..ConvOpts::default()
    };
    let mut layers = Vec::new();
    if t != 1 {
        layers.push(conv_bn(
            &vs.sub("expand"),
            c_in,
            hidden,
            1,
            plain,
            Some(act),
        ));
    }
    let depthwise = ConvOpts {
        stride,
        padding: 1,
        groups: hidden,
        bits,
        ..ConvOpts::default()
    };
    layers.push(conv_bn(
        &vs.sub("depthwise"),
        hidden,
        hidden,
        3,
        depthwise,
        Some(act),
    ));
    layers.push(conv_bn(&vs.sub("project"), hidden, c_out, 1, plain, None));
    InvertedResidual {
        layers,
        residual: stride == 1 && c_in == c_out,
    }
}

/// The registry's constructor.
pub fn build(params: &Params, spec: &ModelSpec, vs: &nn::Path) -> Result<Box<dyn Model>> {
    let p: MobileNetV2Params = params.parse()?;
    params.positive("width_mult", p.width_mult)?;
    let plan = QuantPlan::new(&spec.quant)?;
    let act = plan.act().six();
    let bits = plan.body_weight();
    let stem_c = divisible(32.0 * p.width_mult);
    let stem_opts = ConvOpts {
        padding: 1,
        bits: plan.edge_weight(),
        ..ConvOpts::default()
    };
    let stem = conv_bn(
        &vs.sub("stem"),
        spec.in_channels,
        stem_c,
        3,
        stem_opts,
        Some(act),
    );
    let mut c_in = stem_c;
    let mut blocks = Vec::new();
    for (t, c, n, s, tap) in SETTINGS {
        let c_out = divisible(c as f64 * p.width_mult);
        for i in 0..n {
            let stride = if i == 0 { s } else { 1 };
            let bvs = vs.sub("blocks").sub(blocks.len());
            let block = inverted_residual(&bvs, (c_in, c_out), t, stride, bits, act);
            blocks.push((block, if i + 1 == n { tap } else { None }));
            c_in = c_out;
        }
    }
    let last = if p.width_mult > 1.0 {
        divisible(1280.0 * p.width_mult)
    } else {
        1280
    };
    let head_opts = ConvOpts {
        bits,
        ..ConvOpts::default()
    };
    let head = conv_bn(
        &vs.sub("head"),
        c_in,
        last,
        1,
        head_opts,
        Some(plan.last_act().six()),
    );
    Ok(Box::new(MobileNetV2 {
        stem,
        blocks,
        head,
        fc: Linear::new(&vs.sub("fc"), last, spec.num_classes, plan.edge_weight()),
    }))
}

rolekd_core::register_plugin!(
    Model,
    "mobilenetv2-cifar",
    "MobileNetV2 (Sandler et al. 2018), CIFAR strides; `width_mult` (1.0); features stage1..stage4",
    build
);
