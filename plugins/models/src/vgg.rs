//! `vgg-cifar`: VGG with BatchNorm for 32x32 inputs (Simonyan & Zisserman 2015), the CIFAR
//! layout of the CRD benchmark (RepDistiller's models/vgg.py, `vgg8_bn` ... `vgg19_bn`), so
//! that its teachers import as the same function.

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

/// Five blocks of conv3x3-BN-ReLU layers (convs without bias: BN follows, and an imported
/// bias folds into BN's running mean), max-pool 2 after blocks 1-3, and after block 4 only
/// for inputs 64 pixels high, then global average pooling and one linear classifier: the
/// pooling of RepDistiller's forward (`if h == 64: x = self.pool3(x)`), so 32x32 inputs
/// reach blocks 4 and 5 at 4x4. Features `stage1..stage5` are the blocks' outputs after
/// their ReLU, before pooling (RepDistiller's `f0..f4`). Init as RepDistiller's: conv
/// Kaiming-normal (fan-out, ReLU), BN 1/0, linear N(0, 0.01) with zero bias.
pub struct Vgg {
    blocks: Vec<Vec<(Conv, nn::BatchNorm, Act)>>,
    fc: Linear,
}

/// Whether the max-pool after block `i` (0-based) runs for inputs `height` pixels high.
fn pools_after(i: usize, height: i64) -> bool {
    i < 3 || (i == 3 && height == 64)
}

/// What `vgg-cifar` computes ([`Model::revision`], recorded in its checkpoints): 2 since
/// issue 30 (RepDistiller's pooling), 1 before (a max-pool after every block but the last).
pub const REVISION: u32 = 2;

impl Model for Vgg {
    fn forward(&self, xs: &Tensor, train: bool) -> ModelOutput {
        let height = xs.size().get(2).copied().unwrap_or(0);
        let mut x = xs.shallow_clone();
        let mut features = Vec::with_capacity(self.blocks.len());
        for (i, block) in self.blocks.iter().enumerate() {
            for (conv, bn, act) in block {
                x = act.apply_owned(bn.forward_t(&conv.forward(&x), train));
            }
            features.push((format!("stage{}", i + 1), x.shallow_clone()));
            if pools_after(i, height) {
                x = x.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
            }
        }
        ModelOutput {
            logits: self.fc.forward(&global_avg_pool(&x)),
            features,
        }
    }

    fn revision(&self) -> u32 {
        REVISION
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
    let halvings = (0..4).filter(|&i| pools_after(i, spec.height)).count();
    let least = 1i64 << halvings;
    if spec.height < least || spec.width < least {
        return Err(params
            .error(format!(
                "vgg-cifar halves a {}x{} input {halvings} times: too small (>= {least}x{least})",
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
    let fc = Linear::with_init(
        &vs.sub("fc"),
        c_in,
        spec.num_classes,
        plan.edge_weight(),
        [
            nn::Init::Randn {
                mean: 0.0,
                stdev: 0.01,
            },
            nn::Init::Const(0.0),
        ],
    );
    Ok(Box::new(Vgg { blocks, fc }))
}

rolekd_core::register_plugin!(
    Model,
    "vgg-cifar",
    "VGG with BN for CIFAR, RepDistiller's layout (`depth` 8/11/13/16/19, default 13); features stage1..stage5",
    build
);

#[cfg(test)]
mod tests {
    use crate::tests::{build, spec};
    use tch::{Device, Kind, Tensor};

    /// Feature shapes of VGG-8 on one `hw` x `hw` image.
    fn shapes(hw: i64) -> Vec<Vec<i64>> {
        let (_vs, m) = build("vgg-cifar", "{depth: 8}", &spec(3, hw, 10));
        let x = Tensor::zeros([1, 3, hw, hw], (Kind::Float, Device::Cpu));
        let out = m.forward(&x, false);
        assert_eq!(out.logits.size(), [1, 10]);
        out.features
            .iter()
            .map(|(_, t)| t.size()[1..].to_vec())
            .collect()
    }

    #[test]
    fn pools_three_times_and_four_at_height_64_as_repdistiller() {
        // 32x32: max-pools after blocks 1-3 only; blocks 4 and 5 both at 4x4.
        let s = shapes(32);
        assert_eq!(s[3], [512, 4, 4]);
        assert_eq!(s[4], [512, 4, 4]);
        // 64x64: the fourth pool runs, block 5 again at 4x4.
        let s = shapes(64);
        assert_eq!(s[3], [512, 8, 8]);
        assert_eq!(s[4], [512, 4, 4]);
        // Only 64 exactly: 48 and 96 pool three times, as `if h == 64` does.
        assert_eq!(shapes(48)[4], [512, 6, 6]);
        assert_eq!(shapes(96)[4], [512, 12, 12]);
    }

    #[test]
    fn classifier_starts_as_repdistillers_and_revision_is_2() {
        let (vs, m) = build("vgg-cifar", "{depth: 8}", &spec(3, 32, 100));
        let vars = vs.variables();
        let std = f64::try_from(vars["fc.weight"].std(true)).unwrap();
        assert!((0.009..0.011).contains(&std), "fc weight std {std}");
        let bias = f64::try_from(vars["fc.bias"].abs().max()).unwrap();
        assert_eq!(bias, 0.0);
        assert_eq!(m.revision(), super::REVISION);
        assert_eq!(super::REVISION, 2);
    }
}
