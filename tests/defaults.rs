//! Defaults that train: every model family of the zoo, trained and distilled for one short
//! epoch with nothing but the stage defaults (optimizer, schedule, batch size, losses),
//! beats chance by a clear margin and raises no health warning, on 1x28x28 Fashion-MNIST
//! and on 3x32x32 images (the same Fashion-MNIST images, padded and coloured, written in
//! CIFAR-10's binary layout so the CIFAR loader reads them).
//!
//! The depthwise families (MobileNetV2, ShuffleNetV2) are the slowest to train on a CPU and
//! need more than 16 steps to leave chance: their check (two epochs of 48 steps) is
//! `depthwise_models_train_with_the_defaults`, ignored in CI for its minutes
//! (`cargo test --test defaults -- --ignored`).

mod common;
use common::*;
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Each family of the zoo at a size that trains in seconds here.
const MODELS: &[(&str, &str)] = &[
    ("small_cnn", "{type: small-cnn}"),
    ("resnet8", "{type: resnet-cifar, depth: 8, width: 16}"),
    (
        "resnet8_w2a2",
        "{type: resnet-cifar, depth: 8, width: 16, quant: {weight_bits: 2, activation_bits: 2}}",
    ),
    ("resnet18", "{type: resnet18-cifar, width: 8}"),
    ("wrn10_1", "{type: wrn, depth: 10, widen_factor: 1}"),
    ("vgg8", "{type: vgg-cifar, depth: 8}"),
];

/// The depthwise families, at the width the defaults table (docs/pipelines.md) measures.
const DEPTHWISE: &[(&str, &str)] = &[
    ("mobilenetv2", "{type: mobilenetv2-cifar, width_mult: 0.5}"),
    (
        "shufflenetv2",
        "{type: shufflenetv2-cifar, width_mult: 0.5}",
    ),
];

/// 2,048 training images: 16 steps at the default batch of 128, enough for the health
/// check to judge the epoch.
const TRAIN: usize = 2048;
const TEST: usize = 1000;

/// One train stage per model, and a distill stage (default losses) for each of `distilled`
/// from the first model's checkpoint: the small CNN, the one of the zoo that leaves 16
/// steps well trained (73% here), so the distilled students learn from a teacher worth
/// following.
fn zoo_pipeline(
    data: &str,
    epochs: usize,
    models: &[(&str, &str)],
    distilled: &[(&str, &str)],
) -> String {
    let mut stages = String::new();
    for (name, model) in models {
        stages.push_str(&train_stage(name, model, epochs));
    }
    let teacher = models[0].0;
    for (name, model) in distilled {
        stages.push_str(&format!(
            "  kd_{name}:\n    kind: distill\n    teacher: ${{train_{teacher}.checkpoint}}\n    model: {model}\n    epochs: {epochs}\n"
        ));
    }
    format!("name: zoo\nseed: 0\ndevice: cpu\n{data}stages:\n{stages}")
}

fn train_stage(name: &str, model: &str, epochs: usize) -> String {
    format!("  train_{name}:\n    kind: train\n    model: {model}\n    epochs: {epochs}\n")
}

/// The models that get two epochs on 1x28x28. VGG-8, with RepDistiller's pooling (issue
/// 30; its last two blocks at 3x3 there), ends one 16-step epoch at 49% training but 9.6%
/// test accuracy, its BN running statistics behind the weights as the depthwise
/// families' are; after two epochs it tests at 66.4%.
const TWO_EPOCHS_AT_28: &[&str] = &["vgg8"];

fn fashion_dir() -> PathBuf {
    std::env::var_os("ROLEKD_FASHION_MNIST")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/share/datasets/fashion-mnist"))
}

/// The first `n` images (28x28 bytes each) and labels of a Fashion-MNIST IDX pair.
fn read_fashion(prefix: &str, n: usize) -> (Vec<u8>, Vec<u8>) {
    let gunzip = |name: String| {
        let mut out = Vec::new();
        GzDecoder::new(std::fs::File::open(fashion_dir().join(&name)).unwrap())
            .read_to_end(&mut out)
            .unwrap();
        out
    };
    let images = gunzip(format!("{prefix}-images-idx3-ubyte.gz"));
    let labels = gunzip(format!("{prefix}-labels-idx1-ubyte.gz"));
    (images[16..16 + n * 784].to_vec(), labels[8..8 + n].to_vec())
}

/// CIFAR-10 records: label, then R, G, B planes of 32x32. Each Fashion-MNIST image is
/// padded by 2 pixels and tinted a little differently per channel.
fn cifar_records(images: &[u8], labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(labels.len() * 3073);
    for (k, &label) in labels.iter().enumerate() {
        out.push(label);
        let img = &images[k * 784..(k + 1) * 784];
        for scale in [1.0f32, 0.8, 0.6] {
            for y in 0..32 {
                for x in 0..32 {
                    let v = if (2..30).contains(&y) && (2..30).contains(&x) {
                        img[(y - 2) * 28 + (x - 2)]
                    } else {
                        0
                    };
                    out.push((v as f32 * scale) as u8);
                }
            }
        }
    }
    out
}

/// Writes CIFAR-10's six binary files into `dir` from Fashion-MNIST images.
fn write_cifar_from_fashion(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let (images, labels) = read_fashion("train", TRAIN);
    let per = TRAIN / 5;
    for b in 0..5 {
        let records = cifar_records(
            &images[b * per * 784..(b + 1) * per * 784],
            &labels[b * per..(b + 1) * per],
        );
        std::fs::write(dir.join(format!("data_batch_{}.bin", b + 1)), records).unwrap();
    }
    let (images, labels) = read_fashion("t10k", TEST);
    std::fs::write(dir.join("test_batch.bin"), cifar_records(&images, &labels)).unwrap();
}

/// What a stage must reach: test accuracy and mean training accuracy of its epoch
/// (chance is 10% for both).
struct Bar {
    test: f64,
    train: f64,
}

/// Every stage the pipeline has for `models` cleared `bar`, and its training health raised
/// no warning.
fn check_zoo(run_dir: &Path, models: &[(&str, &str)], distilled: &[(&str, &str)], bar: Bar) {
    let trained = models.iter().map(|(n, _)| format!("train_{n}"));
    let stages: Vec<String> = trained
        .chain(distilled.iter().map(|(n, _)| format!("kd_{n}")))
        .collect();
    assert!(stages.len() >= models.len());
    for stage in stages {
        let dir = run_dir.join(&stage);
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("result.json")).unwrap())
                .unwrap();
        let acc = v["result"]["summary"]["final_test_acc"].as_f64().unwrap();
        assert!(
            acc > bar.test,
            "{stage}: test acc {acc} (chance 0.1, wanted > {})",
            bar.test
        );
        let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
        let last: serde_json::Value =
            serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
        let train = last["train_acc"].as_f64().unwrap();
        // The defaults table in docs/pipelines.md comes from these lines (`-- --nocapture`).
        println!("zoo {stage}: test acc {acc:.3}, train acc {train:.3}");
        assert!(
            train > bar.train,
            "{stage}: train acc {train} (chance 0.1, wanted > {})",
            bar.train
        );
        assert!(
            v["result"].get("warnings").is_none(),
            "{stage}: {}",
            v["result"]["warnings"]
        );
    }
}

/// The fast families' bar after 16 steps: issue 19's failure (stuck at 10%, loss at or
/// above ln 10) fails it; the slowest starters measured here, the ResNets, end the 16
/// steps at 20-25% test accuracy (their BN running statistics lag the weights that early)
/// and at 20-33% training accuracy.
const FAST_BAR: Bar = Bar {
    test: 0.15,
    train: 0.15,
};

/// Distilled on 1x28x28: the small CNN itself and the quantised ResNet (the precision
/// setting's student); distillation on 3x32x32 shares the same code path.
fn distilled() -> Vec<(&'static str, &'static str)> {
    vec![MODELS[0], MODELS[2]]
}

#[test]
fn every_model_trains_with_the_defaults_on_grayscale_28() {
    let d = tempfile::tempdir().unwrap();
    let data = format!("data: {{type: fashion-mnist, train_size: {TRAIN}, test_size: {TEST}}}\n");
    let (two, one): (Vec<_>, Vec<_>) = MODELS
        .iter()
        .copied()
        .partition(|(n, _)| TWO_EPOCHS_AT_28.contains(n));
    let mut pipeline = zoo_pipeline(&data, 1, &one, &distilled());
    for (name, model) in two {
        pipeline.push_str(&train_stage(name, model, 2));
    }
    let f = write(d.path(), "zoo.yaml", &pipeline);
    let o = run(d.path(), &[f.to_str().unwrap(), "--run-dir", "run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    check_zoo(&d.path().join("run"), MODELS, &distilled(), FAST_BAR);
}

#[test]
fn every_model_trains_with_the_defaults_on_colour_32() {
    let d = tempfile::tempdir().unwrap();
    let cifar = d.path().join("cifar");
    write_cifar_from_fashion(&cifar);
    let data = format!("data: {{type: cifar10, path: {}}}\n", cifar.display());
    let f = write(d.path(), "zoo.yaml", &zoo_pipeline(&data, 1, MODELS, &[]));
    let o = run(d.path(), &[f.to_str().unwrap(), "--run-dir", "run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    check_zoo(&d.path().join("run"), MODELS, &[], FAST_BAR);
}

/// Two epochs of 48 steps (6,144 images; the default warm-up fills the first): after one
/// epoch without warm-up the depthwise families train (MobileNetV2 57%, ShuffleNetV2 41%
/// training accuracy) but test near chance (15%, 30%), their BN running statistics
/// lagging the fast-moving weights; after these two they test at 83% and 77%.
#[test]
#[ignore = "minutes on a 2-core CPU: cargo test --test defaults -- --ignored"]
fn depthwise_models_train_with_the_defaults() {
    let d = tempfile::tempdir().unwrap();
    let data = "data: {type: fashion-mnist, train_size: 6144, test_size: 1000}\n";
    let models = [MODELS[0], DEPTHWISE[0], DEPTHWISE[1]];
    let f = write(
        d.path(),
        "zoo.yaml",
        &zoo_pipeline(data, 2, &models, DEPTHWISE),
    );
    let o = run(d.path(), &[f.to_str().unwrap(), "--run-dir", "run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bar = Bar {
        test: 0.5,
        train: 0.4,
    };
    check_zoo(&d.path().join("run"), &models, DEPTHWISE, bar);
}
