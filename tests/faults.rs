//! Faults through the real binary: damaged dataset files, a schedule with a gap, a full
//! disk (a file-size limit), SIGKILL at many points of a train + distill + search
//! pipeline, and one search member whose loss turns non-finite.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

const FMNIST: &str = "/usr/share/datasets/fashion-mnist";

fn gunzip(path: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// A copy of Fashion-MNIST (raw IDX files) with `damage` applied to one file's bytes.
fn damaged_copy(dir: &Path, file: &str, damage: impl Fn(&mut Vec<u8>)) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    for f in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        let mut bytes = gunzip(&Path::new(FMNIST).join(format!("{f}.gz")));
        if f == file {
            damage(&mut bytes);
        }
        std::fs::write(data.join(f), bytes).unwrap();
    }
    data
}

fn data_fault(file: &str, damage: impl Fn(&mut Vec<u8>), needles: &[&str]) {
    let d = tempfile::tempdir().unwrap();
    let data = damaged_copy(d.path(), file, damage);
    let text = format!(
        "name: f\ndevice: cpu\ndata:\n  type: fashion-mnist\n  path: {}\n  train_size: 500\nstages:\n  t:\n    kind: train\n    model: {{type: small-cnn, channels: [4, 8]}}\n    epochs: 1\n",
        data.display()
    );
    let f = write(d.path(), "p.yaml", &text);
    let o = run(d.path(), &[f.to_str().unwrap(), "--run-dir", "out"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    for n in needles {
        assert!(err.contains(n), "expected `{n}` in: {err}");
    }
    assert!(err.contains(file), "the file is named: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    assert!(!d.path().join("out/t/result.json").exists());
}

#[test]
fn damaged_dataset_files_are_reported_by_name() {
    // Cut in the middle of the pixels.
    data_fault(
        "train-images-idx3-ubyte",
        |b| b.truncate(b.len() / 2),
        &["truncated"],
    );
    // Labels where images belong: the magic says so.
    data_fault(
        "t10k-images-idx3-ubyte",
        |b| b[..4].copy_from_slice(&[0, 0, 8, 1]),
        &["bad magic 0x00000801", "0x00000803"],
    );
    // Test images of another size than the training images (14x56: same bytes per image).
    data_fault(
        "t10k-images-idx3-ubyte",
        |b| {
            b[8..12].copy_from_slice(&14u32.to_be_bytes());
            b[12..16].copy_from_slice(&56u32.to_be_bytes());
        },
        &["14x56", "28x28"],
    );
    // A label out of range.
    data_fault("train-labels-idx1-ubyte", |b| b[8] = 42, &["label 42"]);
}

#[test]
fn a_schedule_with_a_gap_is_refused_before_training() {
    let d = tempfile::tempdir().unwrap();
    let genes = vec![0i64; 60];
    let good = rolekd_augment::schedule::Schedule::constant(&genes, 6).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&good.to_json()).unwrap();
    let seg = v["segments"][0].clone();
    let mut first = seg.clone();
    first["end"] = 2.into();
    let mut second = seg;
    second["start"] = 3.into();
    v["segments"] = serde_json::json!([first, second]);
    let sched = write(d.path(), "gappy.json", &v.to_string());
    let text = format!(
        "name: g\ndevice: cpu\n{TINY_DATA}stages:\n  t:\n    kind: train\n    model: {{type: small-cnn, channels: [4, 8]}}\n    augment: {{type: pba-schedule, schedule: {}}}\n    epochs: 1\n",
        sched.display()
    );
    let f = write(d.path(), "p.yaml", &text);
    let o = run(d.path(), &[f.to_str().unwrap(), "--run-dir", "out"]);
    let err = stderr(&o);
    assert_ne!(o.status.code(), Some(0), "{err}");
    for n in ["gappy.json", "gap", "stages.t.augment"] {
        assert!(err.contains(n), "expected `{n}` in: {err}");
    }
    assert!(!err.contains("epoch 1/1"), "nothing trained: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Runs `rolekd-run args` under `ulimit -f <blocks>` (1 KiB blocks).
fn run_with_file_limit(cwd: &Path, blocks: u64, args: &[&str]) -> std::process::Output {
    let mut cmd = format!("ulimit -f {blocks}; exec '{}'", bin().display());
    for a in args {
        cmd.push_str(&format!(" '{a}'"));
    }
    Command::new("bash")
        .args(["-c", &cmd])
        .current_dir(cwd)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap()
}

#[test]
fn a_full_disk_fails_cleanly_and_the_rerun_resumes_to_the_same_result() {
    let d = tempfile::tempdir().unwrap();
    let text = format!(
        "name: full\nseed: 2\ndevice: cpu\n{TINY_DATA}stages:\n  t:\n    kind: train\n    model: {{type: small-cnn, channels: [16, 32]}}\n    epochs: 2\n    batch_size: 100\n"
    );
    let f = write(d.path(), "p.yaml", &text);
    let p = f.to_str().unwrap();
    let o = run(d.path(), &[p, "--run-dir", "clean"]);
    assert!(o.status.success(), "{}", stderr(&o));

    // 16 KiB per file: the YAML and metrics fit, the first epoch's weights do not.
    let o = run_with_file_limit(d.path(), 16, &[p, "--run-dir", "full"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("File too large"), "{err}");
    assert!(err.contains("free space and rerun"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // Nothing half-written is left where a reader would take it for a file.
    let leftovers: Vec<_> = walk(&d.path().join("full"))
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(!d.path().join("full/t/result.json").exists());

    let o = run(d.path(), &[p, "--run-dir", "full"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        metrics_without_timing(&d.path().join("full/t")),
        metrics_without_timing(&d.path().join("clean/t"))
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Search (its schedule feeds the teacher), teacher, distilled student: every kind of
/// stage that checkpoints.
fn three_kinds() -> String {
    format!(
        "name: kills\nseed: 7\ndevice: cpu\n{TINY_DATA}stages:
{}  teacher:
    kind: train
    model: {{type: small-cnn, channels: [8, 16]}}
    augment: {{type: pba-schedule, schedule: \"${{search.schedule}}\"}}
    epochs: 6
    batch_size: 100
{}",
        search_stage(
            "search",
            "{type: pba, population: 4, interval: 1}",
            300,
            200,
            4
        ),
        kd_stage("student", "teacher", 6, 100)
    )
}

/// Where a kill lands: once the log shows `stage` at epoch `epoch` or later (a finished
/// epoch of a train or distill stage, a search's "member reported epoch" line), then
/// `fraction` of an epoch's duration later: at a moment inside the next epoch (or right at
/// its start when the fraction is near 0). Targets are absolute epochs, so a reader that
/// lags behind a busy machine's log still kills before the stage ends.
struct KillPoint {
    stage: &'static str,
    epoch: usize,
    fraction: f64,
}

/// Twelve kill points, four in each stage (search: 4 epochs; teacher and student: 6), at
/// seeded fractions (0 to 0.8) of an epoch after their target epoch.
fn kill_points() -> Vec<KillPoint> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15; // xorshift64, fixed seed: the same points every run
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    [
        ("search", [1, 1, 2, 3]),
        ("teacher", [1, 2, 3, 4]),
        ("student", [1, 2, 3, 4]),
    ]
    .iter()
    .flat_map(|&(stage, epochs)| epochs.map(|epoch| (stage, epoch)))
    .map(|(stage, epoch)| KillPoint {
        stage,
        epoch,
        fraction: (next() % 81) as f64 / 100.0,
    })
    .collect()
}

/// The epoch a progress line of `stage` reports as finished, if it is one.
fn finished_epoch(line: &str, stage: &str) -> Option<usize> {
    let rest = line.strip_prefix(stage)?.strip_prefix(": ")?;
    let after = if let Some(r) = rest.strip_prefix("epoch ") {
        line.contains(" loss ").then_some(r)?
    } else {
        rest.split_once(" reported epoch ")?.1
    };
    after.split('/').next()?.parse().ok()
}

/// Runs the pipeline and SIGKILLs it at `point`, returning its log. Panics when the
/// process ends by itself first: a crash, or a run that finished before the point (then
/// the point list is wrong).
fn run_and_kill(cwd: &Path, args: &[&str], point: &KillPoint) -> String {
    use std::os::unix::process::ExitStatusExt;
    let Signalled { status, log, .. } = run_and_signal(cwd, args, libc::SIGKILL, |line| {
        // An epoch of this size takes about 0.1 s here; the line's own figure is rounded
        // to 0.1 s, so the kill lands within the next epoch.
        finished_epoch(line, point.stage)
            .is_some_and(|e| e >= point.epoch)
            .then(|| std::time::Duration::from_secs_f64(0.1 * point.fraction))
    });
    assert_eq!(
        status.signal(),
        Some(9),
        "the run ended by itself ({status}) before the kill point in `{}` at epoch {} + {} of one:\n{log}",
        point.stage,
        point.epoch,
        point.fraction
    );
    log
}

/// Whether a rerun's log shows it picked `stage` up where the killed run left it: the
/// stage reused whole, resumed after an epoch or inside one, or (a search) resumed with
/// its results. A rerun that started the stage over shows none of these.
fn resumed(log: &str, stage: &str) -> bool {
    log.lines().any(|l| {
        l.strip_prefix(stage)
            .and_then(|r| r.strip_prefix(": "))
            .is_some_and(|r| {
                r.starts_with("unchanged, reusing")
                    || r.starts_with("resuming after epoch")
                    || r.starts_with("resuming inside epoch")
                    || r.starts_with("resuming the search")
            })
    })
}

#[test]
fn sigkill_at_many_points_resumes_to_the_uninterrupted_result() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "p.yaml", &three_kinds());
    let p = f.to_str().unwrap();
    let o = run(d.path(), &[p, "--run-dir", "a"]);
    assert!(o.status.success(), "{}", stderr(&o));

    // Every kill point must land (each one a SIGKILL, not an exit), in order through the
    // search, the teacher and the student; then a last rerun finishes the run.
    assert_eq!(
        finished_epoch("teacher: epoch 3/6 loss 0.5 train acc", "teacher"),
        Some(3)
    );
    assert_eq!(
        finished_epoch("search: member 2 reported epoch 1/4: reward 0.5", "search"),
        Some(1)
    );
    assert_eq!(
        finished_epoch("search/m2: epoch 1/4 loss 0.5", "search"),
        None
    );
    let points = kill_points();
    assert_eq!(points.len(), 12);
    let mut previous: Option<&KillPoint> = None;
    for point in &points {
        let log = run_and_kill(d.path(), &[p, "--run-dir", "b"], point);
        // Every run after the first is a rerun: it must resume the stage killed last time.
        // (A train or distill stage logs an epoch before saving it, so a kill right after
        // its first epoch's line may find nothing saved; from the second epoch on, the
        // epoch before is always on disk. A search records a result before logging it.)
        if let Some(last) = previous.filter(|l| l.epoch >= 2 || l.stage == "search") {
            assert!(
                resumed(&log, last.stage),
                "the rerun after a kill in `{}` at epoch {} did not resume it:\n{log}",
                last.stage,
                last.epoch
            );
        }
        previous = Some(point);
    }
    let o = run(d.path(), &[p, "--run-dir", "b"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(resumed(&stderr(&o), "student"), "{}", stderr(&o));
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    assert_eq!(
        results_by_member_epoch(&a.join("search")),
        results_by_member_epoch(&b.join("search"))
    );
    assert_eq!(
        std::fs::read(a.join("search/schedule.json")).unwrap(),
        std::fs::read(b.join("search/schedule.json")).unwrap()
    );
    for stage in ["teacher", "student"] {
        assert_eq!(
            metrics_without_timing(&a.join(stage)),
            metrics_without_timing(&b.join(stage)),
            "{stage}"
        );
        for f in [
            "result.json",
            "checkpoint/weights.safetensors",
            "config.yaml",
        ] {
            assert!(b.join(stage).join(f).is_file(), "{stage}/{f}");
        }
    }
    for f in ["summary.md", "report.md", "pipeline.yaml"] {
        assert!(b.join(f).is_file(), "{f}");
    }
    // A killed writer may leave its temp file behind; nothing reads it, and the finished
    // run has every real file it replaces.
    for stray in walk(&b)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(".tmp"))
    {
        let name = stray.file_name().unwrap().to_string_lossy().into_owned();
        let real = stray.with_file_name(name.split_once('-').unwrap().1);
        assert!(real.exists(), "{stray:?} without {real:?}");
    }
}

fn nan_search(strategy: &str) -> String {
    format!(
        "name: nan\nseed: 5\ndevice: cpu\n{TINY_DATA}stages:\n{}",
        search_stage("s", strategy, 300, 200, 3)
    )
}

fn members_json(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("members.json")).unwrap()).unwrap()
}

fn run_nan(strategy: &str) -> (tempfile::TempDir, String) {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "p.yaml", &nan_search(strategy));
    let o = Command::new(bin())
        .args([f.to_str().unwrap(), "--run-dir", "out"])
        .current_dir(d.path())
        .env("ROLEKD_FAULT_NAN", "s/m1@2")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(
        o.status.success(),
        "one diverged member does not fail the search: {err}"
    );
    assert!(
        err.contains("member 1 diverged")
            && err.contains("non-finite loss")
            && err.contains("epoch 2, step 1"),
        "{err}"
    );
    (d, err)
}

#[test]
fn a_diverged_search_member_ranks_last_and_is_replaced_by_exploit() {
    let (d, _) = run_nan("{type: pba, population: 4, interval: 1}");
    let dir = d.path().join("out/s");
    let rewards = results_by_member_epoch(&dir);
    assert_eq!(rewards[&(1, 2)], 0.0, "{rewards:?}");
    // Every member, the diverged one included, trained all 3 epochs.
    assert_eq!(rewards.len(), 4 * 3, "{rewards:?}");
    let global = std::fs::read_to_string(dir.join("pba/pbt_global.txt")).unwrap();
    let events: Vec<serde_json::Value> = global
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // PBA's global log: [member, donor, epoch, donor epoch, old, new]. At epoch 2 the
    // exploited member (the bottom quantile of 4 is 1 member) is member 1.
    let at2: Vec<&serde_json::Value> = events.iter().filter(|e| e[2] == 2).collect();
    assert_eq!(at2.len(), 1, "{global}");
    assert_eq!(at2[0][0], 1, "{global}");
    assert_ne!(at2[0][1], 1, "{global}");
    // After taking over its donor's state it trains on, to a real accuracy.
    assert!(rewards[&(1, 3)] > 0.2, "{rewards:?}");
}

#[test]
fn without_exploits_a_diverged_member_stops_and_ranks_last() {
    let (d, _) = run_nan("{type: random, population: 3, interval: 1}");
    let dir = d.path().join("out/s");
    let rewards = results_by_member_epoch(&dir);
    assert_eq!(rewards[&(1, 2)], 0.0, "{rewards:?}");
    assert!(
        !rewards.contains_key(&(1, 3)),
        "member 1 stopped: {rewards:?}"
    );
    assert_eq!(rewards.len(), 2 * 3 + 2, "{rewards:?}");
    assert_ne!(members_json(&dir)["best"], 1);
}
