//! Each optimizer against an independent f64 reference written from PyTorch's formulas,
//! on tiny tensors, plus checkpoint round trips.

use rolekd_core::config::Params;
use rolekd_core::plugin::optim::{Optimizer, TrainableParam};
use rolekd_core::Error;
use tch::{Kind, Tensor};

/// Quadratic-ish objective whose gradient at p is `a * p + c`, elementwise.
const A: [f64; 3] = [0.5, 2.0, -1.0];
const C: [f64; 3] = [0.3, -0.7, 1.1];
const P0: [f64; 3] = [1.0, -2.0, 0.5];
const Q0: [f64; 3] = [0.25, 3.0, -1.5];
const LRS: [f64; 3] = [0.1, 0.05, 0.2];

fn grad_of(p: &[f64]) -> Vec<f64> {
    p.iter()
        .zip(A.iter().zip(C))
        .map(|(p, (a, c))| a * p + c)
        .collect()
}

fn values(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(&t.to_kind(Kind::Double).detach().reshape([-1])).unwrap()
}

/// Parameters `w` (decay), `b` (no decay) and `frozen` (never gets a gradient).
struct Model {
    w: Tensor,
    b: Tensor,
    frozen: Tensor,
}

impl Model {
    fn new(kind: Kind, w: &[f64], b: &[f64]) -> Model {
        let mk = |v: &[f64]| Tensor::from_slice(v).to_kind(kind).set_requires_grad(true);
        Model {
            w: mk(w),
            b: mk(b),
            frozen: mk(&[7.0, 8.0]),
        }
    }

    fn trainable(&self) -> Vec<TrainableParam> {
        vec![
            TrainableParam {
                name: "layer.w".into(),
                tensor: self.w.shallow_clone(),
                decay: true,
            },
            TrainableParam {
                name: "layer.b".into(),
                tensor: self.b.shallow_clone(),
                decay: false,
            },
            TrainableParam {
                name: "frozen".into(),
                tensor: self.frozen.shallow_clone(),
                decay: true,
            },
        ]
    }

    /// Sets each trained parameter's gradient to `a * p + c` (computed in f64).
    fn backward(&mut self) {
        for p in [&mut self.w, &mut self.b] {
            p.zero_grad();
            let g = Tensor::from_slice(&grad_of(&values(p))).to_kind(p.kind());
            (&*p * g).sum(Kind::Double).backward();
        }
    }
}

fn build(name: &str, yaml: &str, model: &Model) -> Box<dyn Optimizer> {
    rolekd_optim::link();
    let f = rolekd_core::registry::optimizer(name).expect("registered");
    f(&Params::from_yaml(yaml).unwrap(), model.trainable()).unwrap()
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= tol * w.abs().max(1.0),
            "{what}: got {got:?}, want {want:?}"
        );
    }
}

// ---- references (plain f64, one parameter, following torch.optim) ----

struct SgdRef {
    momentum: f64,
    dampening: f64,
    nesterov: bool,
    wd: f64,
    buf: Option<Vec<f64>>,
}

impl SgdRef {
    fn step(&mut self, p: &mut [f64], lr: f64) {
        let g = grad_of(p);
        let d: Vec<f64> = g
            .iter()
            .zip(p.iter())
            .map(|(g, p)| g + self.wd * p)
            .collect();
        let u = if self.momentum != 0.0 {
            let buf = match self.buf.take() {
                None => d.clone(),
                Some(b) => b
                    .iter()
                    .zip(&d)
                    .map(|(b, d)| self.momentum * b + (1.0 - self.dampening) * d)
                    .collect(),
            };
            let u = if self.nesterov {
                d.iter()
                    .zip(&buf)
                    .map(|(d, b)| d + self.momentum * b)
                    .collect()
            } else {
                buf.clone()
            };
            self.buf = Some(buf);
            u
        } else {
            d
        };
        for (p, u) in p.iter_mut().zip(u) {
            *p -= lr * u;
        }
    }
}

struct AdamRef {
    b1: f64,
    b2: f64,
    eps: f64,
    wd: f64,
    decoupled: bool,
    t: i32,
    m: Vec<f64>,
    v: Vec<f64>,
}

impl AdamRef {
    fn new(wd: f64, decoupled: bool) -> AdamRef {
        AdamRef {
            b1: 0.9,
            b2: 0.999,
            eps: 1e-8,
            wd,
            decoupled,
            t: 0,
            m: vec![0.0; 3],
            v: vec![0.0; 3],
        }
    }

    fn step(&mut self, p: &mut [f64], lr: f64) {
        self.t += 1;
        let mut g = grad_of(p);
        for i in 0..p.len() {
            if self.decoupled {
                p[i] *= 1.0 - lr * self.wd;
            } else {
                g[i] += self.wd * p[i];
            }
            self.m[i] = self.b1 * self.m[i] + (1.0 - self.b1) * g[i];
            self.v[i] = self.b2 * self.v[i] + (1.0 - self.b2) * g[i] * g[i];
            let bc1 = 1.0 - self.b1.powi(self.t);
            let bc2 = 1.0 - self.b2.powi(self.t);
            let denom = self.v[i].sqrt() / bc2.sqrt() + self.eps;
            p[i] -= lr / bc1 * self.m[i] / denom;
        }
    }
}

// ---- trajectories ----

fn sgd_case(yaml: &str, momentum: f64, dampening: f64, nesterov: bool, wd: f64, kind: Kind) {
    let mut model = Model::new(kind, &P0, &Q0);
    let mut opt = build("sgd", yaml, &model);
    let mk = |wd| SgdRef {
        momentum,
        dampening,
        nesterov,
        wd,
        buf: None,
    };
    let (mut rw, mut rb) = (mk(wd), mk(0.0));
    let (mut pw, mut pb) = (P0.to_vec(), Q0.to_vec());
    let tol = if kind == Kind::Double { 1e-12 } else { 1e-6 };
    for (i, &lr) in LRS.iter().enumerate() {
        model.backward();
        opt.step(lr);
        rw.step(&mut pw, lr);
        rb.step(&mut pb, lr);
        assert_close(&values(&model.w), &pw, tol, &format!("{yaml} w step {i}"));
        assert_close(&values(&model.b), &pb, tol, &format!("{yaml} b step {i}"));
    }
    assert_eq!(values(&model.frozen), vec![7.0, 8.0]);
}

#[test]
fn sgd_first_step_by_hand() {
    // p = 1, g = 0.5 * 1 + 0.3 = 0.8, d = 0.8 + 0.1 * 1 = 0.9, buffer = d, p = 1 - 0.1 * 0.9.
    let mut model = Model::new(Kind::Double, &P0, &Q0);
    let mut opt = build("sgd", "{weight_decay: 0.1}", &model);
    model.backward();
    opt.step(0.1);
    assert!((values(&model.w)[0] - 0.91).abs() < 1e-15);
    // The bias has no decay: g = 0.5 * 0.25 + 0.3 = 0.425.
    assert!((values(&model.b)[0] - (0.25 - 0.0425)).abs() < 1e-15);
}

#[test]
fn sgd_matches_reference() {
    sgd_case("{}", 0.9, 0.0, false, 5e-4, Kind::Double);
    sgd_case(
        "{momentum: 0.8, weight_decay: 0.1, nesterov: true}",
        0.8,
        0.0,
        true,
        0.1,
        Kind::Double,
    );
    sgd_case(
        "{momentum: 0.5, dampening: 0.3, weight_decay: 0.05}",
        0.5,
        0.3,
        false,
        0.05,
        Kind::Double,
    );
    sgd_case(
        "{momentum: 0, weight_decay: 0.2}",
        0.0,
        0.0,
        false,
        0.2,
        Kind::Double,
    );
    sgd_case(
        "{momentum: 0.9, weight_decay: 0}",
        0.9,
        0.0,
        false,
        0.0,
        Kind::Double,
    );
    sgd_case(
        "{nesterov: true, weight_decay: 0.01}",
        0.9,
        0.0,
        true,
        0.01,
        Kind::Float,
    );
}

fn adam_case(name: &str, yaml: &str, wd: f64, decoupled: bool, kind: Kind) {
    let mut model = Model::new(kind, &P0, &Q0);
    let mut opt = build(name, yaml, &model);
    let (mut rw, mut rb) = (AdamRef::new(wd, decoupled), AdamRef::new(0.0, decoupled));
    let (mut pw, mut pb) = (P0.to_vec(), Q0.to_vec());
    let tol = if kind == Kind::Double { 1e-12 } else { 1e-6 };
    for (i, &lr) in LRS.iter().enumerate() {
        model.backward();
        opt.step(lr);
        rw.step(&mut pw, lr);
        rb.step(&mut pb, lr);
        assert_close(
            &values(&model.w),
            &pw,
            tol,
            &format!("{name} {yaml} w step {i}"),
        );
        assert_close(
            &values(&model.b),
            &pb,
            tol,
            &format!("{name} {yaml} b step {i}"),
        );
    }
    assert_eq!(values(&model.frozen), vec![7.0, 8.0]);
}

#[test]
fn adam_first_step_by_hand() {
    // After one bias-corrected step, m / sqrt(v) = g / |g|: each coordinate moves by
    // lr * |g| / (|g| + eps) against its gradient's sign.
    let mut model = Model::new(Kind::Double, &P0, &Q0);
    let mut opt = build("adam", "{}", &model);
    model.backward();
    opt.step(0.1);
    let g = grad_of(&P0);
    let want: Vec<f64> = P0
        .iter()
        .zip(&g)
        .map(|(p, g)| p - 0.1 * g / (g.abs() + 1e-8))
        .collect();
    assert_close(&values(&model.w), &want, 1e-12, "adam step 1");
}

#[test]
fn adam_and_adamw_match_reference() {
    adam_case("adam", "{}", 0.0, false, Kind::Double);
    adam_case("adam", "{weight_decay: 0.1}", 0.1, false, Kind::Double);
    adam_case("adamw", "{}", 0.01, true, Kind::Double);
    adam_case("adamw", "{weight_decay: 0.3}", 0.3, true, Kind::Double);
    adam_case("adamw", "{weight_decay: 0.3}", 0.3, true, Kind::Float);
    adam_case("adam", "{weight_decay: 0.1}", 0.1, false, Kind::Float);
}

#[test]
fn adam_betas_and_eps_are_used() {
    let mut model = Model::new(Kind::Double, &P0, &Q0);
    let mut opt = build("adam", "{betas: [0.5, 0.75], eps: 0.1}", &model);
    let mut r = AdamRef::new(0.0, false);
    (r.b1, r.b2, r.eps) = (0.5, 0.75, 0.1);
    let mut pw = P0.to_vec();
    for &lr in &LRS {
        model.backward();
        opt.step(lr);
        r.step(&mut pw, lr);
    }
    assert_close(&values(&model.w), &pw, 1e-12, "betas/eps");
}

// ---- checkpoints ----

fn round_trip(name: &str, yaml: &str, keys: &[&str]) {
    let mut a = Model::new(Kind::Double, &P0, &Q0);
    let mut opt_a = build(name, yaml, &a);
    for &lr in &LRS[..2] {
        a.backward();
        opt_a.step(lr);
    }
    let state = opt_a.state();
    let mut names: Vec<&str> = state.iter().map(|(k, _)| k.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, keys, "{name} state keys");

    // A fresh optimizer on a copy of the parameters, restored from the checkpoint.
    let mut b = Model::new(Kind::Double, &values(&a.w), &values(&a.b));
    let mut opt_b = build(name, yaml, &b);
    opt_b.load_state(&state).unwrap();
    // The checkpoint is a snapshot: stepping A further must not change it.
    let saved: Vec<Vec<f64>> = state.iter().map(|(_, t)| values(t)).collect();
    for _ in 0..2 {
        a.backward();
        opt_a.step(LRS[2]);
        b.backward();
        opt_b.step(LRS[2]);
        assert_eq!(values(&a.w), values(&b.w), "{name} continuation");
        assert_eq!(values(&a.b), values(&b.b), "{name} continuation");
    }
    let after: Vec<Vec<f64>> = state.iter().map(|(_, t)| values(t)).collect();
    assert_eq!(saved, after);
    // And the restored state saves back the same.
    let sa = opt_a.state();
    let sb = opt_b.state();
    for ((ka, ta), (kb, tb)) in sa.iter().zip(&sb) {
        assert_eq!(ka, kb);
        assert_eq!(values(ta), values(tb), "{ka}");
    }
}

#[test]
fn state_round_trip_continues_identically() {
    round_trip(
        "sgd",
        "{nesterov: true}",
        &["layer.b.momentum_buffer", "layer.w.momentum_buffer"],
    );
    let adam_keys = [
        "layer.b.exp_avg",
        "layer.b.exp_avg_sq",
        "layer.b.step",
        "layer.w.exp_avg",
        "layer.w.exp_avg_sq",
        "layer.w.step",
    ];
    round_trip("adam", "{weight_decay: 0.1}", &adam_keys);
    round_trip("adamw", "{}", &adam_keys);
}

#[test]
fn adam_step_count_is_saved() {
    let mut m = Model::new(Kind::Double, &P0, &Q0);
    let mut opt = build("adamw", "{}", &m);
    for _ in 0..3 {
        m.backward();
        opt.step(0.1);
    }
    let state = opt.state();
    let (_, step) = state.iter().find(|(k, _)| k == "layer.w.step").unwrap();
    assert_eq!(step.int64_value(&[]), 3);
}

fn load_err(name: &str, state: &[(String, Tensor)]) -> String {
    let m = Model::new(Kind::Double, &P0, &Q0);
    let mut opt = build(name, "{}", &m);
    match opt.load_state(state).unwrap_err() {
        Error::Invalid(msg) => msg,
        other => panic!("expected an invalid-state error, got {other}"),
    }
}

#[test]
fn bad_state_is_refused_clearly() {
    let t = |v: &[f64]| Tensor::from_slice(v);
    let msg = load_err("sgd", &[("layer.w.momentum_buffer".into(), t(&[1.0, 2.0]))]);
    assert!(
        msg.contains(
            "`layer.w.momentum_buffer` has shape [2] but parameter `layer.w` has shape [3]"
        ),
        "{msg}"
    );
    let msg = load_err("sgd", &[("conv.w.momentum_buffer".into(), t(&[1.0]))]);
    assert!(
        msg.contains("unexpected entries `conv.w.momentum_buffer`"),
        "{msg}"
    );
    let msg = load_err(
        "adam",
        &[("layer.w.momentum_buffer".into(), t(&[1.0, 2.0, 3.0]))],
    );
    assert!(msg.contains("adam state: unexpected entries"), "{msg}");
    let msg = load_err(
        "adam",
        &[
            ("layer.w.exp_avg".into(), t(&[1.0, 2.0, 3.0])),
            ("layer.w.step".into(), Tensor::from(2i64)),
        ],
    );
    assert!(
        msg.contains("`layer.w.exp_avg` is present but `layer.w.exp_avg_sq` is missing"),
        "{msg}"
    );
    let msg = load_err(
        "adamw",
        &[
            ("layer.w.exp_avg".into(), t(&[1.0, 2.0, 3.0])),
            ("layer.w.exp_avg_sq".into(), t(&[1.0, 2.0, 3.0])),
            ("layer.w.step".into(), Tensor::from(-1i64)),
        ],
    );
    assert!(
        msg.contains("`layer.w.step` must be a whole number >= 0"),
        "{msg}"
    );
    let msg = load_err(
        "sgd",
        &[
            ("layer.w.momentum_buffer".into(), t(&[1.0, 2.0, 3.0])),
            ("layer.w.momentum_buffer".into(), t(&[1.0, 2.0, 3.0])),
        ],
    );
    assert!(msg.contains("appears twice"), "{msg}");
    // Empty state (a checkpoint taken before the first step) loads.
    let m = Model::new(Kind::Double, &P0, &Q0);
    build("adam", "{}", &m).load_state(&[]).unwrap();
}

#[test]
fn bad_params_are_located() {
    rolekd_optim::link();
    let m = Model::new(Kind::Double, &P0, &Q0);
    let cases = [
        ("sgd", "{momentum: -1}", "momentum"),
        ("sgd", "{nesterov: true, momentum: 0}", "nesterov"),
        ("sgd", "{nesterov: true, dampening: 0.1}", "nesterov"),
        ("sgd", "{lr: 0.1}", "lr"),
        ("adam", "{betas: [0.9, 1.0]}", "betas"),
        ("adam", "{eps: -1}", "eps"),
        ("adamw", "{weight_decay: -0.1}", "weight_decay"),
    ];
    for (name, yaml, path) in cases {
        let f = rolekd_core::registry::optimizer(name).unwrap();
        match f(&Params::from_yaml(yaml).unwrap(), m.trainable()) {
            Err(Error::Config(e)) => assert_eq!(e.path, path, "{name} {yaml}: {e}"),
            Err(other) => panic!("{name} {yaml}: expected a config error, got {other}"),
            Ok(_) => panic!("{name} {yaml}: accepted"),
        }
    }
}
