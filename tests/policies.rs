//! Every augmentation policy kind runs in a real pipeline (tiny budgets), for the trained
//! role and, with `teacher_view: own`, for the teacher.

mod common;
use common::*;

#[test]
fn every_policy_kind_runs_in_a_pipeline() {
    let d = tempfile::tempdir().unwrap();
    // A schedule file of two segments, written through the import command.
    let hp = |v: i64| serde_json::json!({ "hp_policy": vec![v; 60] });
    let log = format!("{}\n", serde_json::json!([0, 0, 1, 1, hp(3), hp(6)]));
    write(d.path(), "pbt_policy_0.txt", &log);
    let o = run(
        d.path(),
        &[
            "schedule",
            "import",
            "pbt_policy_0.txt",
            "--epochs",
            "2",
            "-o",
            "sched.json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let genes: Vec<String> = (0..60)
        .map(|i| if i % 2 == 0 { "5".into() } else { "7".into() })
        .collect();
    let policies = [
        ("none", "{type: none}".to_string()),
        ("standard", "{type: standard, cutout: 8}".to_string()),
        (
            "pba",
            format!("{{type: pba, genes: [{}]}}", genes.join(", ")),
        ),
        (
            "pba_schedule",
            format!(
                "{{type: pba-schedule, schedule: {}}}",
                d.path().join("sched.json").display()
            ),
        ),
        ("autoaugment", "{type: autoaugment-cifar10}".to_string()),
        ("randaugment", "{type: randaugment, n: 2, m: 9}".to_string()),
        ("trivialaugment", "{type: trivialaugment}".to_string()),
        ("mixup", "{type: mixup, alpha: 1.0}".to_string()),
        ("cutmix", "{type: cutmix, alpha: 1.0}".to_string()),
    ];
    let mut text = String::from(
        "name: policies\nseed: 1\ndevice: cpu\ndata:\n  type: fashion-mnist\n  train_size: 256\n  test_size: 256\nstages:
  teacher:
    kind: train
    model: {type: small-cnn, channels: [4, 8]}
    epochs: 1
    batch_size: 64
",
    );
    for (name, policy) in &policies {
        text.push_str(&format!(
            "  {name}:\n    kind: train\n    model: {{type: small-cnn, channels: [4, 8]}}\n    augment: {policy}\n    epochs: 2\n    batch_size: 64\n"
        ));
    }
    text.push_str(&format!(
        "  own_view:\n    kind: distill\n    teacher: ${{teacher.checkpoint}}\n    teacher_view: own\n    teacher_augment: {}\n    model: {{type: small-cnn, channels: [4, 8]}}\n    augment: {{type: randaugment}}\n    epochs: 1\n    batch_size: 64\n",
        policies[2].1
    ));
    let f = write(d.path(), "p.yaml", &text);
    let o = run(d.path(), &[f.to_str().unwrap(), "--run-dir", "run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for (name, _) in policies.iter().chain([("own_view", String::new())].iter()) {
        let m = metrics_without_timing(&d.path().join("run").join(name));
        assert!(!m.is_empty(), "{name}");
        let loss = m.last().unwrap()["loss"]["total"].as_f64().unwrap();
        assert!(loss.is_finite() && loss > 0.0, "{name}: {loss}");
    }
    // Augmentation changes what the model sees: the same seed without augmentation and with
    // a strong policy give different training losses.
    let none = metrics_without_timing(&d.path().join("run/none"));
    let pba = metrics_without_timing(&d.path().join("run/pba"));
    assert_ne!(none[0]["loss"]["total"], pba[0]["loss"]["total"]);
}
