//! Bad input gets a located message and a non-zero exit, never a panic.

mod common;
use common::*;

fn fails_with(text: &str, expect_code: i32, needles: &[&str]) -> String {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "p.yaml", text);
    let o = run(d.path(), &[f.to_str().unwrap(), "--run-dir", "out"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(expect_code), "stderr: {err}");
    for n in needles {
        assert!(err.contains(n), "expected `{n}` in: {err}");
    }
    assert!(
        !err.contains("panicked") && !err.contains("internal error"),
        "{err}"
    );
    err
}

const STAGE: &str = "  t:\n    kind: train\n    model: {type: small-cnn}\n    epochs: 1\n";

#[test]
fn malformed_yaml_is_located() {
    fails_with(
        &format!("{TINY_DATA}stages:\n  t: [1, 2\n"),
        2,
        &["p.yaml:", "malformed YAML"],
    );
}

#[test]
fn unknown_plugin_suggests_the_closest_name() {
    let text = format!(
        "{TINY_DATA}stages:\n  t:\n    kind: train\n    model: {{type: smal-cnn}}\n    epochs: 1\n"
    );
    fails_with(
        &text,
        2,
        &[
            "p.yaml:8:",
            "unknown model `smal-cnn`",
            "did you mean `small-cnn`",
        ],
    );
}

#[test]
fn unknown_stage_kind_suggests_the_closest_name() {
    let text = format!("{TINY_DATA}stages:\n  t:\n    kind: distil\n");
    fails_with(&text, 2, &["p.yaml:7:", "did you mean `distill`"]);
}

#[test]
fn unknown_field_names_the_yaml_path() {
    let text = format!(
        "{TINY_DATA}stages:\n  t:\n    kind: train\n    model: {{type: small-cnn}}\n    epoch: 1\n"
    );
    fails_with(
        &text,
        2,
        &["p.yaml:9:", "stages.t.epoch", "unknown field `epoch`"],
    );
}

#[test]
fn unknown_top_level_field_is_reported() {
    let text = format!("{TINY_DATA}stage:\n{STAGE}");
    fails_with(
        &text,
        2,
        &["unknown top-level field `stage`", "did you mean `stages`"],
    );
}

#[test]
fn cycle_is_rejected_before_training() {
    let text = format!(
        "{TINY_DATA}stages:
  a:
    kind: distill
    teacher: ${{b.checkpoint}}
    model: {{type: small-cnn}}
    epochs: 1
  b:
    kind: distill
    teacher: ${{a.checkpoint}}
    model: {{type: small-cnn}}
    epochs: 1
"
    );
    fails_with(&text, 2, &["cycle", "a -> b -> a"]);
}

/// A teacher, then a student distilled from `teacher_ref` (line 12 of the file).
fn teacher_then_student(teacher_ref: &str) -> String {
    format!(
        "{TINY_DATA}stages:
  teacher:
    kind: train
    model: {{type: small-cnn}}
    epochs: 1
  s:
    kind: distill
    teacher: {teacher_ref}
    model: {{type: small-cnn}}
    epochs: 1
"
    )
}

#[test]
fn dangling_reference_suggests_a_stage() {
    let text = teacher_then_student("${teachr.checkpoint}");
    fails_with(
        &text,
        2,
        &[
            "p.yaml:12:",
            "stage `teachr`, which does not exist",
            "did you mean `teacher`",
        ],
    );
}

#[test]
fn output_type_mismatch_is_found_before_training() {
    let text = teacher_then_student("${teacher.metrics}");
    let err = fails_with(
        &text,
        2,
        &["expected a checkpoint, but `${teacher.metrics}` is a metrics"],
    );
    assert!(!err.contains("epoch 1/1"), "nothing trained: {err}");
}

#[test]
fn missing_dataset_path_is_named() {
    let text =
        format!("data:\n  type: fashion-mnist\n  path: /nonexistent/fmnist\nstages:\n{STAGE}");
    fails_with(&text, 1, &["/nonexistent/fmnist"]);
}

#[test]
fn unwritable_run_directory_is_reported() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "p.yaml", &format!("{TINY_DATA}stages:\n{STAGE}"));
    write(d.path(), "blocker", "a file, not a directory");
    let o = run(d.path(), &[f.to_str().unwrap(), "--run-dir", "blocker/run"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("blocker/run"), "{}", stderr(&o));
}

#[test]
fn bad_override_is_reported() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "p.yaml", &format!("{TINY_DATA}stages:\n{STAGE}"));
    let o = run(
        d.path(),
        &[f.to_str().unwrap(), "--set", "stages.t.epochs", "--dry-run"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("PATH=VALUE"), "{}", stderr(&o));
}

#[test]
fn missing_pipeline_file_is_reported() {
    let d = tempfile::tempdir().unwrap();
    let o = run(d.path(), &["nope.yaml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nope.yaml"), "{}", stderr(&o));
}

#[test]
fn teacher_loss_in_a_train_stage_is_refused_before_training() {
    let text = format!("{TINY_DATA}stages:\n{STAGE}    loss: [{{type: ce}}, {{type: kd}}]\n");
    fails_with(&text, 2, &["p.yaml:10:", "loss `kd` needs a teacher"]);
}

#[test]
fn every_shipped_pipeline_validates() {
    let d = tempfile::tempdir().unwrap();
    let mut checked = 0;
    // pipelines/ and its folders (pilots/, study/).
    let mut paths = Vec::new();
    let mut dirs = vec![repo().join("pipelines")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                paths.push(path);
            }
        }
    }
    for path in paths {
        // --dry-run builds the whole graph and every plugin's params, trains nothing.
        let o = run(
            d.path(),
            &[path.to_str().unwrap(), "--dry-run", "--set", "device=cpu"],
        );
        assert!(o.status.success(), "{}: {}", path.display(), stderr(&o));
        assert!(stdout(&o).contains("will run"), "{}", stdout(&o));
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} pipelines found");
}

/// `--dry-run` lists each stage's roles: trained or frozen, model, view, and where a frozen
/// role comes from, as written (a reference before its producer has run).
#[test]
fn dry_run_shows_each_stages_roles() {
    let d = tempfile::tempdir().unwrap();
    let path = repo().join("pipelines/study/compression-fashion-mnist.yaml");
    let o = run(
        d.path(),
        &[path.to_str().unwrap(), "--dry-run", "--set", "seeds=[0]"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for line in [
        "model (trained, resnet-cifar, own view: pba-schedule)",
        "model (trained, small-cnn, own view: standard)",
        "student (trained, small-cnn, own view: none)",
        "teacher (frozen, checkpoint ${teacher.checkpoint}, same view)",
        "teacher (frozen, checkpoint ${teacher.checkpoint}, own view: pba-schedule)",
    ] {
        assert!(out.contains(line), "no `{line}` in:\n{out}");
    }
}
