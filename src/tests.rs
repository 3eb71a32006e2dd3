//! `link_builtins` keeps every built-in plugin: the list is `rolekd-run plugins` of the
//! binary before the core/engine split (plus the plugins added since), so a crate dropped from `link_builtins` (or a
//! plugin renamed or lost) fails here rather than in a user's pipeline.

use rolekd_core::registry::{PluginKind, PluginKind::*, PluginSource, Registry};
use std::collections::BTreeSet;

/// (crate, kind, names) of every built-in plugin.
const BUILTINS: &[(&str, PluginKind, &[&str])] = &[
    (
        "rolekd-data",
        Dataset,
        &[
            "cifar10",
            "cifar100",
            "fashion-mnist",
            "image-folder",
            "image-stream",
            "mnist",
            "tensors",
        ],
    ),
    (
        "rolekd-models",
        Model,
        &[
            "mobilenetv2-cifar",
            "resnet-cifar",
            "resnet110",
            "resnet14",
            "resnet18",
            "resnet18-cifar",
            "resnet20",
            "resnet32",
            "resnet32x4",
            "resnet34",
            "resnet44",
            "resnet56",
            "resnet8",
            "resnet8x4",
            "shufflenetv2-cifar",
            "small-cnn",
            "vgg-cifar",
            "wrn",
        ],
    ),
    (
        "rolekd-augment",
        AugmentOp,
        &[
            "AutoContrast",
            "Brightness",
            "Color",
            "Contrast",
            "Cutout",
            "Equalize",
            "FlipLR",
            "Identity",
            "Invert",
            "PadCrop",
            "Posterize",
            "Rotate",
            "Sharpness",
            "ShearX",
            "ShearY",
            "Solarize",
            "TranslateX",
            "TranslateY",
            "cutout",
        ],
    ),
    (
        "rolekd-augment",
        AugmentPolicy,
        &[
            "autoaugment-cifar10",
            "cutmix",
            "mixup",
            "none",
            "ops",
            "pba",
            "pba-schedule",
            "randaugment",
            "standard",
            "trivialaugment",
        ],
    ),
    (
        "rolekd-kd",
        Loss,
        &[
            "ab", "at", "cc", "ce", "crd", "dist", "dkd", "fitnet", "fsp", "ft", "ickd", "kd",
            "kd-svd", "logits", "mhgd", "nst", "pkt", "rkd", "sp", "vid",
        ],
    ),
    ("rolekd-optim", Optimizer, &["adam", "adamw", "sgd"]),
    (
        "rolekd-optim",
        LrSchedule,
        &["constant", "cosine", "multistep", "step"],
    ),
    ("rolekd-search", SearchStrategy, &["grid", "pba", "random"]),
    ("rolekd-search", Stage, &["search"]),
    (
        "rolekd-train-stages",
        Stage,
        &["distill", "evaluate", "train"],
    ),
    ("rolekd-interop", Stage, &["import"]),
];

#[test]
fn link_builtins_registers_every_built_in_plugin() {
    super::link_builtins();
    let reg = Registry::global().read().unwrap();
    let mut expected = BTreeSet::new();
    for (krate, kind, names) in BUILTINS {
        for name in *names {
            let entry = reg
                .get(*kind, name)
                .unwrap_or_else(|e| panic!("{krate}: {e}"));
            assert_eq!(entry.source, PluginSource::Crate(krate.to_string()));
            expected.insert((*kind, name.to_string()));
        }
    }
    let registered: BTreeSet<(PluginKind, String)> =
        reg.entries().map(|e| (e.kind(), e.name.clone())).collect();
    assert_eq!(registered, expected);
    assert_eq!(expected.len(), 89);
}
