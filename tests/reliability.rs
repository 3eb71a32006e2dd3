//! Faults: a second process on a busy run directory, non-finite losses, damaged resume
//! state (truncated, or one byte flipped), a checkpoint of another architecture,
//! out-of-range values, SIGINT/SIGTERM inside a training epoch and inside an in-process
//! search.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn teacher_only(epochs: usize) -> String {
    format!(
        "name: r\nseed: 2\ndevice: cpu\n{TINY_DATA}stages:\n{}",
        teacher_stage(epochs, 64)
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

/// Runs a 3-epoch teacher as a reference and a 2-epoch run of it, applies `damage` to the
/// second run's epoch-2 weights, and checks that the rerun of the 3-epoch teacher calls
/// that state unusable, resumes after epoch 1 and ends with the reference's metrics.
fn damaged_state_falls_back(damage: impl Fn(&std::path::Path)) {
    let d = tempfile::tempdir().unwrap();
    // A constant learning rate: the first epochs do not depend on the run's length.
    let text = teacher_only(3) + "    lr_schedule: {type: constant}\n";
    let f = write(d.path(), "p.yaml", &text);
    let p = f.to_str().unwrap();
    let o = run(d.path(), &[p, "--run-dir", "ref"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(
        d.path(),
        &[p, "--run-dir", "run", "--set", "stages.teacher.epochs=2"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let stage = d.path().join("run/teacher");
    damage(&stage.join("state/epoch-2/weights.safetensors"));
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
fn a_truncated_latest_state_falls_back_to_the_previous_epoch() {
    // As a crash mid-write could leave it.
    damaged_state_falls_back(|w| {
        let len = std::fs::metadata(w).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(w)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
    });
}

#[test]
fn a_latest_state_with_one_flipped_byte_falls_back_to_the_previous_epoch() {
    // Same length, one weight's byte altered (a bad disk block): only the checksum sees it.
    damaged_state_falls_back(|w| {
        let mut bytes = std::fs::read(w).unwrap();
        let at = bytes.len() - 3;
        bytes[at] ^= 0x40;
        std::fs::write(w, &bytes).unwrap();
    });
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

/// A train stage, then a distill stage from it: 100 steps an epoch, so a signal sent part
/// of an epoch after one has ended lands well inside the next (the first epoch, slowed by
/// warm-up, is not used as the yardstick).
fn train_then_distill() -> String {
    format!(
        "name: r\nseed: 5\ndevice: cpu\n{TINY_DATA}stages:\n{}{}",
        teacher_stage(4, 10),
        kd_stage("student", "teacher", 4, 10)
    )
}

/// Runs `args`, sends `signal` a fifth of an epoch after the log shows `stage` finishing
/// epoch `epoch`, and returns the run's log. The yardstick is the stage's fastest epoch so
/// far (each log line gives its seconds): under a loaded machine one epoch can take 5x
/// another, and a slow one as the yardstick sent the signal past the next epoch's end.
/// The run must end with exit code 130.
fn signal_inside_epoch(
    cwd: &std::path::Path,
    args: &[&str],
    stage: &str,
    epoch: usize,
    signal: i32,
) -> String {
    let marker = format!("{stage}: epoch {epoch}/");
    let any_epoch = format!("{stage}: epoch ");
    let mut fastest = f64::INFINITY;
    let run = run_and_signal(cwd, args, signal, |line| {
        if line.starts_with(&any_epoch) {
            // "... (1234 img/s, 0.8s)": the epoch's seconds.
            let seconds: f64 = line
                .rsplit_once(", ")
                .and_then(|(_, s)| s.strip_suffix("s)"))
                .and_then(|s| s.parse().ok())
                .unwrap_or(0.5);
            fastest = fastest.min(seconds);
        }
        if !line.starts_with(&marker) {
            return None;
        }
        Some(Duration::from_secs_f64(0.2 * fastest.clamp(0.1, 10.0)))
    });
    assert!(run.sent, "no signal sent:\n{}", run.log);
    assert_eq!(run.status.code(), Some(130), "{}", run.log);
    run.log
}

/// The mid-epoch state folders (`epoch-<k>-step-<s>`) of a stage.
fn mid_epoch_states(stage_dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(stage_dir.join("state"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("-step-"))
        .collect()
}

#[test]
fn sigint_and_sigterm_inside_an_epoch_save_it_and_the_rerun_resumes_there() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "p.yaml", &train_then_distill());
    let p = f.to_str().unwrap();
    let o = run(d.path(), &[p, "--run-dir", "clean"]);
    assert!(o.status.success(), "{}", stderr(&o));

    let args = [p, "--run-dir", "cut"];
    let cut = d.path().join("cut");
    let log = signal_inside_epoch(d.path(), &args, "teacher", 2, libc::SIGINT);
    assert!(
        log.contains("teacher: interrupted inside epoch 3/4 after step"),
        "{log}"
    );
    let states = mid_epoch_states(&cut.join("teacher"));
    assert_eq!(states.len(), 1, "{states:?}");
    assert!(states[0].starts_with("epoch-2-step-"), "{states:?}");

    // The rerun resumes the teacher inside its second epoch; SIGTERM stops the student.
    let log = signal_inside_epoch(d.path(), &args, "student", 2, libc::SIGTERM);
    assert!(
        log.contains("teacher: resuming inside epoch 3/4, after step"),
        "{log}"
    );
    assert!(
        log.contains("student: interrupted inside epoch 3/4 after step"),
        "{log}"
    );
    assert!(mid_epoch_states(&cut.join("teacher")).is_empty());
    assert_eq!(mid_epoch_states(&cut.join("student")).len(), 1);

    let o = run(d.path(), &args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("student: resuming inside epoch 3/4, after step"),
        "{}",
        stderr(&o)
    );
    for stage in ["teacher", "student"] {
        assert_eq!(
            metrics_without_timing(&d.path().join("clean").join(stage)),
            metrics_without_timing(&cut.join(stage)),
            "{stage}"
        );
        assert_eq!(
            std::fs::read(
                d.path()
                    .join("clean")
                    .join(stage)
                    .join("checkpoint/weights.safetensors")
            )
            .unwrap(),
            std::fs::read(cut.join(stage).join("checkpoint/weights.safetensors")).unwrap(),
            "{stage}: final weights"
        );
    }
}

#[test]
fn sigint_to_an_in_process_search_exits_130_and_the_rerun_ends_equal() {
    let d = tempfile::tempdir().unwrap();
    let text = format!(
        "name: s\nseed: 3\ndevice: cpu\n{TINY_DATA}stages:\n{}",
        search_stage(
            "search",
            "{type: pba, population: 4, interval: 1}",
            300,
            200,
            4
        )
    );
    let f = write(d.path(), "p.yaml", &text);
    let p = f.to_str().unwrap();
    run_ok(d.path(), &[&[p, "--run-dir", "clean"]]);
    let args = [p, "--run-dir", "cut"];
    let cut = run_and_signal(d.path(), &args, libc::SIGINT, |line| {
        line.starts_with("search: member ")
            .then_some(())
            .filter(|_| line.contains(" reported epoch 2/4"))
            .map(|_| Duration::from_millis(30))
    });
    assert!(cut.sent, "no signal sent:\n{}", cut.log);
    assert_eq!(cut.status.code(), Some(130), "{}", cut.log);
    assert!(!d.path().join("cut/search/result.json").exists());
    let o = run_ok(d.path(), &[&args]);
    assert!(
        stderr(&o).contains("search: resuming the search"),
        "{}",
        stderr(&o)
    );
    let (a, b) = (d.path().join("clean/search"), d.path().join("cut/search"));
    assert_eq!(results_by_member_epoch(&a), results_by_member_epoch(&b));
    assert_eq!(
        std::fs::read(a.join("schedule.json")).unwrap(),
        std::fs::read(b.join("schedule.json")).unwrap()
    );
}
