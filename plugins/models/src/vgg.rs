//! `vgg-cifar`: VGG with BatchNorm for 32x32 inputs (Simonyan & Zisserman 2015; the CIFAR
//! layout of the CRD benchmark, with its VGG-8).

use crate::layers::{bn2d, global_avg_pool, Conv, Linear};
use crate::quant::{Act, QuantPlan};
use rolekd_core::config::Params;
use rolekd_core::plugin::model::{Model, ModelOutput, ModelSpec};
use rolekd_core::Result;
use serde::Deserialize;
use tch::{nn, nn::ModuleT, Tensor};

/// Parameters of `vgg-cifar`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct VggParams {
    /// 8, 11, 13, 16 or 19 (default 13).
    #[serde(default = "default_depth")]
    pub depth: i64,
}

fn default_depth() -> i64 {
    13
}

fn config(depth: i64) -> Option<[&'static [i64]; 5]> {
    Some(match depth {
        8 => [&[64], &[128], &[256], &[512], &[512]],
        11 => [&[64], &[128], &[256, 256], &[512, 512], &[512, 512]],
        13 => [
            &[64, 64],
            &[128, 128],
            &[256, 256],
            &[512, 512],
            &[512, 512],
        ],
        16 => [
            &[64, 64],
            &[128, 128],
            &[256, 256, 256],
            &[512, 512, 512],
            &[512, 512, 512],
        ],
        19 => [
            &[64, 64],
            &[128, 128],
            &[256, 256, 256, 256],
            &[512, 512, 512, 512],
            &[512, 512, 512, 512],
        ],
        _ => return None,
    })
}

/// Five blocks of conv3x3-BN-ReLU layers (convs without bias: BN follows), max-pool 2 after
/// blocks 1-4, global average pooling after block 5, one linear classifier. Features
/// `stage1..stage5` are the blocks' outputs (post-ReLU, before pooling). Init: conv
/// Kaiming-normal (fan-out, ReLU), BN 1/0, linear PyTorch default.
pub struct Vgg {
    blocks: Vec<Vec<(Conv, nn::BatchNorm, Act)>>,
    fc: Linear,
}

impl Model for Vgg {
    fn forward(&self, xs: &Tensor, train: bool) -> ModelOutput {
        let mut x = xs.shallow_clone();
        let mut features = Vec::new();
        let n = self.blocks.len();
        for (i, block) in self.blocks.iter().enumerate() {
            for (conv, bn, act) in block {
                x = act.apply_owned(bn.forward_t(&conv.forward(&x), train));
            }
            features.push((format!("stage{}", i + 1), x.shallow_clone()));
            if i + 1 < n {
                x = x.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
            }
        }
        ModelOutput {
            logits: self.fc.forward(&global_avg_pool(&x)),
            features,
        }
    }
}

/// The registry's constructor.
pub fn build(params: &Params, spec: &ModelSpec, vs: &nn::Path) -> Result<Box<dyn Model>> {
    let p: VggParams = params.parse()?;
    let cfg = config(p.depth).ok_or_else(|| {
        params.child_error(
            "depth",
            format!("expected 8, 11, 13, 16 or 19, got {}", p.depth),
        )
    })?;
    if spec.height < 16 || spec.width < 16 {
        return Err(params
            .error(format!(
                "vgg-cifar halves its input 4 times: {}x{} is too small (>= 16x16)",
                spec.height, spec.width
            ))
            .into());
    }
    let plan = QuantPlan::new(&spec.quant)?;
    let mut c_in = spec.in_channels;
    let mut blocks = Vec::new();
    let mut first = true;
    for (b, widths) in cfg.iter().enumerate() {
        let mut layers = Vec::new();
        for (l, &w) in widths.iter().enumerate() {
            let lvs = vs.sub(format!("stage{}", b + 1)).sub(l);
            let bits = if first {
                plan.edge_weight()
            } else {
                plan.body_weight()
            };
            first = false;
            let last = b + 1 == cfg.len() && l + 1 == widths.len();
            let act = if last { plan.last_act() } else { plan.act() };
            layers.push((
                Conv::k3(&lvs.sub("conv"), c_in, w, 1, bits),
                bn2d(&lvs.sub("bn"), w),
                act,
            ));
            c_in = w;
        }
        blocks.push(layers);
    }
    Ok(Box::new(Vgg {
        blocks,
        fc: Linear::new(&vs.sub("fc"), c_in, spec.num_classes, plan.edge_weight()),
    }))
}

rolekd_core::register_plugin!(
    Model,
    "vgg-cifar",
    "VGG with BN for CIFAR (`depth` 8/11/13/16/19, default 13); features stage1..stage5",
    build
);
