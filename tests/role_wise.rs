//! The role-wise pipeline end to end (searches, teacher, student, baselines) on a shrunken
//! budget, and a search stage killed with SIGKILL mid-way that resumes to the same result.

mod common;
use common::*;
use rolekd_augment::schedule::{import_pba_log, load as load_schedule, Schedule};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// `--set` overrides that shrink role-wise-quick to well under a minute of training.
/// The quick role-wise pipeline's students: role-wise, alone, and the KD baselines.
const STUDENTS: [&str; 6] = [
    "student",
    "student_alone",
    "kd_standard",
    "kd_teacher_schedule",
    "kd_randaugment",
    "kd_random_search",
];

const SHRINK: &[&str] = &[
    "data.train_size=1200",
    "data.test_size=400",
    "stages.teacher_search.train_size=400",
    "stages.teacher_search.val_size=300",
    "stages.teacher_search.strategy.interval=1",
    "stages.teacher_search.trial.epochs=2",
    "stages.teacher_search.trial.batch_size=64",
    "stages.student_search.train_size=400",
    "stages.student_search.val_size=300",
    "stages.student_search.strategy.interval=1",
    "stages.student_search.trial.epochs=2",
    "stages.student_search.trial.batch_size=64",
    "stages.student_random_search.train_size=400",
    "stages.student_random_search.val_size=300",
    "stages.student_random_search.trial.epochs=2",
    "stages.student_random_search.trial.batch_size=64",
    "stages.teacher.epochs=1",
    "stages.student.epochs=1",
    "stages.student_alone.epochs=1",
    "stages.kd_standard.epochs=1",
    "stages.kd_teacher_schedule.epochs=1",
    "stages.kd_randaugment.epochs=1",
    "stages.kd_random_search.epochs=1",
    "device=cpu",
];

/// Checks a search stage's outputs: the best schedule, every member's schedule and PBA
/// log (which decodes back to that schedule), the plots and the per-member results.
fn check_search_outputs(dir: &Path, population: usize, epochs: usize) {
    check_search_files(dir, population, epochs, Some(epochs - 1));
}

/// [`check_search_outputs`] for any strategy: `exploits` when the count is known.
fn check_search_files(dir: &Path, population: usize, epochs: usize, exploits: Option<usize>) {
    for f in [
        "population.sqlite",
        "schedule.json",
        "schedule.png",
        "rewards.png",
        "results.jsonl",
        "members.json",
        "pba/pbt_global.txt",
        "result.json",
    ] {
        assert!(dir.join(f).is_file(), "{}: missing {f}", dir.display());
    }
    for png in ["schedule.png", "rewards.png"] {
        let bytes = std::fs::read(dir.join(png)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{png}");
    }
    let best = load_schedule(&dir.join("schedule.json")).unwrap();
    assert_eq!(best.epochs, epochs);
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("result.json")).unwrap()).unwrap();
    let result = &result["result"];
    assert_eq!(result["outputs"]["schedule"], "schedule.json");
    let best_member = result["summary"]["best_member"].as_f64().unwrap() as usize;
    for key in ["best_val_acc", "search_seconds", "exploits"] {
        assert!(result["summary"][key].is_number(), "summary lacks {key}");
    }
    // Population 4, quantile 0.25: one exploit per perturbation point (epochs - 1 of them).
    let made = result["summary"]["exploits"].as_f64().unwrap() as usize;
    if let Some(expected) = exploits {
        assert_eq!(made, expected);
    }
    let exploits = made;
    let global = std::fs::read_to_string(dir.join("pba/pbt_global.txt")).unwrap();
    assert_eq!(global.lines().count(), exploits);
    for k in 0..population {
        let mine = load_schedule(&dir.join(format!("trials/{k}/schedule.json"))).unwrap();
        let log = std::fs::read_to_string(dir.join(format!("pba/pbt_policy_{k}.txt"))).unwrap();
        // Our own PBA log, read back as PBA's parse_log reads it, is the member's schedule.
        assert_eq!(import_pba_log(&log, epochs).unwrap(), mine, "member {k}");
        if k == best_member {
            assert_eq!(mine, best);
        }
    }
    // One reward per member and epoch.
    let rows = results_by_member_epoch(dir);
    assert_eq!(rows.len(), population * epochs);
    assert!(rows.values().all(|r| (0.0..=1.0).contains(r)));
}

#[test]
fn role_wise_quick_runs_end_to_end() {
    let d = tempfile::tempdir().unwrap();
    let pipeline = repo().join("pipelines/role-wise-quick.yaml");
    let mut args: Vec<String> = vec![
        pipeline.display().to_string(),
        "--run-dir".into(),
        "run".into(),
    ];
    for s in SHRINK {
        args.push("--set".into());
        args.push(s.to_string());
    }
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let o = run(d.path(), &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let run_dir = d.path().join("run");
    check_search_outputs(&run_dir.join("teacher_search"), 4, 2);
    check_search_outputs(&run_dir.join("student_search"), 4, 2);
    // The random-search baseline: same budget, no exploits.
    check_search_files(&run_dir.join("student_random_search"), 4, 2, Some(0));
    // The teacher and the final student trained with their searched schedules.
    let teacher_cfg = std::fs::read_to_string(run_dir.join("teacher/config.yaml")).unwrap();
    assert!(
        teacher_cfg.contains("teacher_search/schedule.json"),
        "{teacher_cfg}"
    );
    let student_cfg = std::fs::read_to_string(run_dir.join("student/config.yaml")).unwrap();
    assert!(
        student_cfg.contains("student_search/schedule.json"),
        "{student_cfg}"
    );
    for stage in std::iter::once("teacher").chain(STUDENTS) {
        let dir = run_dir.join(stage);
        assert!(
            dir.join("checkpoint/weights.safetensors").is_file(),
            "{stage}"
        );
        assert!(dir.join("metrics.jsonl").is_file(), "{stage}");
    }
    let summary = std::fs::read_to_string(run_dir.join("summary.md")).unwrap();
    for s in [
        "teacher_search",
        "student_search",
        "student",
        "kd_randaugment",
    ] {
        assert!(summary.contains(&format!("| {s} |")), "{summary}");
    }
    check_report(&run_dir);
    // A rerun reuses every stage, searches included.
    let o = run(d.path(), &args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).matches("| reused |").count(),
        10,
        "{}",
        stdout(&o)
    );
}

/// The report written at the end of the run: every stage in the table, the students
/// ranked (teacher and searches excluded), both searches, and the two pictures.
fn check_report(run_dir: &Path) {
    let report = std::fs::read_to_string(run_dir.join("report.md")).unwrap();
    let ranked = report
        .split("## Students ranked")
        .nth(1)
        .expect("a ranking section")
        .split("\n## ")
        .next()
        .unwrap();
    for s in STUDENTS {
        assert!(
            ranked.contains(&format!("| {s} |")),
            "{s} not ranked: {report}"
        );
    }
    assert!(!ranked.contains("| teacher |"), "{report}");
    assert_eq!(ranked.matches("\n| ").count(), 1 + 6, "{ranked}");
    let searches = report.split("## Searches").nth(1).expect("searches");
    for s in [
        "| teacher_search | pba | teacher |",
        "| student_search | pba | student |",
        "| student_random_search | random | student |",
    ] {
        assert!(searches.contains(s), "{s}: {report}");
    }
    for png in ["curves.png", "schedules.png"] {
        let bytes = std::fs::read(run_dir.join(png)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{png}");
        assert!(report.contains(&format!("]({png})")), "{report}");
    }
}

fn search_pipeline() -> String {
    format!(
        "name: search-resume\nseed: 11\ndevice: cpu\n{TINY_DATA}stages:\n{}",
        search_stage(
            "search",
            "{type: pba, population: 4, interval: 1}",
            400,
            300,
            4
        )
    )
}

#[test]
fn killed_search_resumes_to_the_same_schedule() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "p.yaml", &search_pipeline());
    let p = f.to_str().unwrap();

    // Uninterrupted.
    let o = run(d.path(), &[p, "--run-dir", "a"]);
    assert!(o.status.success(), "{}", stderr(&o));
    check_search_outputs(&d.path().join("a/search"), 4, 4);

    // Killed (SIGKILL) once the store holds a few results, then rerun.
    let mut child = Command::new(bin())
        .args([p, "--run-dir", "b"])
        .current_dir(d.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reports = 0;
    let mut seen = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("reported epoch") {
            reports += 1;
            if reports == 6 {
                child.kill().unwrap(); // SIGKILL
                break;
            }
        }
    }
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the search finished before the kill: {seen}"
    );
    assert_eq!(reports, 6, "{seen}");
    assert!(!d.path().join("b/search/result.json").exists());
    let o = run(d.path(), &[p, "--run-dir", "b"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("resuming the search"), "{}", stderr(&o));
    check_search_outputs(&d.path().join("b/search"), 4, 4);
    let schedule = |run: &str| -> Schedule {
        load_schedule(&d.path().join(run).join("search/schedule.json")).unwrap()
    };
    assert_eq!(schedule("a"), schedule("b"));
    assert_eq!(
        results_by_member_epoch(&d.path().join("a/search")),
        results_by_member_epoch(&d.path().join("b/search"))
    );
    for k in 0..4 {
        let log = |run: &str| {
            std::fs::read_to_string(
                d.path()
                    .join(run)
                    .join(format!("search/pba/pbt_policy_{k}.txt")),
            )
            .unwrap()
        };
        assert_eq!(log("a"), log("b"), "member {k}");
    }
}

/// A search stage with `extra` lines (6-space indent inside the stage) that must fail
/// before anything trains, with a located message containing every needle.
fn search_fails_with(stage: &str, needles: &[&str]) {
    let d = tempfile::tempdir().unwrap();
    let text = format!("name: bad\nseed: 0\ndevice: cpu\n{TINY_DATA}stages:\n  s:\n{stage}");
    let f = write(d.path(), "p.yaml", &text);
    let o = run(d.path(), &[f.to_str().unwrap(), "--run-dir", "out"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    for n in needles {
        assert!(err.contains(n), "expected `{n}` in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert!(!d.path().join("out/s/population.sqlite").exists());
}

const TRIAL: &str = "    trial:\n      model: {type: small-cnn}\n      epochs: 2\n";

#[test]
fn bad_search_configs_are_located() {
    search_fails_with(
        &format!("    kind: search\n    role: teach\n{TRIAL}"),
        &["p.yaml:11:5", "stages.s.role", "unknown variant `teach`"],
    );
    search_fails_with(
        &format!("    kind: search\n    role: teacher\n    strategy: {{type: pbaa}}\n{TRIAL}"),
        &["stages.s.strategy.type", "did you mean `pba`"],
    );
    search_fails_with(
        &format!("    kind: search\n    role: teacher\n    strategy: {{type: pba, quantile: 0.9}}\n{TRIAL}"),
        &["stages.s.strategy.quantile", "(0, 0.5]"],
    );
    search_fails_with(
        &format!("    kind: search\n    role: teacher\n    space: autoaugment\n{TRIAL}"),
        &["stages.s.space", "unknown policy space"],
    );
    search_fails_with(
        &format!("    kind: search\n    role: teacher\n    slack: 2\n{TRIAL}"),
        &["stages.s.slack", "sync: false"],
    );
    search_fails_with(
        &format!(
            "    kind: search\n    role: teacher\n    strategy: {{type: grid, values: {{strength: [1]}}}}\n{TRIAL}"
        ),
        &["stages.s.strategy.values", "prob, magnitude"],
    );
    search_fails_with(
        &format!("    kind: search\n    role: teacher\n{TRIAL}      augment: {{type: standard}}\n"),
        &["stages.s.trial.augment.type", "pba-schedule"],
    );
    search_fails_with(
        &format!("    kind: search\n    role: teacher\n{TRIAL}      teacher: a/b\n"),
        &["stages.s.trial.teacher", "role: student"],
    );
    search_fails_with(
        &format!("    kind: search\n    role: student\n{TRIAL}"),
        &["stages.s.trial", "missing field `teacher`"],
    );
}

#[test]
fn search_split_larger_than_the_data_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let text = format!(
        "name: big\nseed: 0\ndevice: cpu\n{TINY_DATA}stages:\n  s:\n    kind: search\n    role: teacher\n    train_size: 900\n    val_size: 300\n{TRIAL}"
    );
    let f = write(d.path(), "p.yaml", &text);
    let o = run(d.path(), &[f.to_str().unwrap(), "--run-dir", "out"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("stages.s.train_size") && err.contains("has 1000"),
        "{err}"
    );
}

/// `reward_on: validation` trains trials on the pipeline's training split and rewards them
/// on its validation split: it needs one, of the size asked for.
#[test]
fn a_search_rewarded_on_the_validation_split_checks_it_and_runs() {
    let d = tempfile::tempdir().unwrap();
    let stage = |val: &str| {
        format!("  s:\n    kind: search\n    role: teacher\n    reward_on: validation\n{val}    strategy: {{type: pba, population: 2, interval: 1}}\n{TRIAL}")
    };
    let data = "data: {type: fashion-mnist, train_size: 400, val_size: 200, test_size: 100}\n";
    let cases = [
        (TINY_DATA, stage(""), "needs a validation split"),
        (
            data,
            stage("    val_size: 300\n"),
            "300 images, the pipeline's validation split has 200",
        ),
    ];
    for (i, (data, stage, needle)) in cases.iter().enumerate() {
        let text = format!("name: v\nseed: 0\ndevice: cpu\n{data}stages:\n{stage}");
        let f = write(d.path(), &format!("bad{i}.yaml"), &text);
        let o = run(d.path(), &[f.to_str().unwrap(), "--run-dir", "bad"]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(needle) && err.contains("stages.s."), "{err}");
    }
    let text = format!(
        "name: v\nseed: 0\ndevice: cpu\n{data}stages:\n{}",
        stage("")
    );
    let f = write(d.path(), "ok.yaml", &text);
    run_ok(d.path(), &[&[f.to_str().unwrap(), "--run-dir", "ok"]]);
    assert!(d.path().join("ok/s/schedule.json").is_file());
}

/// `--only` runs a stage and what it reads from, nothing else; a later full run reuses them.
#[test]
fn only_runs_a_stage_and_its_inputs_and_a_full_run_reuses_them() {
    let d = tempfile::tempdir().unwrap();
    let text = format!(
        "name: only\nseed: 1\ndevice: cpu\n{TINY_DATA}stages:\n{}{}{}",
        teacher_stage(1, 100),
        kd_stage("student", "teacher", 1, 100),
        kd_stage("other", "teacher", 1, 100)
    );
    let f = write(d.path(), "p.yaml", &text);
    let p = f.to_str().unwrap();
    run_ok(d.path(), &[&[p, "--run-dir", "r", "--only", "student"]]);
    let r = d.path().join("r");
    assert!(r.join("teacher/result.json").is_file());
    assert!(r.join("student/result.json").is_file());
    assert!(!r.join("other").exists());
    let o = run_ok(d.path(), &[&[p, "--run-dir", "r"]]);
    let log = stderr(&o);
    for stage in ["teacher", "student"] {
        assert!(
            log.contains(&format!("{stage}: unchanged, reusing")),
            "{log}"
        );
    }
    assert!(log.contains("other: running"), "{log}");
    let o = run(d.path(), &[p, "--run-dir", "r", "--only", "nosuch"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--only nosuch: no such stage; stages: teacher, student, other"),
        "{}",
        stderr(&o)
    );
}
