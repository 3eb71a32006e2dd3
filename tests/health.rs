//! Training that fails says so: a stage at an absurd learning rate is flagged (warning,
//! result field, summary and report marks) while a healthy one is not, the first epoch's
//! weighted loss terms are printed, and `on_stall: stop` ends the run with a located error.

mod common;
use common::*;

/// Two one-epoch stages on 2,048 real images (32 steps, enough for the check): one
/// healthy, one at learning rate 50 (stuck at chance, loss far above ln 10, but finite).
fn pipeline(on_stall: &str) -> String {
    format!(
        "name: health
seed: 1
device: cpu
data: {{type: fashion-mnist, train_size: 2048, test_size: 500}}
stages:
  healthy:
    kind: train
    model: {{type: small-cnn, channels: [8, 16]}}
    epochs: 1
    batch_size: 64
    optimizer: {{type: sgd, lr: 0.05}}
  broken:
    kind: train
    model: {{type: small-cnn, channels: [8, 16]}}
    epochs: 1
    batch_size: 64
    optimizer: {{type: sgd, lr: 50}}
{on_stall}"
    )
}

fn warnings_of(stage_dir: &std::path::Path) -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(stage_dir.join("result.json")).unwrap())
            .unwrap();
    v["result"]["warnings"]
        .as_array()
        .map(|a| a.iter().map(|w| w.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn a_stalled_stage_is_flagged_and_a_healthy_one_is_not() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "p.yaml", &pipeline(""));
    let o = run(d.path(), &[f.to_str().unwrap(), "--run-dir", "run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("warning: broken: training accuracy at chance level after epoch 1"),
        "{err}"
    );
    assert!(err.contains("learning rate too high"), "{err}");
    assert!(!err.contains("warning: healthy"), "{err}");
    // Loss scales: the first epoch's weighted terms.
    assert!(
        err.contains("healthy: loss terms after their weights, epoch 1 mean: ce "),
        "{err}"
    );

    let run_dir = d.path().join("run");
    let broken = warnings_of(&run_dir.join("broken"));
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert!(broken[0].contains("train acc"), "{broken:?}");
    assert!(warnings_of(&run_dir.join("healthy")).is_empty());
    // The stage's result names its one role, typed.
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("healthy/result.json")).unwrap(),
    )
    .unwrap();
    let roles = &v["result"]["roles"];
    assert_eq!(roles.as_array().map(Vec::len), Some(1), "{roles}");
    assert_eq!(roles[0]["name"], "model", "{roles}");
    assert_eq!(roles[0]["trained"], true, "{roles}");
    assert_eq!(roles[0]["model"], "small-cnn", "{roles}");
    let m = metrics_without_timing(&run_dir.join("broken"));
    assert_eq!(m[0]["stall"]["symptom"], "chance-accuracy", "{m:?}");
    assert!(m[0]["train_ce"].as_f64().unwrap() > 10f64.ln());
    let healthy = metrics_without_timing(&run_dir.join("healthy"));
    assert!(healthy[0].get("stall").is_none(), "{healthy:?}");

    for file in ["summary.md", "report.md"] {
        let text = std::fs::read_to_string(run_dir.join(file)).unwrap();
        let line = |stage: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("| {stage}")))
                .unwrap_or_else(|| panic!("{stage} not in {file}: {text}"))
                .to_string()
        };
        assert!(line("broken").contains("⚠"), "{file}: {text}");
        assert!(!line("healthy").contains("⚠"), "{file}: {text}");
        assert!(text.contains("## Warnings"), "{file}: {text}");
    }
}

#[test]
fn on_stall_stop_ends_the_run_with_a_located_error() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "p.yaml", &pipeline("    on_stall: stop\n"));
    let o = run(d.path(), &[f.to_str().unwrap(), "--run-dir", "run"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    // The `on_stall: stop` line of the broken stage (line 18 of the file).
    assert!(err.contains("p.yaml:18:"), "{err}");
    assert!(err.contains("training stalled"), "{err}");
    assert!(err.contains("chance level"), "{err}");
    // The healthy stage before it finished; the broken one left no checkpoint.
    assert!(d.path().join("run/healthy/checkpoint").is_dir());
    assert!(!d.path().join("run/broken/checkpoint").exists());
}
