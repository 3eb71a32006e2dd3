//! Loss checks against independent f64 computations on tiny tensors.

use crate::testutil::*;
use rolekd_core::config::Params;
use rolekd_core::plugin::loss::LossInputs;
use tch::{nn, Device, Kind, Tensor};

fn out(logits: &Tensor) -> rolekd_core::plugin::model::ModelOutput {
    output(logits, &[])
}

const S: [[f64; 3]; 2] = [[1.0, 2.0, 0.5], [0.3, -1.0, 2.0]];
const T: [[f64; 3]; 2] = [[2.0, 1.0, -0.5], [0.0, 0.5, 3.0]];

fn s_t() -> (Tensor, Tensor) {
    let s = t2(&[&S[0], &S[1]]).set_requires_grad(true);
    let t = t2(&[&T[0], &T[1]]);
    (s, t)
}

#[test]
fn ce_matches_hand_computation() {
    let vs = nn::VarStore::new(Device::Cpu);
    let c = ctx(&[], &[]);
    let mut ce = build("ce", "{}", &c, &vs);
    assert!(!ce.needs_teacher());
    let (s, _) = s_t();
    let labels = Tensor::from_slice(&[1i64, 2]);
    let got = scalar(&run(ce.as_mut(), &out(&s), None, &labels));
    let expect = -(log_softmax(&S[0])[1] + log_softmax(&S[1])[2]) / 2.0;
    assert!((got - expect).abs() < 1e-5, "{got} vs {expect}");

    // soft targets
    let soft = t2(&[&[0.2, 0.8, 0.0], &[0.0, 0.5, 0.5]]);
    let idx = Tensor::arange(2, (Kind::Int64, Device::Cpu));
    let so = out(&s);
    let got = scalar(
        &ce.compute(&LossInputs {
            student: &so,
            teacher: None,
            roles: &[],
            labels: &labels,
            soft_targets: Some(&soft),
            indices: &idx,
            epoch: 0,
            step: 0,
        })
        .unwrap(),
    );
    let (a, b) = (log_softmax(&S[0]), log_softmax(&S[1]));
    let expect = -((0.2 * a[0] + 0.8 * a[1]) + (0.5 * b[1] + 0.5 * b[2])) / 2.0;
    assert!((got - expect).abs() < 1e-5, "{got} vs {expect}");

    // label smoothing 0.1
    let mut ce = build("ce", "{label_smoothing: 0.1}", &c, &vs);
    let got = scalar(&run(ce.as_mut(), &out(&s), None, &labels));
    let row = |lp: &[f64], y: usize| {
        -(0..3)
            .map(|c| (if c == y { 0.9 } else { 0.0 } + 0.1 / 3.0) * lp[c])
            .sum::<f64>()
    };
    let expect = (row(&a, 1) + row(&b, 2)) / 2.0;
    assert!((got - expect).abs() < 1e-5, "{got} vs {expect}");
}

fn kd_by_hand(temp: f64, t_squared: bool) -> f64 {
    let mut total = 0.0;
    for b in 0..2 {
        let ls = log_softmax(&S[b].map(|x| x / temp));
        let lt = log_softmax(&T[b].map(|x| x / temp));
        total += (0..3).map(|c| lt[c].exp() * (lt[c] - ls[c])).sum::<f64>();
    }
    let kl = total / 2.0;
    if t_squared {
        kl * temp * temp
    } else {
        kl
    }
}

#[test]
fn kd_matches_hand_computation() {
    let vs = nn::VarStore::new(Device::Cpu);
    let c = ctx(&[], &[]);
    let labels = Tensor::from_slice(&[0i64, 1]);
    for (yaml, temp, sq) in [
        ("{}", 4.0, true),
        ("{temperature: 3, t_squared: false}", 3.0, false),
        ("{temperature: 1.5}", 1.5, true),
    ] {
        let mut kd = build("kd", yaml, &c, &vs);
        assert!(kd.needs_teacher());
        let (s, t) = s_t();
        let loss = run(kd.as_mut(), &out(&s), Some(&out(&t)), &labels);
        let got = scalar(&loss);
        let expect = kd_by_hand(temp, sq);
        assert!((got - expect).abs() < 1e-5, "{yaml}: {got} vs {expect}");
        loss.backward();
        let g = s.grad();
        assert!(bool::try_from(g.isfinite().all()).unwrap());
        assert!(scalar(&g.abs().sum(Kind::Double)) > 0.0);
    }
}

#[test]
fn kd_is_zero_when_student_equals_teacher() {
    let vs = nn::VarStore::new(Device::Cpu);
    let mut kd = build("kd", "{}", &ctx(&[], &[]), &vs);
    let (_, t) = s_t();
    let loss = run(
        kd.as_mut(),
        &out(&t),
        Some(&out(&t)),
        &Tensor::from_slice(&[0i64, 1]),
    );
    assert!(scalar(&loss).abs() < 1e-6);
}

#[test]
fn kd_without_teacher_is_an_error_and_bad_temperature_is_refused() {
    let vs = nn::VarStore::new(Device::Cpu);
    let mut kd = build("kd", "{}", &ctx(&[], &[]), &vs);
    let (s, _) = s_t();
    let idx = Tensor::arange(2, (Kind::Int64, Device::Cpu));
    let labels = Tensor::from_slice(&[0i64, 1]);
    let so = out(&s);
    let err = kd
        .compute(&LossInputs {
            student: &so,
            teacher: None,
            roles: &[],
            labels: &labels,
            soft_targets: None,
            indices: &idx,
            epoch: 0,
            step: 0,
        })
        .err()
        .unwrap();
    assert!(err.to_string().contains("teacher"), "{err}");
    let f = rolekd_core::registry::loss("kd").unwrap();
    let r = f(
        &Params::from_yaml("{temperature: 0}").unwrap(),
        &ctx(&[], &[]),
        &vs.root(),
    );
    assert!(r.is_err());
}

/// The trainer lays feature maps out channels-last: every feature loss must give the same
/// value and gradient on them as on the default layout (no `view` that assumes NCHW
/// strides, which would fail or mix up channels).
#[test]
fn feature_losses_agree_on_channels_last_features() {
    let stages: [(&str, [i64; 4]); 2] = [("stage1", [4, 4, 6, 6]), ("stage2", [4, 8, 3, 3])];
    let shapes: Vec<(&str, &[i64])> = stages.iter().map(|(n, s)| (*n, &s[..])).collect();
    let c = ctx(&shapes, &shapes);
    let names = [
        "fitnet", "at", "nst", "sp", "pkt", "cc", "rkd", "vid", "ab", "fsp", "ft", "ickd",
        "kd-svd", "mhgd",
    ];
    let logits = randn(&[4, 3], false);
    let labels = Tensor::from_slice(&[0i64, 1, 2, 0]);
    for name in names {
        let vs = nn::VarStore::new(Device::Cpu);
        // On the feature maps where the loss takes them, else its default inputs.
        let mut loss = match ["{features: [stage1, stage2]}", "{features: [stage2]}", "{}"]
            .iter()
            .find_map(|yaml| try_build(name, yaml, &c, &vs).ok())
        {
            Some(l) => l,
            None => panic!("{name}: cannot build"),
        };
        let s: Vec<Tensor> = stages.iter().map(|(_, sh)| randn(sh, false)).collect();
        let t: Vec<Tensor> = stages.iter().map(|(_, sh)| randn(sh, false)).collect();
        let mut value_and_grad = |s: &[Tensor], t: &[Tensor]| {
            let s: Vec<Tensor> = s
                .iter()
                .map(|x| x.detach().set_requires_grad(true))
                .collect();
            let named = |v: &[Tensor]| -> Vec<(String, Tensor)> {
                stages
                    .iter()
                    .zip(v)
                    .map(|((n, _), x)| (n.to_string(), x.shallow_clone()))
                    .collect()
            };
            let (sn, tn) = (named(&s), named(t));
            let so: Vec<(&str, &Tensor)> = sn.iter().map(|(n, x)| (n.as_str(), x)).collect();
            let to: Vec<(&str, &Tensor)> = tn.iter().map(|(n, x)| (n.as_str(), x)).collect();
            let v = run(
                loss.as_mut(),
                &output(&logits, &so),
                Some(&output(&logits, &to)),
                &labels,
            );
            if v.requires_grad() {
                v.backward();
            }
            let grads: Vec<f64> = s
                .iter()
                .filter(|x| x.grad().defined())
                .flat_map(|x| vals(&x.grad()))
                .collect();
            (scalar(&v), grads)
        };
        let (v0, g0) = value_and_grad(&s, &t);
        let cl = |v: &[Tensor]| -> Vec<Tensor> {
            v.iter().map(rolekd_core::layout::channels_last).collect()
        };
        let (v1, g1) = value_and_grad(&cl(&s), &cl(&t));
        close(v1, v0, &format!("{name} value"));
        assert!(
            !g0.is_empty() && g0.len() == g1.len(),
            "{name}: no gradient reached the features"
        );
        for (a, b) in g0.iter().zip(&g1) {
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + a.abs()),
                "{name}: grad {a} vs {b}"
            );
        }
    }
}
