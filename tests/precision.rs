//! `precision: bf16`: a teacher and a 2-bit student distilled from it train under bf16
//! autocast to finite losses and useful accuracy, differ from the fp32 run (autocast really
//! ran), resume after SIGKILL to identical metrics, keep fp32 checkpoints, and bad values
//! are located errors.

mod common;
use common::*;

fn pipeline(precision_line: &str, epochs: usize) -> String {
    format!(
        "name: bf16\nseed: 5\ndevice: cpu\n{precision_line}{TINY_DATA}stages:
  teacher:
    kind: train
    model: {{type: small-cnn, channels: [8, 16]}}
    epochs: 2
    batch_size: 64
    optimizer: {{type: sgd, lr: 0.05, momentum: 0.9}}
    lr_schedule: {{type: constant}}
  student:
    kind: distill
    teacher: ${{teacher.checkpoint}}
    model: {{type: small-cnn, channels: [8, 16], quant: {{weight_bits: 2, activation_bits: 2}}}}
    init: ${{teacher.checkpoint}}
    epochs: {epochs}
    batch_size: 64
    lr_schedule: {{type: constant}}
    loss: [{{type: ce, weight: 0.5}}, {{type: kd, weight: 0.5, temperature: 4}}]
"
    )
}

#[test]
fn bf16_distils_a_quantised_student_and_resumes_after_sigkill_to_identical_metrics() {
    let d = tempfile::tempdir().unwrap();
    let bf16 = write(d.path(), "bf16.yaml", &pipeline("precision: bf16\n", 3));
    let fp32 = write(d.path(), "fp32.yaml", &pipeline("", 3));
    let o = run(d.path(), &[bf16.to_str().unwrap(), "--run-dir", "ref"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A CPU without native bf16 gets told that bf16 is emulated (slow) here.
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let native = flags.contains(" avx512_bf16") || flags.contains(" amx_bf16");
    assert_eq!(
        stderr(&o).contains("no native bf16"),
        !native && !flags.is_empty(),
        "{}",
        stderr(&o)
    );
    let o = run(d.path(), &[fp32.to_str().unwrap(), "--run-dir", "fp32"]);
    assert!(o.status.success(), "{}", stderr(&o));

    let ref_metrics = metrics_without_timing(&d.path().join("ref/student"));
    let fp32_metrics = metrics_without_timing(&d.path().join("fp32/student"));
    for m in &ref_metrics {
        let loss = m["loss"]["total"].as_f64().unwrap();
        assert!(loss.is_finite() && loss > 0.0, "{m}");
    }
    // Autocast really ran: the same seed in fp32 gives other losses, yet about the same
    // accuracy (both well above chance on this slice).
    assert_ne!(ref_metrics, fp32_metrics);
    for stage in ["teacher", "student"] {
        let a = stage_summary(&d.path().join("ref").join(stage))["final_test_acc"]
            .as_f64()
            .unwrap();
        let b = stage_summary(&d.path().join("fp32").join(stage))["final_test_acc"]
            .as_f64()
            .unwrap();
        assert!(a > 0.5 && b > 0.5, "{stage}: bf16 {a}, fp32 {b}");
        // A mechanics check, not the accuracy claim: these 2-3 epoch runs on 1,000 images
        // diverge step by step, and differ by a few points from that alone. The claim's
        // tolerance is held below on fixed weights, and measured over five quickstart seeds.
        assert!((a - b).abs() < 0.08, "{stage}: bf16 {a} vs fp32 {b}");
    }
    // Checkpoints stay fp32: the bf16 run's file is the fp32 run's size.
    let size = |run: &str| {
        std::fs::metadata(
            d.path()
                .join(run)
                .join("student/checkpoint/weights.safetensors"),
        )
        .unwrap()
        .len()
    };
    assert_eq!(size("ref"), size("fp32"));

    // SIGKILL once the student's first epoch is saved, then rerun: the same metrics.
    assert_resumes_to_same_metrics(
        d.path(),
        &[bf16.to_str().unwrap()],
        "killed",
        "ref",
        "student",
    );
}

/// The pipeline's teacher stage alone, with `stage_line` added to it.
fn teacher_only(precision_line: &str, stage_line: &str) -> String {
    let full = pipeline(precision_line, 1);
    let teacher = full.split("  student:\n").next().unwrap();
    format!("{teacher}{stage_line}")
}

#[test]
fn a_stage_precision_overrides_the_pipeline_and_bad_values_are_located() {
    let d = tempfile::tempdir().unwrap();
    // A stage's own `precision: fp32` under a bf16 pipeline trains exactly as fp32 does.
    let mixed = teacher_only("precision: bf16\n", "    precision: fp32\n");
    let mixed = write(d.path(), "mixed.yaml", &mixed);
    let fp32 = write(d.path(), "fp32.yaml", &teacher_only("", ""));
    for (f, dir) in [(&mixed, "mixed"), (&fp32, "fp32")] {
        let o = run(d.path(), &[f.to_str().unwrap(), "--run-dir", dir]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(
        metrics_without_timing(&d.path().join("mixed/teacher")),
        metrics_without_timing(&d.path().join("fp32/teacher"))
    );

    let bad = write(d.path(), "bad.yaml", &teacher_only("precision: fp16\n", ""));
    let o = run(d.path(), &[bad.to_str().unwrap(), "--dry-run"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("bad.yaml:4:") && e.contains("`fp16`"), "{e}");
    assert!(e.contains("fp32 or bf16"), "{e}");

    let bad_stage = write(
        d.path(),
        "bad_stage.yaml",
        &teacher_only("", "    precision: half\n"),
    );
    let o = run(d.path(), &[bad_stage.to_str().unwrap(), "--dry-run"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("bad_stage.yaml:") && e.contains("precision"),
        "{e}"
    );
    assert!(
        e.contains("half") && e.contains("fp32") && e.contains("bf16"),
        "{e}"
    );
}

/// The docs claim bf16 within 0.15 accuracy points of fp32 (five quickstart seeds,
/// `results/bf16-accuracy-quickstart/`). Over a fixed seed, the part of that claim a test
/// can hold exactly: the same fp32 weights, evaluated under bf16 autocast and in fp32 on
/// 5,000 test images, differ by at most 0.15 points (7 images). Training itself diverges
/// step by step under bf16, so two tiny runs differ by more than the claim from noise
/// alone; the five-seed measurement is the evidence for training.
#[test]
fn bf16_evaluation_of_fp32_weights_is_within_the_claimed_tolerance() {
    let d = tempfile::tempdir().unwrap();
    let text = |precision_line: &str| {
        format!(
            "name: bf16-eval\nseed: 5\ndevice: cpu\n{precision_line}data:\n  type: fashion-mnist\n  train_size: 2000\n  test_size: 5000\nstages:
  teacher:
    kind: train
    precision: fp32
    model: {{type: small-cnn, channels: [8, 16]}}
    epochs: 2
    batch_size: 64
    optimizer: {{type: sgd, lr: 0.05, momentum: 0.9}}
  evaluated:
    kind: evaluate
    checkpoint: ${{teacher.checkpoint}}
"
        )
    };
    let fp32 = write(d.path(), "fp32.yaml", &text(""));
    let bf16 = write(d.path(), "bf16.yaml", &text("precision: bf16\n"));
    for (f, dir) in [(&fp32, "fp32"), (&bf16, "bf16")] {
        let o = run(d.path(), &[f.to_str().unwrap(), "--run-dir", dir]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    // The same weights (the teacher trained in fp32 both times)...
    assert_eq!(
        metrics_without_timing(&d.path().join("fp32/teacher")),
        metrics_without_timing(&d.path().join("bf16/teacher"))
    );
    // ...evaluated both ways.
    let acc = |dir: &str| {
        stage_summary(&d.path().join(dir).join("evaluated"))["test_acc"]
            .as_f64()
            .unwrap()
    };
    let (a, b) = (acc("fp32"), acc("bf16"));
    assert!(a > 0.6, "fp32 {a}");
    assert!((a - b).abs() <= 0.0015, "bf16 {b} vs fp32 {a}");
}
