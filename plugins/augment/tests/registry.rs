//! Every plugin this crate promises is registered under its name and builds from YAML.

use rand::SeedableRng;
use rolekd_core::config::Params;
use rolekd_core::plugin::augment::{AugmentCtx, PolicyCtx};
use rolekd_core::plugin::image::Image;
use rolekd_core::registry::{self, PluginKind, Registry};
use rolekd_core::rng::StreamRng;

#[test]
fn policies_are_registered_and_run() {
    rolekd_augment::link();
    let ctx = PolicyCtx {
        channels: 1,
        height: 28,
        width: 28,
        epochs: 3,
    };
    let genes = format!("[{}]", vec!["1"; 60].join(", "));
    let entries = [
        "none".to_string(),
        "standard".into(),
        "{type: standard, cutout: 8, crop_offsets: pba}".into(),
        format!("{{type: pba, genes: {genes}, cutout: 8}}"),
        "autoaugment-cifar10".into(),
        "{type: randaugment, n: 3, m: 5}".into(),
        "trivialaugment".into(),
        "{type: mixup, alpha: 0.2}".into(),
        "{type: cutmix, base: {type: trivialaugment}}".into(),
        "{type: ops, ops: [{type: Rotate, p: 0.5, level: [1, 8]}, {type: Invert}], choose: 1}"
            .into(),
    ];
    let img = Image::new(28, 28, 1, (0..784).map(|i| (i % 256) as u8).collect());
    for e in entries {
        let params = Params::from_yaml(&e).unwrap();
        let name = params.type_name().unwrap();
        let f = registry::augment_policy(&name).unwrap_or_else(|err| panic!("{err}"));
        let pol = f(&params, &ctx).unwrap_or_else(|err| panic!("{e}: {err}"));
        let mut a = img.clone();
        pol.augment(
            &mut a,
            &AugmentCtx {
                epoch: 1,
                epochs: 3,
            },
            &mut StreamRng::seed_from_u64(5),
        );
        assert_eq!((a.width, a.height, a.channels), (28, 28, 1));
    }
}

#[test]
fn listing_holds_every_name() {
    rolekd_augment::link();
    let reg = Registry::global().read().unwrap();
    let names = |kind| -> Vec<String> {
        reg.entries()
            .filter(|e| e.kind() == kind && e.source.to_string().contains("rolekd-augment"))
            .map(|e| e.name.clone())
            .collect()
    };
    let mut ops = names(PluginKind::AugmentOp);
    ops.sort();
    let mut want: Vec<String> = [
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
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    want.sort();
    assert_eq!(ops, want);
    let mut pols = names(PluginKind::AugmentPolicy);
    pols.sort();
    assert_eq!(
        pols,
        [
            "autoaugment-cifar10",
            "cutmix",
            "mixup",
            "none",
            "ops",
            "pba",
            "pba-schedule",
            "randaugment",
            "standard",
            "trivialaugment"
        ]
    );
    assert!(reg.entries().all(|e| !e.doc.is_empty()));
}
