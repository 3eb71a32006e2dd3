//! `wrn`: Wide Residual Networks (Zagoruyko & Komodakis, BMVC 2016), CIFAR layout.

use crate::layers::{bn2d, global_avg_pool, Conv, Linear};
use crate::quant::{Act, QuantPlan};
use rolekd_core::config::Params;
use rolekd_core::plugin::model::{Model, ModelOutput, ModelSpec};
use rolekd_core::Result;
use serde::Deserialize;
use tch::{nn, nn::ModuleT, Tensor};

/// Parameters of `wrn`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct WrnParams {
    /// Depth 6n + 4 (n blocks per group): 16, 22, 28, 40, ... (default 16).
    #[serde(default = "default_depth")]
    pub depth: i64,
    /// Widening factor k: groups of 16k, 32k, 64k channels (default 2).
    #[serde(default = "default_widen")]
    pub widen_factor: i64,
    /// Dropout between the two convs of a block, in training (default 0).
    #[serde(default)]
    pub dropout: f64,
}

fn default_depth() -> i64 {
    16
}
fn default_widen() -> i64 {
    2
}

/// A pre-activation block: BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3, plus the identity or,
/// when the shape changes, a 1x1 conv of the pre-activated input.
struct WideBlock {
    bn1: nn::BatchNorm,
    conv1: Conv,
    bn2: nn::BatchNorm,
    conv2: Conv,
    shortcut: Option<Conv>,
    act: Act,
    dropout: f64,
}

impl WideBlock {
    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let o = self.act.apply(&self.bn1.forward_t(x, train));
        let y = self.conv1.forward(&o);
        let y = self.act.apply(&self.bn2.forward_t(&y, train));
        let y = if self.dropout > 0.0 {
            y.dropout(self.dropout, train)
        } else {
            y
        };
        let y = self.conv2.forward(&y);
        match &self.shortcut {
            Some(c) => y + c.forward(&o),
            None => y + x,
        }
    }
}

/// WRN-d-k: 3x3 stem (16 channels), three groups of n pre-activation blocks (16k, 32k,
/// 64k; stride 1, 2, 2), final BN-ReLU, global average pooling, linear. Features: `stage1`,
/// `stage2` = outputs of groups 1 and 2 (pre-activation sums), `stage3` = group 3 after the
/// final BN-ReLU (what the classifier pools), as in CRD's implementation. Init: conv
/// Kaiming-normal (fan-out, ReLU), BN 1/0, linear PyTorch default.
pub struct Wrn {
    conv1: Conv,
    groups: Vec<Vec<WideBlock>>,
    bn: nn::BatchNorm,
    last_act: Act,
    fc: Linear,
}

impl Model for Wrn {
    fn forward(&self, xs: &Tensor, train: bool) -> ModelOutput {
        let mut x = self.conv1.forward(xs);
        let mut features = Vec::new();
        let n = self.groups.len();
        for (i, g) in self.groups.iter().enumerate() {
            for b in g {
                x = b.forward(&x, train);
            }
            if i + 1 == n {
                x = self.last_act.apply(&self.bn.forward_t(&x, train));
            }
            features.push((format!("stage{}", i + 1), x.shallow_clone()));
        }
        ModelOutput {
            logits: self.fc.forward(&global_avg_pool(&x)),
            features,
        }
    }
}

/// The registry's constructor.
pub fn build(params: &Params, spec: &ModelSpec, vs: &nn::Path) -> Result<Box<dyn Model>> {
    let p: WrnParams = params.parse()?;
    if p.depth < 10 || (p.depth - 4) % 6 != 0 {
        return Err(params
            .child_error(
                "depth",
                format!(
                    "must be 6n + 4 with n >= 1 (10, 16, 22, 28, 40), got {}",
                    p.depth
                ),
            )
            .into());
    }
    params.at_least("widen_factor", p.widen_factor, 1)?;
    if !(0.0..1.0).contains(&p.dropout) {
        return Err(params
            .child_error("dropout", format!("expected 0 <= p < 1, got {}", p.dropout))
            .into());
    }
    let plan = QuantPlan::new(&spec.quant)?;
    let n = (p.depth - 4) / 6;
    let k = p.widen_factor;
    let conv1 = Conv::k3(
        &vs.sub("conv1"),
        spec.in_channels,
        16,
        1,
        plan.edge_weight(),
    );
    let mut c_in = 16;
    let mut groups = Vec::new();
    for (g, w) in [16 * k, 32 * k, 64 * k].into_iter().enumerate() {
        let gvs = vs.sub(format!("stage{}", g + 1));
        let mut blocks = Vec::new();
        for b in 0..n {
            let stride = if g > 0 && b == 0 { 2 } else { 1 };
            let bvs = gvs.sub(b);
            let bits = plan.body_weight();
            blocks.push(WideBlock {
                bn1: bn2d(&bvs.sub("bn1"), c_in),
                conv1: Conv::k3(&bvs.sub("conv1"), c_in, w, stride, bits),
                bn2: bn2d(&bvs.sub("bn2"), w),
                conv2: Conv::k3(&bvs.sub("conv2"), w, w, 1, bits),
                shortcut: (stride != 1 || c_in != w)
                    .then(|| Conv::k1(&bvs.sub("shortcut"), c_in, w, stride, bits)),
                act: plan.act(),
                dropout: p.dropout,
            });
            c_in = w;
        }
        groups.push(blocks);
    }
    Ok(Box::new(Wrn {
        conv1,
        groups,
        bn: bn2d(&vs.sub("bn"), c_in),
        last_act: plan.last_act(),
        fc: Linear::new(&vs.sub("fc"), c_in, spec.num_classes, plan.edge_weight()),
    }))
}

rolekd_core::register_plugin!(
    Model,
    "wrn",
    "Wide ResNet WRN-d-k (Zagoruyko & Komodakis 2016): `depth` 6n+4 (16), `widen_factor` (2), `dropout`",
    build
);
