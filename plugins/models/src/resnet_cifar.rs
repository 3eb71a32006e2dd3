//! CIFAR ResNets (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016,
//! section 4.2): a 3x3 stem, three stages of `n` BasicBlocks (depth = 6n + 2), widths
//! w, 2w, 4w, global average pooling and a linear classifier.

use crate::layers::{bn2d, global_avg_pool, Conv, ConvOpts, Linear};
use crate::quant::{Act, QuantPlan};
use rolekd_core::config::Params;
use rolekd_core::plugin::model::{Model, ModelOutput, ModelSpec};
use rolekd_core::{Error, Result};
use serde::Deserialize;
use tch::{nn, nn::ModuleT, Tensor};

/// Parameters of `resnet-cifar`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ResNetCifarParams {
    /// Total depth 6n + 2 (n BasicBlocks per stage): 8, 14, 20, 32, 44, 56, 110, ...
    #[serde(default = "default_depth")]
    pub depth: i64,
    /// Base width w: the stages have w, 2w and 4w channels (16 in the paper; 64 for the
    /// "x4" variants).
    #[serde(default = "default_width")]
    pub width: i64,
    /// Channels of the 3x3 stem (default: `width`; the "x4" variants of CRD use 32).
    #[serde(default)]
    pub stem_width: Option<i64>,
}

fn default_depth() -> i64 {
    20
}
fn default_width() -> i64 {
    16
}

/// A BasicBlock: conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut, then ReLU. The shortcut
/// is the identity, or a 1x1 conv + BN ("option B") where the shape changes.
pub struct BasicBlock {
    conv1: Conv,
    bn1: nn::BatchNorm,
    conv2: Conv,
    bn2: nn::BatchNorm,
    shortcut: Option<(Conv, nn::BatchNorm)>,
    act: Act,
    out_act: Act,
}

impl BasicBlock {
    /// `out_act` is the nonlinearity after the residual sum.
    pub fn new(
        vs: &nn::Path,
        c_in: i64,
        c_out: i64,
        stride: i64,
        plan: &QuantPlan,
        out_act: Act,
    ) -> BasicBlock {
        let bits = plan.body_weight();
        let shortcut = (stride != 1 || c_in != c_out).then(|| {
            (
                Conv::k1(&vs.sub("shortcut").sub("conv"), c_in, c_out, stride, bits),
                bn2d(&vs.sub("shortcut").sub("bn"), c_out),
            )
        });
        BasicBlock {
            conv1: Conv::k3(&vs.sub("conv1"), c_in, c_out, stride, bits),
            bn1: bn2d(&vs.sub("bn1"), c_out),
            conv2: Conv::k3(&vs.sub("conv2"), c_out, c_out, 1, bits),
            bn2: bn2d(&vs.sub("bn2"), c_out),
            shortcut,
            act: plan.act(),
            out_act,
        }
    }

    pub fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let y = self
            .act
            .apply_owned(self.bn1.forward_t(&self.conv1.forward(x), train));
        let y = self.bn2.forward_t(&self.conv2.forward(&y), train);
        let sc = match &self.shortcut {
            Some((c, b)) => b.forward_t(&c.forward(x), train),
            None => x.shallow_clone(),
        };
        self.out_act.apply_owned(y + sc)
    }
}

/// A ResNet of BasicBlocks with a 3x3 stem and no max-pool: the CIFAR ResNets (three
/// stages) and ResNet-18 with the CIFAR stem (four stages). Features `stage1..stageK` are
/// the stages' outputs (after the final ReLU of their last block). Init: conv
/// Kaiming-normal (fan-out, ReLU), BN weight 1 / bias 0, linear PyTorch default (uniform
/// ±1/sqrt(fan_in)). DoReFa: stem conv and classifier full precision unless
/// `quantize_first_last`; the activation feeding the classifier likewise.
pub struct ResNet {
    conv1: Conv,
    bn1: nn::BatchNorm,
    act: Act,
    /// ImageNet stem: max-pool 3x3 stride 2 after conv1 (7x7 stride 2).
    stem_pool: bool,
    stages: Vec<Vec<BasicBlock>>,
    fc: Linear,
}

/// The first layer of a [`ResNet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stem {
    /// 3x3 conv, stride 1, no pooling (CIFAR-sized inputs keep their resolution).
    Cifar,
    /// torchvision's: 7x7 conv, stride 2, padding 3, then max-pool 3x3 stride 2.
    ImageNet,
}

impl ResNet {
    /// `stage_widths[i]` channels and `blocks[i]` blocks in stage i; stage i > 0 starts
    /// with stride 2.
    pub fn new(
        vs: &nn::Path,
        spec: &ModelSpec,
        stem: Stem,
        stem_width: i64,
        stage_widths: &[i64],
        blocks: &[i64],
    ) -> Result<ResNet> {
        let plan = QuantPlan::new(&spec.quant)?;
        let conv1 = match stem {
            Stem::Cifar => Conv::k3(
                &vs.sub("conv1"),
                spec.in_channels,
                stem_width,
                1,
                plan.edge_weight(),
            ),
            Stem::ImageNet => Conv::new(
                &vs.sub("conv1"),
                spec.in_channels,
                stem_width,
                7,
                ConvOpts {
                    stride: 2,
                    padding: 3,
                    bits: plan.edge_weight(),
                    ..ConvOpts::default()
                },
            ),
        };
        let bn1 = bn2d(&vs.sub("bn1"), stem_width);
        let mut c_in = stem_width;
        let mut stages = Vec::new();
        let n_stages = stage_widths.len();
        for (s, (&w, &n)) in stage_widths.iter().zip(blocks).enumerate() {
            let svs = vs.sub(format!("stage{}", s + 1));
            let mut stage = Vec::new();
            for b in 0..n {
                let stride = if s > 0 && b == 0 { 2 } else { 1 };
                let last = s + 1 == n_stages && b + 1 == n;
                let out_act = if last { plan.last_act() } else { plan.act() };
                stage.push(BasicBlock::new(
                    &svs.sub(b),
                    c_in,
                    w,
                    stride,
                    &plan,
                    out_act,
                ));
                c_in = w;
            }
            stages.push(stage);
        }
        let fc = Linear::new(&vs.sub("fc"), c_in, spec.num_classes, plan.edge_weight());
        Ok(ResNet {
            conv1,
            bn1,
            act: plan.act(),
            stem_pool: stem == Stem::ImageNet,
            stages,
            fc,
        })
    }
}

impl Model for ResNet {
    fn forward(&self, xs: &Tensor, train: bool) -> ModelOutput {
        let mut x = self
            .act
            .apply_owned(self.bn1.forward_t(&self.conv1.forward(xs), train));
        if self.stem_pool {
            x = x.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        }
        let mut features = Vec::with_capacity(self.stages.len());
        for (i, stage) in self.stages.iter().enumerate() {
            for block in stage {
                x = block.forward(&x, train);
            }
            features.push((format!("stage{}", i + 1), x.shallow_clone()));
        }
        ModelOutput {
            logits: self.fc.forward(&global_avg_pool(&x)),
            features,
        }
    }
}

/// A CIFAR ResNet of `depth` = 6n + 2 layers, base width `width`.
pub fn resnet_cifar(
    vs: &nn::Path,
    spec: &ModelSpec,
    depth: i64,
    width: i64,
    stem_width: i64,
) -> Result<ResNet> {
    if depth < 8 || (depth - 2) % 6 != 0 {
        return Err(Error::Invalid(format!(
            "resnet-cifar depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, ...), got {depth}"
        )));
    }
    if width <= 0 || stem_width <= 0 {
        return Err(Error::Invalid(format!(
            "resnet-cifar widths must be positive, got width {width}, stem_width {stem_width}"
        )));
    }
    let n = (depth - 2) / 6;
    ResNet::new(
        vs,
        spec,
        Stem::Cifar,
        stem_width,
        &[width, 2 * width, 4 * width],
        &[n, n, n],
    )
}

/// The registry's constructor for `resnet-cifar`.
pub fn build(params: &Params, spec: &ModelSpec, vs: &nn::Path) -> Result<Box<dyn Model>> {
    let p: ResNetCifarParams = params.parse()?;
    if p.depth < 8 || (p.depth - 2) % 6 != 0 {
        return Err(params
            .child_error(
                "depth",
                format!(
                    "must be 6n + 2 with n >= 1 (8, 14, 20, 32, 44, 56, 110), got {}",
                    p.depth
                ),
            )
            .into());
    }
    params.at_least("width", p.width, 1)?;
    let stem = p.stem_width.unwrap_or(p.width);
    params.at_least("stem_width", stem, 1)?;
    Ok(Box::new(resnet_cifar(vs, spec, p.depth, p.width, stem)?))
}

rolekd_core::register_plugin!(
    Model,
    "resnet-cifar",
    "CIFAR ResNet (He et al. 2016): `depth` 6n+2 (20), `width` w (16): stages w/2w/4w, option-B shortcuts",
    build
);

/// The named CIFAR ResNets take no parameters (use `resnet-cifar` to vary depth or width).
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct NamedResNetParams {}

macro_rules! named_resnet {
    ($fn_name:ident, $name:literal, $depth:expr, $width:expr, $stem:expr, $doc:literal) => {
        fn $fn_name(params: &Params, spec: &ModelSpec, vs: &nn::Path) -> Result<Box<dyn Model>> {
            let _: NamedResNetParams = params.parse()?;
            Ok(Box::new(resnet_cifar(vs, spec, $depth, $width, $stem)?))
        }
        rolekd_core::register_plugin!(Model, $name, $doc, $fn_name);
    };
}

named_resnet!(
    build_resnet8,
    "resnet8",
    8,
    16,
    16,
    "CIFAR ResNet-8: resnet-cifar depth 8, width 16"
);
named_resnet!(
    build_resnet14,
    "resnet14",
    14,
    16,
    16,
    "CIFAR ResNet-14: resnet-cifar depth 14, width 16"
);
named_resnet!(
    build_resnet20,
    "resnet20",
    20,
    16,
    16,
    "CIFAR ResNet-20: resnet-cifar depth 20, width 16"
);
named_resnet!(
    build_resnet32,
    "resnet32",
    32,
    16,
    16,
    "CIFAR ResNet-32: resnet-cifar depth 32, width 16"
);
named_resnet!(
    build_resnet44,
    "resnet44",
    44,
    16,
    16,
    "CIFAR ResNet-44: resnet-cifar depth 44, width 16"
);
named_resnet!(
    build_resnet56,
    "resnet56",
    56,
    16,
    16,
    "CIFAR ResNet-56: resnet-cifar depth 56, width 16"
);
named_resnet!(
    build_resnet110,
    "resnet110",
    110,
    16,
    16,
    "CIFAR ResNet-110: resnet-cifar depth 110, width 16"
);
named_resnet!(
    build_resnet8x4,
    "resnet8x4",
    8,
    64,
    32,
    "ResNet-8x4 (CRD): depth 8, stem 32, stages 64/128/256"
);
named_resnet!(
    build_resnet32x4,
    "resnet32x4",
    32,
    64,
    32,
    "ResNet-32x4 (CRD): depth 32, stem 32, stages 64/128/256"
);

/// Parameters of `resnet18-cifar`.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct ResNet18Params {
    /// Base width w: stem and stages w, 2w, 4w, 8w (default 64).
    #[serde(default = "default_width18")]
    pub width: i64,
}

fn default_width18() -> i64 {
    64
}

/// ResNet-18 (2-2-2-2 BasicBlocks, widths w/2w/4w/8w, option-B shortcuts) with `stem`;
/// features stage1..stage4.
fn resnet18_with(
    stem: Stem,
    params: &Params,
    spec: &ModelSpec,
    vs: &nn::Path,
) -> Result<Box<dyn Model>> {
    basic_resnet(stem, &[2, 2, 2, 2], params, spec, vs)
}

/// A BasicBlock ResNet of `blocks` per stage, widths w/2w/4w/8w (ResNet-18 and -34).
fn basic_resnet(
    stem: Stem,
    blocks: &[i64; 4],
    params: &Params,
    spec: &ModelSpec,
    vs: &nn::Path,
) -> Result<Box<dyn Model>> {
    let p: ResNet18Params = params.parse()?;
    params.at_least("width", p.width, 1)?;
    let w = p.width;
    Ok(Box::new(ResNet::new(
        vs,
        spec,
        stem,
        w,
        &[w, 2 * w, 4 * w, 8 * w],
        blocks,
    )?))
}

/// `resnet18-cifar`: ResNet-18 with the CIFAR stem (3x3 conv stride 1, no max-pool).
pub fn build_resnet18(params: &Params, spec: &ModelSpec, vs: &nn::Path) -> Result<Box<dyn Model>> {
    resnet18_with(Stem::Cifar, params, spec, vs)
}

rolekd_core::register_plugin!(
    Model,
    "resnet18-cifar",
    "ResNet-18 with the CIFAR stem (3x3 conv, no max-pool); `width` 64; features stage1..stage4",
    build_resnet18
);

/// `resnet18`: torchvision's ResNet-18 layout (7x7 stride-2 stem with max-pool), so its
/// state_dicts import as they are; on 32x32 inputs the stages see 8x8 down to 1x1.
pub fn build_resnet18_imagenet(
    params: &Params,
    spec: &ModelSpec,
    vs: &nn::Path,
) -> Result<Box<dyn Model>> {
    resnet18_with(Stem::ImageNet, params, spec, vs)
}

rolekd_core::register_plugin!(
    Model,
    "resnet18",
    "ResNet-18 as torchvision builds it (7x7 stride-2 stem, max-pool); `width` 64; imports torchvision's weights",
    build_resnet18_imagenet
);

/// `resnet34`: torchvision's ResNet-34 (3-4-6-3 BasicBlocks, the ImageNet stem), the
/// teacher of the ImageNet ResNet-34 -> ResNet-18 KD benchmark; imports torchvision's weights.
pub fn build_resnet34_imagenet(
    params: &Params,
    spec: &ModelSpec,
    vs: &nn::Path,
) -> Result<Box<dyn Model>> {
    basic_resnet(Stem::ImageNet, &[3, 4, 6, 3], params, spec, vs)
}

rolekd_core::register_plugin!(
    Model,
    "resnet34",
    "ResNet-34 as torchvision builds it (3-4-6-3 BasicBlocks, 7x7 stride-2 stem, max-pool); `width` 64; imports torchvision's weights",
    build_resnet34_imagenet
);
