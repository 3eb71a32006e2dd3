//! LR schedules at their key points.

use rolekd_core::config::Params;
use rolekd_core::plugin::optim::{LrSchedule, TrainProgress};
use rolekd_core::Error;

fn build(name: &str, yaml: &str) -> Box<dyn LrSchedule> {
    rolekd_optim::link();
    let f = rolekd_core::registry::lr_schedule(name).expect("registered");
    f(&Params::from_yaml(yaml).unwrap()).unwrap()
}

/// Progress at `epoch` + `step` / 10, in a 10-epoch run of 10 steps per epoch.
fn at(epoch: usize, step: usize) -> TrainProgress {
    TrainProgress {
        epoch,
        step_in_epoch: step,
        steps_per_epoch: 10,
        epochs: 10,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn constant_with_and_without_warmup() {
    let s = build("constant", "type: constant");
    assert_eq!(s.lr(0.1, at(0, 0)), 0.1);
    assert_eq!(s.lr(0.1, at(9, 9)), 0.1);
    let s = build("constant", "{warmup_epochs: 2}");
    assert_eq!(s.lr(0.1, at(0, 0)), 0.0);
    assert!(close(s.lr(0.1, at(0, 5)), 0.1 * 0.25));
    assert!(close(s.lr(0.1, at(1, 0)), 0.05));
    assert!(close(s.lr(0.1, at(2, 0)), 0.1)); // warmup end
    let s = build("constant", "{warmup_epochs: 2, warmup_start: 0.2}");
    assert!(close(s.lr(0.1, at(0, 0)), 0.02));
    assert!(close(s.lr(0.1, at(1, 0)), 0.06));
    assert!(close(s.lr(0.1, at(3, 0)), 0.1));
}

#[test]
fn step_decays_at_epoch_boundaries() {
    let s = build("step", "{step_size: 3, gamma: 0.5}");
    assert!(close(s.lr(0.8, at(0, 0)), 0.8));
    assert!(close(s.lr(0.8, at(2, 9)), 0.8));
    assert!(close(s.lr(0.8, at(3, 0)), 0.4));
    assert!(close(s.lr(0.8, at(6, 0)), 0.2));
    assert!(close(s.lr(0.8, at(9, 9)), 0.1));
    let s = build("step", "{step_size: 3}");
    assert!(close(s.lr(1.0, at(3, 0)), 0.1));
}

#[test]
fn multistep_decays_at_milestones() {
    let s = build(
        "multistep",
        "{milestones: [3, 7], gamma: 0.1, warmup_epochs: 1}",
    );
    assert_eq!(s.lr(0.1, at(0, 0)), 0.0);
    assert!(close(s.lr(0.1, at(0, 5)), 0.05));
    assert!(close(s.lr(0.1, at(1, 0)), 0.1));
    assert!(close(s.lr(0.1, at(2, 9)), 0.1));
    assert!(close(s.lr(0.1, at(3, 0)), 0.01));
    assert!(close(s.lr(0.1, at(6, 9)), 0.01));
    assert!(close(s.lr(0.1, at(7, 0)), 0.001));
}

#[test]
fn cosine_per_step_to_min_lr() {
    let s = build("cosine", "{}");
    assert!(close(s.lr(0.1, at(0, 0)), 0.1));
    assert!(close(s.lr(0.1, at(5, 0)), 0.05)); // midpoint
    assert!(close(
        s.lr(0.1, at(2, 5)),
        0.05 * (1.0 + (std::f64::consts::PI * 0.25).cos())
    ));
    assert!(s.lr(0.1, at(9, 9)) < s.lr(0.1, at(9, 8))); // changes every step
    let end = TrainProgress {
        epoch: 10,
        step_in_epoch: 0,
        steps_per_epoch: 10,
        epochs: 10,
    };
    assert!(close(s.lr(0.1, end), 0.0));

    let s = build("cosine", "{min_lr: 0.001, warmup_epochs: 2}");
    assert!(close(s.lr(0.1, at(1, 0)), 0.05)); // half-way through warmup
    assert!(close(s.lr(0.1, at(2, 0)), 0.1)); // warmup end: the peak
    assert!(close(s.lr(0.1, at(6, 0)), 0.001 + 0.099 * 0.5)); // midpoint of [2, 10]
    assert!(close(s.lr(0.1, end), 0.001));
}

#[test]
fn bad_schedule_params_are_located() {
    rolekd_optim::link();
    let cases = [
        ("step", "{step_size: 0}", "step_size"),
        ("multistep", "{milestones: [5, 3]}", "milestones"),
        ("multistep", "{milestones: [3], gamma: 0}", "gamma"),
        ("cosine", "{warmup_epochs: -1}", "warmup_epochs"),
        ("cosine", "{warmup_start: 2}", "warmup_start"),
        ("cosine", "{min_lr: -1}", "min_lr"),
        ("constant", "{warmup: 1}", "warmup"),
    ];
    for (name, yaml, path) in cases {
        let f = rolekd_core::registry::lr_schedule(name).unwrap();
        match f(&Params::from_yaml(yaml).unwrap()) {
            Err(Error::Config(e)) => assert_eq!(e.path, path, "{name} {yaml}: {e}"),
            Err(other) => panic!("{name} {yaml}: expected a config error, got {other}"),
            Ok(_) => panic!("{name} {yaml}: accepted"),
        }
    }
    // A missing required field is reported at the mapping, naming the field.
    let f = rolekd_core::registry::lr_schedule("step").unwrap();
    match f(&Params::from_yaml("{gamma: 0.5}").unwrap()) {
        Err(Error::Config(e)) => assert!(e.message.contains("missing field `step_size`"), "{e}"),
        _ => panic!("missing step_size accepted"),
    }
}
