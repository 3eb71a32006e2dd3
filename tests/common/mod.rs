//! Helpers for the integration tests: run the real `rolekd-run` on real Fashion-MNIST.
#![allow(dead_code)]

pub mod pyvenv;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rolekd-run"))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `rolekd-run` with `args` in `cwd`.
pub fn run(cwd: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("rolekd-run starts")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs `rolekd-run` with `args` in `cwd`, SIGKILLs it once `marker` (relative to `cwd`)
/// exists (e.g. a stage's `state/latest.json`: its first epoch is saved), then reruns it
/// to the end and returns the rerun's output.
pub fn kill_when_then_rerun(cwd: &Path, args: &[&str], marker: &str) -> Output {
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let marker = cwd.join(marker);
    let t0 = std::time::Instant::now();
    while !marker.exists() && t0.elapsed() < std::time::Duration::from_secs(120) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(marker.exists(), "{} was never written", marker.display());
    run(cwd, args)
}

/// SIGKILLs a run of `args` in `cwd` once stage `stage`'s first epoch is saved under run
/// directory `killed`, reruns it, and checks that the rerun resumed and that the stage's
/// metrics equal those of the uninterrupted run in `reference` (both relative to `cwd`).
pub fn assert_resumes_to_same_metrics(
    cwd: &Path,
    args: &[&str],
    killed: &str,
    reference: &str,
    stage: &str,
) {
    let mut all = args.to_vec();
    all.extend(["--run-dir", killed]);
    let o = kill_when_then_rerun(cwd, &all, &format!("{killed}/{stage}/state/latest.json"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("resuming after epoch"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        metrics_without_timing(&cwd.join(reference).join(stage)),
        metrics_without_timing(&cwd.join(killed).join(stage))
    );
}

/// A finished stage's `result.json` summary.
pub fn stage_summary(stage_dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(stage_dir.join("result.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["result"]["summary"].clone()
}

/// Writes a pipeline file and returns its path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// A small real slice of Fashion-MNIST: 1,000 training and 500 test images.
pub const TINY_DATA: &str = "data:\n  type: fashion-mnist\n  train_size: 1000\n  test_size: 500\n";

/// A teacher, a student alone and a distilled student, one short epoch each.
pub fn tiny_pipeline(epochs: usize) -> String {
    format!(
        "name: tiny\nseed: 3\ndevice: cpu\n{TINY_DATA}stages:
  teacher:
    kind: train
    model: {{type: small-cnn, channels: [8, 16]}}
    augment: {{type: standard, pad: 2}}
    epochs: {epochs}
    batch_size: 64
    optimizer: {{type: sgd, lr: 0.05}}
  student_alone:
    kind: train
    model: &student {{type: small-cnn, channels: [4, 8]}}
    epochs: {epochs}
    batch_size: 64
  student_kd:
    kind: distill
    teacher: ${{teacher.checkpoint}}
    model: *student
    epochs: {epochs}
    batch_size: 64
    loss: [{{type: ce, weight: 0.5}}, {{type: kd, weight: 0.5, temperature: 4}}]
  check:
    kind: evaluate
    checkpoint: ${{student_kd.checkpoint}}
"
    )
}

/// The metrics of a stage without the timing fields (seconds, images/s, wall time) (which differ run to run).
pub fn metrics_without_timing(stage_dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(stage_dir.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let m = v.as_object_mut().unwrap();
            m.remove("seconds");
            m.remove("images_per_s");
            m.remove("wall_time");
            v
        })
        .collect()
}

/// A search stage's rewards (`results.jsonl`) by (member, epoch).
pub fn results_by_member_epoch(dir: &Path) -> std::collections::BTreeMap<(u64, u64), f64> {
    std::fs::read_to_string(dir.join("results.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                (v["member"].as_u64().unwrap(), v["epoch"].as_u64().unwrap()),
                v["reward"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// A `search` stage `name` over the teacher's schedule: 2 worker threads, a small-cnn
/// [4, 8] trial with SGD, `train_size` / `val_size` images, `strategy` (YAML).
pub fn search_stage(
    name: &str,
    strategy: &str,
    train_size: usize,
    val_size: usize,
    epochs: usize,
) -> String {
    format!(
        "  {name}:
    kind: search
    role: teacher
    train_size: {train_size}
    val_size: {val_size}
    workers: 2
    strategy: {strategy}
    trial:
      model: {{type: small-cnn, channels: [4, 8]}}
      epochs: {epochs}
      batch_size: 50
      optimizer: {{type: sgd, lr: 0.05, momentum: 0.9}}
"
    )
}

/// A `distill` stage `name`: a small-cnn [4, 8] student from stage `teacher`'s checkpoint,
/// half cross-entropy and half Hinton KD at T = 4.
pub fn kd_stage(name: &str, teacher: &str, epochs: usize, batch_size: usize) -> String {
    format!(
        "  {name}:
    kind: distill
    teacher: ${{{teacher}.checkpoint}}
    model: {{type: small-cnn, channels: [4, 8]}}
    epochs: {epochs}
    batch_size: {batch_size}
    loss: [{{type: ce, weight: 0.5}}, {{type: kd, weight: 0.5, temperature: 4}}]
"
    )
}

/// Runs `rolekd-run` with the concatenated argument lists `parts` and fails the test with
/// its stderr unless it succeeds.
pub fn run_ok(cwd: &Path, parts: &[&[&str]]) -> Output {
    let args: Vec<&str> = parts.iter().flat_map(|p| p.iter().copied()).collect();
    let o = run(cwd, &args);
    assert!(o.status.success(), "rolekd-run {args:?}:\n{}", stderr(&o));
    o
}

/// A `train` stage named `teacher`: a small-cnn [8, 16] with the stage defaults.
pub fn teacher_stage(epochs: usize, batch_size: usize) -> String {
    format!(
        "  teacher:
    kind: train
    model: {{type: small-cnn, channels: [8, 16]}}
    epochs: {epochs}
    batch_size: {batch_size}
"
    )
}

/// How a run stopped by [`run_and_signal`] ended.
pub struct Signalled {
    pub status: std::process::ExitStatus,
    /// Its whole stderr log.
    pub log: String,
    /// Whether the signal was sent (kill(2) succeeded).
    pub sent: bool,
}

/// Runs `rolekd-run args` in `cwd` and reads its log; at the first line for which `when`
/// gives a delay, waits that long and sends `signal`. The log is read to its end, so the
/// child never blocks on a full pipe.
pub fn run_and_signal(
    cwd: &Path,
    args: &[&str],
    signal: i32,
    mut when: impl FnMut(&str) -> Option<std::time::Duration>,
) -> Signalled {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(cwd)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = String::new();
    let mut sent = false;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if let Some(delay) = (!sent).then(|| when(&line)).flatten() {
            std::thread::sleep(delay);
            // SAFETY: a plain kill(2) on our own child's pid.
            sent = unsafe { libc::kill(child.id() as i32, signal) } == 0;
        }
    }
    let status = child.wait().unwrap();
    Signalled { status, log, sent }
}
