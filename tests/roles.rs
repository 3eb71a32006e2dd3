//! Stages with any number of roles: two trained peers (deep mutual learning) that
//! checkpoint and resume after SIGKILL to identical metrics, loss terms that read the roles
//! they name (an averaged teacher ensemble), and located errors in `roles:` mappings.

mod common;
use common::*;
use std::path::Path;

fn mutual(epochs: usize) -> String {
    format!(
        "name: mutual\nseed: 4\ndevice: cpu\n{TINY_DATA}stages:
  dml:
    kind: train
    epochs: {epochs}
    batch_size: 64
    lr_schedule: {{type: constant}}
    roles:
      peer_a:
        model: {{type: small-cnn, channels: [4, 8]}}
        augment: {{type: standard, pad: 2}}
        loss: [{{type: ce}}, {{type: kd, teacher: peer_b, temperature: 1}}]
      peer_b:
        model: {{type: small-cnn, channels: [8, 16]}}
        optimizer: {{type: sgd, lr: 0.02, momentum: 0.9}}
        loss: [{{type: ce}}, {{type: kd, teacher: peer_a, temperature: 1}}]
  check_b:
    kind: evaluate
    checkpoint: ${{dml.peer_b_checkpoint}}
"
    )
}

fn last_metrics(stage: &Path) -> serde_json::Value {
    metrics_without_timing(stage).pop().unwrap()
}

#[test]
fn two_trained_roles_resume_after_sigkill_to_identical_metrics() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "p.yaml", &mutual(3));
    let p = f.to_str().unwrap();
    let o = run(d.path(), &[p, "--run-dir", "ref"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let m = last_metrics(&d.path().join("ref/dml"));
    // Each peer has its own figures, and each loss term is labelled by the role it trains.
    let roles = m["roles"].as_object().unwrap();
    assert_eq!(roles.len(), 2, "{m}");
    for peer in ["peer_a", "peer_b"] {
        let acc = roles[peer]["test_acc"].as_f64().unwrap();
        assert!(acc > 0.3, "{peer} test acc {acc}");
    }
    assert_ne!(roles["peer_a"]["test_acc"], roles["peer_b"]["test_acc"]);
    assert_eq!(m["test_acc"], roles["peer_a"]["test_acc"]);
    // KL towards the other peer: zero only if a term read its own student.
    for term in ["peer_a/kd", "peer_b/kd"] {
        assert!(m["loss"][term].as_f64().unwrap() > 1e-4, "{term}: {m}");
    }
    // Both checkpoints are outputs; the second peer's is evaluated by a later stage.
    assert!(d
        .path()
        .join("ref/dml/checkpoint/weights.safetensors")
        .exists());
    assert!(d
        .path()
        .join("ref/dml/checkpoint-peer_b/weights.safetensors")
        .exists());
    let eval: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.path().join("ref/check_b/result.json")).unwrap(),
    )
    .unwrap();
    let evaluated = eval["result"]["summary"]["test_acc"].as_f64().unwrap();
    let trained = roles["peer_b"]["test_acc"].as_f64().unwrap();
    assert!(
        (evaluated - trained).abs() < 1e-9,
        "{evaluated} vs {trained}"
    );

    // SIGKILL once the first epoch's state (both roles, one file) is on disk, then rerun.
    assert_resumes_to_same_metrics(d.path(), &[p], "killed", "ref", "dml");
}

/// A teacher stage, then the same student distilled from it named once and named twice as
/// an averaged ensemble: the mean of two equal logits is those logits, so the runs agree.
#[test]
fn a_term_reads_the_roles_it_names_and_averages_an_ensemble() {
    let d = tempfile::tempdir().unwrap();
    let text = format!(
        "name: ensemble\nseed: 6\ndevice: cpu\n{TINY_DATA}stages:\n{teacher}  once:
    kind: distill
    epochs: 1
    batch_size: 64
    roles:
      student: {{model: {{type: small-cnn, channels: [4, 8]}}}}
      t: {{checkpoint: \"${{teacher.checkpoint}}\"}}
    loss: [{{type: ce, weight: 0.5}}, {{type: kd, weight: 0.5, teacher: t}}]
  twice:
    kind: distill
    epochs: 1
    batch_size: 64
    roles:
      student: {{model: {{type: small-cnn, channels: [4, 8]}}}}
      t: {{checkpoint: \"${{teacher.checkpoint}}\"}}
      u: {{checkpoint: \"${{teacher.checkpoint}}\"}}
    loss: [{{type: ce, weight: 0.5}}, {{type: kd, weight: 0.5, teacher: [t, u]}}]
",
        teacher = teacher_stage(1, 64)
    );
    let f = write(d.path(), "p.yaml", &text);
    let o = run(d.path(), &[f.to_str().unwrap(), "--run-dir", "run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let once = last_metrics(&d.path().join("run/once"));
    let twice = last_metrics(&d.path().join("run/twice"));
    assert_eq!(once, twice);
    assert!(once["loss"]["kd"].as_f64().unwrap() > 0.0);
    let result: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.path().join("run/twice/result.json")).unwrap(),
    )
    .unwrap();
    let roles: Vec<&str> = result["result"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["student", "t", "u"]);
}

fn dry_run_error(stage: &str) -> String {
    let d = tempfile::tempdir().unwrap();
    let text = format!(
        "name: bad\nseed: 1\ndevice: cpu\n{TINY_DATA}stages:
  teacher:
    kind: train
    model: {{type: small-cnn, channels: [8, 16]}}
    epochs: 1
{stage}"
    );
    let f = write(d.path(), "p.yaml", &text);
    let o = run(d.path(), &[f.to_str().unwrap(), "--dry-run"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// A `dml` train stage of two roles, `small` (with `small_loss`) and `large` (no terms).
fn small_and_large(small_loss: &str) -> String {
    format!(
        "  dml:
    kind: train
    epochs: 1
    roles:
      small:
        model: {{type: small-cnn, channels: [4, 8]}}
        loss: {small_loss}
      large:
        model: {{type: small-cnn, channels: [8, 16]}}
"
    )
}

#[test]
fn role_mistakes_are_located_errors() {
    // A misspelt teacher: file:line:column, the YAML path, the roles, the closest name.
    let err = dry_run_error(&small_and_large("[{type: ce}, {type: kd, teacher: lrage}]"));
    assert!(err.contains("p.yaml:19:39:"), "{err}");
    assert!(
        err.contains("stages.dml.roles.small.loss[1].teacher"),
        "{err}"
    );
    assert!(err.contains("did you mean `large`"), "{err}");

    // A trained role that no term trains.
    let err = dry_run_error(&small_and_large("[{type: ce}]"));
    assert!(err.contains("stages.dml.roles.large"), "{err}");
    assert!(
        err.contains("trained role `large` has no loss term"),
        "{err}"
    );

    // A distill stage whose roles are all trained.
    let err = dry_run_error(
        "  kd:
    kind: distill
    epochs: 1
    roles:
      a: {model: {type: small-cnn, channels: [4, 8]}}
",
    );
    assert!(err.contains("needs a frozen role"), "{err}");

    // Shorthand keys beside `roles:`.
    let err = dry_run_error(
        "  kd:
    kind: distill
    epochs: 1
    teacher: ${teacher.checkpoint}
    roles:
      a: {model: {type: small-cnn, channels: [4, 8]}}
      t: {checkpoint: \"${teacher.checkpoint}\"}
",
    );
    assert!(err.contains("stages.kd.teacher"), "{err}");
    assert!(err.contains("goes under `roles.<name>`"), "{err}");

    // A kd term with no teacher when every role is trained.
    let err = dry_run_error(
        "  dml:
    kind: train
    epochs: 1
    roles:
      a:
        model: {type: small-cnn, channels: [4, 8]}
        loss: [{type: kd}]
",
    );
    assert!(err.contains("needs a teacher"), "{err}");
}
