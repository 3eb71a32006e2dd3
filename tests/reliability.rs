//! Faults: a second process on a busy run directory, non-finite losses, damaged resume
//! state, a checkpoint of another architecture, out-of-range values.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn teacher_only(epochs: usize) -> String {
    format!(
        "name: r\nseed: 2\ndevice: cpu\n{TINY_DATA}stages:
  teacher:
    kind: train
    model: {{type: small-cnn, channels: [8, 16]}}
    epochs: {epochs}
    batch_size: 64
"
    )
}

#[test]
fn a_second_run_on_a_busy_directory_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "p.yaml", &teacher_only(30));
    let p = f.to_str().unwrap();
    let mut first = Command::new(bin())
        .args([p, "--run-dir", "run"])
        .current_dir(d.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = d.path().join("run/.lock");
    let t0 = Instant::now();
    while !lock.exists() && t0.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let second = run(d.path(), &[p, "--run-dir", "run"]);
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(second.status.code(), Some(1));
    assert!(
        stderr(&second).contains("in use by another rolekd-run"),
        "{}",
        stderr(&second)
    );
}

#[test]
fn a_non_finite_loss_names_epoch_step_and_term() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "p.yaml", &teacher_only(1));
    let o = run(
        d.path(),
        &[
            f.to_str().unwrap(),
            "--run-dir",
            "run",
            "--set",
            "stages.teacher.optimizer={type: sgd, lr: 1.0e30}",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("non-finite loss `ce` at epoch 1, step"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn damaged_latest_state_falls_back_to_the_previous_epoch() {
    let d = tempfile::tempdir().unwrap();
    // A constant learning rate: the first epochs do not depend on the run's length.
    let text = teacher_only(3) + "    lr_schedule: {type: constant}\n";
    let f = write(d.path(), "p.yaml", &text);
    let p = f.to_str().unwrap();
    let o = run(d.path(), &[p, "--run-dir", "ref"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Stop after two epochs, then damage epoch 2's weights as a crash mid-write could.
    let o = run(
        d.path(),
        &[p, "--run-dir", "run", "--set", "stages.teacher.epochs=2"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let stage = d.path().join("run/teacher");
    let w = stage.join("state/epoch-2/weights.safetensors");
    let len = std::fs::metadata(&w).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&w)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    // Same stage config as the reference: the 2-epoch result is not reusable, the state is.
    std::fs::remove_file(stage.join("result.json")).unwrap();
    let mut rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(stage.join("stage.json")).unwrap()).unwrap();
    let ref_rec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.path().join("ref/teacher/stage.json")).unwrap(),
    )
    .unwrap();
    rec["hash"] = ref_rec["hash"].clone();
    std::fs::write(stage.join("stage.json"), rec.to_string()).unwrap();
    let o = run(d.path(), &[p, "--run-dir", "run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("unusable") && err.contains("resuming after epoch 1"),
        "{err}"
    );
    assert_eq!(
        metrics_without_timing(&d.path().join("ref/teacher")),
        metrics_without_timing(&stage)
    );
}

#[test]
fn a_checkpoint_of_another_architecture_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let text = teacher_only(1)
        + "  student:\n    kind: train\n    model: {type: small-cnn, channels: [4, 8]}\n    init: ${teacher.checkpoint}\n    epochs: 1\n";
    let f = write(d.path(), "p.yaml", &text);
    let o = run(d.path(), &[f.to_str().unwrap(), "--run-dir", "run"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("another architecture"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn out_of_range_values_are_located() {
    let d = tempfile::tempdir().unwrap();
    let cases = [
        ("stages.teacher.epochs=-1", "stages.teacher.epochs"),
        ("stages.teacher.epochs=0", "must be at least 1"),
        (
            "stages.teacher.model.quant={weight_bits: 0}",
            "bits must be 1..=32",
        ),
        (
            "stages.teacher.optimizer={type: sgd, lr: -0.1}",
            "must be a positive number",
        ),
        // Policies are built while the graph is checked, so these fail before training.
        (
            "stages.teacher.augment={type: pba, policy: [{op: Rotate, slot: 1, prob: 1.5, magnitude: 3}]}",
            "prob 1.5 outside 0..=1",
        ),
        (
            "stages.teacher.augment={type: standard, flipx: true}",
            "unknown field `flipx`",
        ),
    ];
    let f = write(d.path(), "p.yaml", &teacher_only(1));
    for (set, needle) in cases {
        let o = run(
            d.path(),
            &[f.to_str().unwrap(), "--run-dir", "run", "--set", set],
        );
        assert_eq!(o.status.code(), Some(2), "{set}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{set}: {}", stderr(&o));
        assert!(!stderr(&o).contains("epoch 1/"), "{set}: trained first");
        assert!(
            stderr(&o).contains("p.yaml:"),
            "{set}: not located: {}",
            stderr(&o)
        );
    }
}
