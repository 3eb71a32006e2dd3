//! Parameter names: rolekd's models against the names PyTorch code uses for the same
//! layers (RepDistiller's CIFAR models, which torchvision's ResNets share).
//!
//! | rolekd | PyTorch |
//! |---|---|
//! | ResNets: `stage{s}.{b}.shortcut.conv.*`, `shortcut.bn.*` | `layer{s}.{b}.downsample.0.*`, `downsample.1.*` |
//! | ResNets: `stage{s}.*` | `layer{s}.*` |
//! | WRN: `stage{g}.{b}.shortcut.weight` | `block{g}.layer.{b}.convShortcut.weight` |
//! | WRN: `stage{g}.{b}.*`, final `bn.*` | `block{g}.layer.{b}.*`, `bn1.*` |
//! | VGG: `stage{s}.{l}.conv.*`, `stage{s}.{l}.bn.*`, `fc.*` | `block{s-1}.{3l}.*`, `block{s-1}.{3l+1}.*`, `classifier.*` |
//!
//! RepDistiller's VGG convolutions have a bias, rolekd's do not (BatchNorm follows): the
//! importer folds each bias into the next BatchNorm's running mean, which is exact, and the
//! exporter writes zero biases.
//!
//! `conv1`, `bn1`, `fc` and the layers inside a block keep their names. PyTorch's
//! BatchNorm also has a `num_batches_tracked` counter, which rolekd does not keep.

use rolekd_core::{Error, Result};

/// How a model family's names map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// CIFAR ResNets, ResNet-18 and -34 (RepDistiller's `resnet*`, torchvision's `resnet18`,
    /// `resnet34`).
    ResNet,
    /// Wide ResNets (RepDistiller's `wrn_*`).
    Wrn,
    /// CIFAR VGGs with BatchNorm (RepDistiller's `vgg*_bn`).
    Vgg,
}

/// Model types with a name mapping.
pub const MAPPED_TYPES: [&str; 15] = [
    "resnet-cifar",
    "resnet8",
    "resnet14",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "resnet8x4",
    "resnet32x4",
    "resnet18-cifar",
    "resnet18",
    "resnet34",
    "wrn",
    "vgg-cifar",
];

impl Scheme {
    /// The scheme of a rolekd model type.
    pub fn of_model(model_type: &str) -> Result<Scheme> {
        match model_type {
            "wrn" => Ok(Scheme::Wrn),
            "vgg-cifar" => Ok(Scheme::Vgg),
            t if MAPPED_TYPES.contains(&t) => Ok(Scheme::ResNet),
            t => Err(Error::Invalid(format!(
                "no PyTorch name mapping for model type `{t}`{}; mapped: {}",
                rolekd_core::config::did_you_mean(t, &MAPPED_TYPES),
                MAPPED_TYPES.join(", ")
            ))),
        }
    }

    /// rolekd's names of the first convolution's and the classifier's weights (the shapes
    /// that give input channels and classes; full precision under DoReFa).
    pub fn edges(self) -> [&'static str; 2] {
        match self {
            Scheme::Vgg => ["stage1.0.conv.weight", "fc.weight"],
            _ => ["conv1.weight", "fc.weight"],
        }
    }

    /// The PyTorch name of rolekd parameter `name`.
    pub fn to_pytorch(self, name: &str) -> String {
        let parts: Vec<&str> = name.split('.').collect();
        match self {
            Scheme::ResNet => match parts.as_slice() {
                [s, b, "shortcut", "conv", rest @ ..] if is_stage(s) => {
                    join(&[&layer(s), b, "downsample", "0"], rest)
                }
                [s, b, "shortcut", "bn", rest @ ..] if is_stage(s) => {
                    join(&[&layer(s), b, "downsample", "1"], rest)
                }
                [s, rest @ ..] if is_stage(s) => join(&[&layer(s)], rest),
                _ => name.to_string(),
            },
            Scheme::Wrn => match parts.as_slice() {
                [s, b, "shortcut", rest @ ..] if is_stage(s) => {
                    join(&[&block(s), "layer", b, "convShortcut"], rest)
                }
                [s, b, rest @ ..] if is_stage(s) => join(&[&block(s), "layer", b], rest),
                ["bn", rest @ ..] => join(&["bn1"], rest),
                _ => name.to_string(),
            },
            Scheme::Vgg => match parts.as_slice() {
                [s, l, layer @ ("conv" | "bn"), rest @ ..] if is_stage(s) => {
                    let block = s["stage".len()..].parse::<usize>().unwrap_or(1) - 1;
                    let index = l.parse::<usize>().unwrap_or(0) * 3 + usize::from(*layer == "bn");
                    join(&[&format!("block{block}"), &index.to_string()], rest)
                }
                ["fc", rest @ ..] => join(&["classifier"], rest),
                _ => name.to_string(),
            },
        }
    }
}

fn is_stage(s: &str) -> bool {
    s.strip_prefix("stage")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn layer(s: &str) -> String {
    s.replacen("stage", "layer", 1)
}

fn block(s: &str) -> String {
    s.replacen("stage", "block", 1)
}

fn join(head: &[&str], rest: &[&str]) -> String {
    head.iter()
        .chain(rest)
        .copied()
        .collect::<Vec<_>>()
        .join(".")
}

/// BatchNorm's step counter, which PyTorch saves and rolekd does not keep.
pub fn is_batch_counter(name: &str) -> bool {
    name.ends_with(".num_batches_tracked") || name == "num_batches_tracked"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resnet_names() {
        let s = Scheme::ResNet;
        assert_eq!(s.to_pytorch("conv1.weight"), "conv1.weight");
        assert_eq!(s.to_pytorch("bn1.running_var"), "bn1.running_var");
        assert_eq!(
            s.to_pytorch("stage2.0.conv1.weight"),
            "layer2.0.conv1.weight"
        );
        assert_eq!(
            s.to_pytorch("stage3.0.shortcut.conv.weight"),
            "layer3.0.downsample.0.weight"
        );
        assert_eq!(
            s.to_pytorch("stage1.0.shortcut.bn.running_mean"),
            "layer1.0.downsample.1.running_mean"
        );
        assert_eq!(s.to_pytorch("fc.bias"), "fc.bias");
        assert_eq!(s.to_pytorch("stagex.0.w"), "stagex.0.w");
    }

    #[test]
    fn wrn_names() {
        let s = Scheme::Wrn;
        assert_eq!(
            s.to_pytorch("stage1.0.bn1.weight"),
            "block1.layer.0.bn1.weight"
        );
        assert_eq!(
            s.to_pytorch("stage2.0.shortcut.weight"),
            "block2.layer.0.convShortcut.weight"
        );
        assert_eq!(s.to_pytorch("bn.running_mean"), "bn1.running_mean");
        assert_eq!(s.to_pytorch("conv1.weight"), "conv1.weight");
    }

    #[test]
    fn vgg_names() {
        let s = Scheme::Vgg;
        // RepDistiller's `blockK` Sequentials: (conv, BN, ReLU) per layer, so layer l's
        // conv is at 3l and its BN at 3l + 1 (the block's last ReLU is left out, which
        // moves no index).
        assert_eq!(s.to_pytorch("stage1.0.conv.weight"), "block0.0.weight");
        assert_eq!(s.to_pytorch("stage1.1.conv.weight"), "block0.3.weight");
        assert_eq!(s.to_pytorch("stage5.1.bn.weight"), "block4.4.weight");
        assert_eq!(
            s.to_pytorch("stage3.1.bn.running_var"),
            "block2.4.running_var"
        );
        assert_eq!(s.to_pytorch("fc.bias"), "classifier.bias");
        assert_eq!(s.edges(), ["stage1.0.conv.weight", "fc.weight"]);
    }

    #[test]
    fn types_without_a_mapping_are_named() {
        let e = Scheme::of_model("mobilenetv2-cifar")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("mobilenetv2-cifar") && e.contains("resnet8x4"),
            "{e}"
        );
        assert!(is_batch_counter("layer1.0.bn1.num_batches_tracked"));
    }
}
