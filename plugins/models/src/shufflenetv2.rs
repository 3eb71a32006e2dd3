//! `shufflenetv2-cifar`: ShuffleNet V2 (Ma et al., ECCV 2018) for 32x32 inputs.

use crate::layers::{bn2d, global_avg_pool, Conv, ConvOpts, Linear};
use crate::quant::{Act, QuantPlan};
use rolekd_core::config::Params;
use rolekd_core::plugin::model::{Model, ModelOutput, ModelSpec};
use rolekd_core::Result;
use serde::Deserialize;
use tch::{nn, nn::ModuleT, Tensor};

/// Parameters of `shufflenetv2-cifar`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ShuffleNetV2Params {
    /// Width: 0.5, 1.0, 1.5 or 2.0 (default 1.0): stage channels 48/96/192,
    /// 116/232/464, 176/352/704, 244/488/976.
    #[serde(default = "one")]
    pub width_mult: f64,
}

fn one() -> f64 {
    1.0
}

struct ConvBn {
    conv: Conv,
    bn: nn::BatchNorm,
    act: Option<Act>,
}

impl ConvBn {
    fn new(vs: &nn::Path, c_in: i64, c_out: i64, k: i64, o: ConvOpts, act: Option<Act>) -> Self {
        ConvBn {
            conv: Conv::new(&vs.sub("conv"), c_in, c_out, k, o),
            bn: bn2d(&vs.sub("bn"), c_out),
            act,
        }
    }
    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let y = self.bn.forward_t(&self.conv.forward(x), train);
        match self.act {
            Some(a) => a.apply(&y),
            None => y,
        }
    }
}

fn seq(layers: &[ConvBn], x: &Tensor, train: bool) -> Tensor {
    let mut y = x.shallow_clone();
    for l in layers {
        y = l.forward(&y, train);
    }
    y
}

/// A ShuffleNet V2 unit: stride 1 splits the channels in half and transforms one half;
/// stride 2 transforms two copies (a depthwise branch and the main branch) and halves the
/// resolution. Both concatenate and shuffle the channels in 2 groups.
struct Unit {
    branch1: Vec<ConvBn>,
    branch2: Vec<ConvBn>,
}

impl Unit {
    fn new(vs: &nn::Path, c_in: i64, c_out: i64, stride: i64, bits: u32, act: Act) -> Unit {
        let half = c_out / 2;
        let pw = ConvOpts {
            bits,
            ..ConvOpts::default()
        };
        let dw = |c| ConvOpts {
            stride,
            padding: 1,
            groups: c,
            bits,
            ..ConvOpts::default()
        };
        let b2_in = if stride == 1 { c_in / 2 } else { c_in };
        let branch1 = if stride == 1 {
            Vec::new()
        } else {
            let v = vs.sub("branch1");
            vec![
                ConvBn::new(&v.sub(0), c_in, c_in, 3, dw(c_in), None),
                ConvBn::new(&v.sub(1), c_in, half, 1, pw, Some(act)),
            ]
        };
        let v = vs.sub("branch2");
        let branch2 = vec![
            ConvBn::new(&v.sub(0), b2_in, half, 1, pw, Some(act)),
            ConvBn::new(&v.sub(1), half, half, 3, dw(half), None),
            ConvBn::new(&v.sub(2), half, half, 1, pw, Some(act)),
        ];
        Unit { branch1, branch2 }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let y = if self.branch1.is_empty() {
            let parts = x.chunk(2, 1);
            Tensor::cat(
                &[
                    parts[0].shallow_clone(),
                    seq(&self.branch2, &parts[1], train),
                ],
                1,
            )
        } else {
            Tensor::cat(
                &[seq(&self.branch1, x, train), seq(&self.branch2, x, train)],
                1,
            )
        };
        let s = y.size();
        y.reshape([s[0], 2, s[1] / 2, s[2], s[3]])
            .transpose(1, 2)
            .reshape([s[0], s[1], s[2], s[3]])
    }
}

/// ShuffleNet V2 with a CIFAR stem (3x3 conv, 24 channels, stride 1, no max-pool), stages
/// of 4, 8, 4 units (the first of each at stride 2), a 1x1 conv to 1024 channels (2048 at
/// width 2.0), global average pooling and a linear classifier. Features `stage1..stage3`
/// are the stages' outputs, `stage4` the 1x1 head's. Init: conv Kaiming-normal (fan-out,
/// ReLU), BN 1/0, linear PyTorch default.
pub struct ShuffleNetV2 {
    stem: ConvBn,
    stages: Vec<Vec<Unit>>,
    head: ConvBn,
    fc: Linear,
}

impl Model for ShuffleNetV2 {
    fn forward(&self, xs: &Tensor, train: bool) -> ModelOutput {
        let mut x = self.stem.forward(xs, train);
        let mut features = Vec::new();
        for (i, stage) in self.stages.iter().enumerate() {
            for u in stage {
                x = u.forward(&x, train);
            }
            features.push((format!("stage{}", i + 1), x.shallow_clone()));
        }
        let x = self.head.forward(&x, train);
        features.push(("stage4".to_string(), x.shallow_clone()));
        ModelOutput {
            logits: self.fc.forward(&global_avg_pool(&x)),
            features,
        }
    }
}

/// The registry's constructor.
pub fn build(params: &Params, spec: &ModelSpec, vs: &nn::Path) -> Result<Box<dyn Model>> {
    let p: ShuffleNetV2Params = params.parse()?;
    let table = [
        (0.5, [48, 96, 192], 1024),
        (1.0, [116, 232, 464], 1024),
        (1.5, [176, 352, 704], 1024),
        (2.0, [244, 488, 976], 2048),
    ];
    let Some(&(_, widths, last)) = table.iter().find(|(w, _, _)| *w == p.width_mult) else {
        return Err(params
            .child_error(
                "width_mult",
                format!("expected 0.5, 1.0, 1.5 or 2.0, got {}", p.width_mult),
            )
            .into());
    };
    let plan = QuantPlan::new(&spec.quant)?;
    let act = plan.act();
    let stem = ConvBn::new(
        &vs.sub("stem"),
        spec.in_channels,
        24,
        3,
        ConvOpts {
            padding: 1,
            bits: plan.edge_weight(),
            ..ConvOpts::default()
        },
        Some(act),
    );
    let mut c_in = 24;
    let mut stages = Vec::new();
    for (s, (w, n)) in widths.into_iter().zip([4, 8, 4]).enumerate() {
        let svs = vs.sub(format!("stage{}", s + 1));
        let units = (0..n)
            .map(|i| {
                let u = Unit::new(
                    &svs.sub(i),
                    if i == 0 { c_in } else { w },
                    w,
                    if i == 0 { 2 } else { 1 },
                    plan.body_weight(),
                    act,
                );
                u
            })
            .collect();
        c_in = w;
        stages.push(units);
    }
    let head = ConvBn::new(
        &vs.sub("head"),
        c_in,
        last,
        1,
        ConvOpts {
            bits: plan.body_weight(),
            ..ConvOpts::default()
        },
        Some(plan.last_act()),
    );
    Ok(Box::new(ShuffleNetV2 {
        stem,
        stages,
        head,
        fc: Linear::new(&vs.sub("fc"), last, spec.num_classes, plan.edge_weight()),
    }))
}

rolekd_core::register_plugin!(
    Model,
    "shufflenetv2-cifar",
    "ShuffleNet V2 (Ma et al. 2018), CIFAR stem; `width_mult` 0.5/1.0/1.5/2.0; features stage1..stage4",
    build
);
