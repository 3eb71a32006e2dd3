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

/// A distill stage of the same student from the roles `teachers` (each `name: checkpoint`)
/// with one KD term reading `reads` (a role, or a list: an averaged ensemble).
fn ensemble_stage(name: &str, teachers: &[(&str, &str)], reads: &str) -> String {
    let roles: String = teachers
        .iter()
        .map(|(r, c)| format!("      {r}: {{checkpoint: \"{c}\"}}\n"))
        .collect();
    format!(
        "  {name}:
    kind: distill
    epochs: 1
    batch_size: 100
    roles:
      student: {{model: {{type: small-cnn, channels: [4, 8]}}}}
{roles}    loss: [{{type: ce, weight: 0.5}}, {{type: kd, weight: 0.5, temperature: 2, teacher: {reads}}}]
"
    )
}

/// Writes a copy of checkpoint `from` to `to` with the classifier (`fc`) scaled by
/// `factor` (its checksum in model.json updated): logits exactly `factor` times `from`'s
/// when `factor` is a power of two or zero.
fn scaled_checkpoint(from: &Path, to: &Path, factor: f64) {
    let script = format!(
        r#"
import hashlib, json, shutil, sys
from safetensors.torch import load_file, save_file
src, dst = sys.argv[1], sys.argv[2]
shutil.copytree(src, dst)
w = load_file(dst + "/weights.safetensors")
for k in ("fc.weight", "fc.bias"):
    w[k] = w[k] * {factor}
save_file(w, dst + "/weights.safetensors")
meta = json.load(open(dst + "/model.json"))
meta["weights_sha256"] = hashlib.sha256(open(dst + "/weights.safetensors", "rb").read()).hexdigest()
json.dump(meta, open(dst + "/model.json", "w"))
"#
    );
    let o = std::process::Command::new(common::pyvenv::torch_python())
        .args(["-c", &script])
        .arg(from)
        .arg(to)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// An ensemble term averages its teachers' logits: with two different teachers the order
/// does not matter and the result differs from either teacher alone; and the mean of a
/// teacher and a zero-logit copy of it equals (bit for bit) distilling from a copy whose
/// logits are halved, which neither reading only the first teacher nor averaging
/// probabilities would give.
#[test]
fn an_ensemble_averages_the_logits_of_distinct_teachers() {
    let d = tempfile::tempdir().unwrap();
    let (t, u) = ("${teacher.checkpoint}", "${other.checkpoint}");
    let other = "  other:\n    kind: train\n    seed: 9\n    model: {type: small-cnn, channels: [4, 8]}\n    epochs: 1\n    batch_size: 100\n";
    let text = format!(
        "name: ensemble\nseed: 6\ndevice: cpu\n{TINY_DATA}stages:\n{}{other}{}{}{}{}",
        teacher_stage(1, 100),
        ensemble_stage("tu", &[("t", t), ("u", u)], "[t, u]"),
        ensemble_stage("ut", &[("u", u), ("t", t)], "[u, t]"),
        ensemble_stage("tt", &[("t", t), ("t2", t)], "[t, t2]"),
        ensemble_stage("uu", &[("u", u), ("u2", u)], "[u, u2]"),
    );
    let f = write(d.path(), "p.yaml", &text);
    run_ok(d.path(), &[&[f.to_str().unwrap(), "--run-dir", "run"]]);
    // Agreement "with the teacher" is measured against the first frozen role (t or u).
    let m = |stage: &str| {
        let mut v = metrics_without_timing(&d.path().join("run").join(stage));
        for epoch in &mut v {
            epoch.as_object_mut().unwrap().remove("test_agreement");
        }
        v
    };
    assert_eq!(
        m("tu"),
        m("ut"),
        "the order of an ensemble's teachers matters"
    );
    assert_ne!(m("tu"), m("tt"), "the second teacher was ignored");
    assert_ne!(m("tu"), m("uu"), "the first teacher was ignored");
    assert_ne!(m("tt"), m("uu"));
    let result: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.path().join("run/tu/result.json")).unwrap(),
    )
    .unwrap();
    let roles: Vec<&str> = result["result"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["student", "t", "u"]);

    // Logits, not probabilities: mean(t, 0) = t / 2 exactly.
    let ckpt = d.path().join("run/teacher/checkpoint");
    let (zero, half) = (d.path().join("zero"), d.path().join("half"));
    scaled_checkpoint(&ckpt, &zero, 0.0);
    scaled_checkpoint(&ckpt, &half, 0.5);
    let (t, z, h) = (
        ckpt.to_str().unwrap(),
        zero.to_str().unwrap(),
        half.to_str().unwrap(),
    );
    let text = format!(
        "name: halves\nseed: 6\ndevice: cpu\n{TINY_DATA}stages:\n{}{}{}",
        ensemble_stage("mean_t_zero", &[("t", t), ("z", z)], "[t, z]"),
        ensemble_stage("half", &[("h", h)], "h"),
        ensemble_stage("whole", &[("t", t)], "t"),
    );
    let f = write(d.path(), "halves.yaml", &text);
    run_ok(d.path(), &[&[f.to_str().unwrap(), "--run-dir", "halves"]]);
    let m = |stage: &str| metrics_without_timing(&d.path().join("halves").join(stage));
    assert_eq!(m("mean_t_zero"), m("half"));
    assert_ne!(m("half"), m("whole"), "halving the logits changed nothing");
}

/// A trained peer that another peer learns from is read detached: peer b's weights are
/// bit-identical whether or not peer a's loss reads b (and differ when b reads a).
#[test]
fn a_peer_read_by_another_is_detached() {
    let d = tempfile::tempdir().unwrap();
    let dml = |a_loss: &str, b_loss: &str| {
        format!(
            "name: dml\nseed: 4\ndevice: cpu\n{TINY_DATA}stages:
  dml:
    kind: train
    epochs: 2
    batch_size: 100
    roles:
      peer_a:
        model: {{type: small-cnn, channels: [4, 8]}}
        loss: {a_loss}
      peer_b:
        model: {{type: small-cnn, channels: [8, 16]}}
        loss: {b_loss}
"
        )
    };
    let reads = |other: &str| format!("[{{type: ce}}, {{type: kd, teacher: {other}}}]");
    let runs = [
        ("a_reads_b", dml(&reads("peer_b"), "[{type: ce}]")),
        ("alone", dml("[{type: ce}]", "[{type: ce}]")),
        ("b_reads_a", dml("[{type: ce}]", &reads("peer_a"))),
    ];
    for (name, text) in &runs {
        let f = write(d.path(), &format!("{name}.yaml"), text);
        run_ok(d.path(), &[&[f.to_str().unwrap(), "--run-dir", name]]);
    }
    let b = |run: &str| {
        std::fs::read(
            d.path()
                .join(run)
                .join("dml/checkpoint-peer_b/weights.safetensors"),
        )
        .unwrap()
    };
    assert_eq!(b("a_reads_b"), b("alone"), "peer a's loss moved peer b");
    assert_ne!(
        b("b_reads_a"),
        b("alone"),
        "the check cannot see a change in peer b"
    );
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

/// `teacher_view: own` with no teacher augmentation gives the teacher the unaugmented
/// image, which is what `same` gives it when the student has no augmentation either: the
/// two runs are the same run.
#[test]
fn an_own_view_without_augmentation_equals_the_same_view() {
    let d = tempfile::tempdir().unwrap();
    let distill = |name: &str, view: &str| {
        format!(
            "  {name}:\n    kind: distill\n    teacher: ${{teacher.checkpoint}}\n    teacher_view: {view}\n    model: {{type: small-cnn, channels: [4, 8]}}\n    epochs: 1\n    batch_size: 100\n"
        )
    };
    let text = format!(
        "name: views\nseed: 8\ndevice: cpu\n{TINY_DATA}stages:\n{}{}{}",
        teacher_stage(1, 100),
        distill("same", "same"),
        distill("own", "own"),
    );
    let f = write(d.path(), "p.yaml", &text);
    run_ok(d.path(), &[&[f.to_str().unwrap(), "--run-dir", "run"]]);
    let m = |stage: &str| metrics_without_timing(&d.path().join("run").join(stage));
    assert_eq!(m("same"), m("own"));
    let w = |stage: &str| {
        std::fs::read(
            d.path()
                .join("run")
                .join(stage)
                .join("checkpoint/weights.safetensors"),
        )
        .unwrap()
    };
    assert_eq!(w("same"), w("own"));
}
