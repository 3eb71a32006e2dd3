//! Streamed image sets end to end: `pipelines/imagenet-kd.yaml` on a small ImageNet-like
//! tree the test writes (random sizes, JPEG and PNG, one corrupt file, a torchvision
//! ResNet-34 teacher saved by PyTorch); a streamed run equals the in-memory run of the
//! same images; a killed streamed run resumes to the uninterrupted run's metrics.

mod common;

use common::*;
use std::path::Path;

fn picture(w: u32, h: u32, k: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        let band = (k % 3) * 80;
        image::Rgb([
            (x * 200 / w + band) as u8,
            ((y * 200 / h + k * 13) % 256) as u8,
            (band + (x + y) % 40) as u8,
        ])
    })
}

fn save(path: &Path, img: &image::RgbImage, jpeg: bool) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let format = if jpeg {
        image::ImageFormat::Jpeg
    } else {
        image::ImageFormat::Png
    };
    img.save_with_format(path, format).unwrap();
}

/// `root/<split>/n0<c>/` holding `per_class` images of class `c` (sizes 40..100).
fn write_split(root: &Path, split: &str, classes: u32, per_class: u32, same_size: bool) {
    for c in 0..classes {
        for i in 0..per_class {
            let k = c + 3 * i;
            let (w, h) = if same_size {
                (24, 24)
            } else {
                (40 + (k * 37) % 60, 40 + (k * 23) % 60)
            };
            let ext = if same_size { "png" } else { "JPEG" };
            let p = root.join(format!("{split}/n0{c}/{split}_{i}.{ext}"));
            save(&p, &picture(w, h, k), !same_size && i % 3 != 0);
        }
    }
}

#[test]
fn the_imagenet_pipeline_runs_on_a_small_tree_with_a_corrupt_file() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let data = dir.join("data/imagenet");
    write_split(&data, "train", 3, 6, false);
    write_split(&data, "val", 3, 2, false);
    let good = std::fs::read(data.join("train/n00/train_1.JPEG")).unwrap();
    std::fs::write(data.join("train/n01/corrupt.JPEG"), &good[..good.len() / 3]).unwrap();
    // torchvision's own ResNet-34, saved by PyTorch as torchvision's weight files are.
    let t = dir.join("teachers");
    std::fs::create_dir_all(&t).unwrap();
    let o = std::process::Command::new(pyvenv::torch_python())
        .arg(repo().join("tests/python/torch_roundtrip.py"))
        .args(["make", "torchvision.resnet34", "3", t.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::rename(t.join("plain.pth"), t.join("resnet34-b627a593.pth")).unwrap();

    let pipeline = repo().join("pipelines/imagenet-kd.yaml");
    let mut args = vec![pipeline.to_str().unwrap(), "--run-dir", "run"];
    let sets = [
        "device=cpu",
        "data.size=32",
        "data.val_size=3",
        "stages.resnet18_alone.epochs=1",
        "stages.resnet18_alone.batch_size=8",
        "stages.resnet18_alone.workers=2",
        "stages.resnet18_kd.epochs=2",
        "stages.resnet18_kd.batch_size=8",
        "stages.resnet18_kd.workers=2",
        "stages.resnet18_kd.eval_every=1",
    ];
    for s in &sets {
        args.extend(["--set", s]);
    }
    let o = run(dir, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("corrupt.JPEG") && err.contains("on_bad_image: skip"),
        "the skipped file is named: {err}"
    );
    let run_dir = dir.join("run");
    let teacher = stage_summary(&run_dir.join("resnet34"));
    assert!((0.0..=1.0).contains(&teacher["final_test_acc"].as_f64().unwrap()));
    for st in ["resnet18_alone", "resnet18_kd"] {
        let m = metrics_without_timing(&run_dir.join(st));
        let last = m.last().unwrap();
        assert!(
            last["loss"]["total"].as_f64().unwrap().is_finite(),
            "{st}: {last}"
        );
        assert!(
            last["test_acc"].is_number() && last["val_acc"].is_number(),
            "{st}: {last}"
        );
    }
    let kd = metrics_without_timing(&run_dir.join("resnet18_kd"));
    assert_eq!(kd.len(), 2);
    assert!(kd[1]["loss"]["kd"].as_f64().unwrap() > 0.0);
    assert!(kd[1]["test_agreement"].is_number());
}

/// A pipeline training a small CNN on the tree under `data` as `data_block` reads it.
fn small_pipeline(dir: &Path, name: &str, data_block: &str) -> String {
    let text = format!(
        "name: {name}\nseed: 3\ndevice: cpu\ndata:\n{data_block}\nstages:\n  \
         net:\n    kind: train\n    model: {{type: small-cnn}}\n    augment: {{type: standard, pad: 2, flip: true}}\n    \
         epochs: 3\n    batch_size: 4\n    workers: 2\n    eval_every: 1\n    \
         optimizer: {{type: sgd, lr: 0.05, momentum: 0.9}}\n"
    );
    write(dir, &format!("{name}.yaml"), &text);
    format!("{name}.yaml")
}

#[test]
fn a_streamed_run_equals_the_in_memory_run_of_the_same_images() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    write_split(&dir.join("data"), "train", 3, 8, true);
    write_split(&dir.join("data"), "test", 3, 2, true);
    let norm = "  normalize: {mean: [0.4, 0.4, 0.4], std: [0.3, 0.3, 0.3]}\n  val_size: 6";
    let memory = small_pipeline(
        dir,
        "memory",
        &format!("  type: image-folder\n  path: data\n{norm}"),
    );
    let streamed = small_pipeline(
        dir,
        "streamed",
        &format!(
            "  type: image-stream\n  path: data\n  size: 24\n  resize: 24\n  train_crop: center\n{norm}"
        ),
    );
    for (p, r) in [(&memory, "run-memory"), (&streamed, "run-streamed")] {
        let o = run(dir, &[p, "--run-dir", r]);
        assert!(o.status.success(), "{p}: {}", stderr(&o));
    }
    let a = metrics_without_timing(&dir.join("run-memory/net"));
    let b = metrics_without_timing(&dir.join("run-streamed/net"));
    assert_eq!(a.len(), 3);
    assert_eq!(a, b);
}

#[test]
fn a_killed_streamed_run_resumes_to_the_uninterrupted_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    write_split(&dir.join("data"), "train", 3, 10, false);
    write_split(&dir.join("data"), "val", 3, 2, false);
    let p = small_pipeline(
        dir,
        "stream",
        "  type: image-stream\n  path: data\n  size: 24\n  val_size: 6",
    );
    let o = run(dir, &[&p, "--run-dir", "reference"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_resumes_to_same_metrics(dir, &[&p], "killed", "reference", "net");
}
