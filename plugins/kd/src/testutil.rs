//! Test helpers: contexts, outputs, and plain f64 views of tensors.

use rolekd_core::config::Params;
use rolekd_core::plugin::loss::{Loss, LossCtx, LossInputs};
use rolekd_core::plugin::model::ModelOutput;
use rolekd_core::Result;
use tch::{nn, Device, Kind, Tensor};

/// One intra-op thread: on a small, busy machine libtorch's spinning OpenMP workers make
/// tiny ops many times slower.
pub fn one_thread() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| tch::set_num_threads(1));
}

pub fn ctx(student: &[(&str, &[i64])], teacher: &[(&str, &[i64])]) -> LossCtx {
    one_thread();
    let conv = |v: &[(&str, &[i64])]| {
        v.iter()
            .map(|(n, s)| (n.to_string(), s.to_vec()))
            .collect::<Vec<_>>()
    };
    LossCtx {
        num_classes: 3,
        train_size: 16,
        device: Device::Cpu,
        student_features: conv(student),
        teacher_features: conv(teacher),
    }
}

pub fn try_build(
    name: &str,
    yaml: &str,
    ctx: &LossCtx,
    vs: &nn::VarStore,
) -> Result<Box<dyn Loss>> {
    let f = rolekd_core::registry::loss(name).unwrap();
    f(&Params::from_yaml(yaml).unwrap(), ctx, &vs.root())
}

pub fn build(name: &str, yaml: &str, ctx: &LossCtx, vs: &nn::VarStore) -> Box<dyn Loss> {
    try_build(name, yaml, ctx, vs).unwrap()
}

pub fn build_err(name: &str, yaml: &str, ctx: &LossCtx) -> String {
    let vs = nn::VarStore::new(Device::Cpu);
    match try_build(name, yaml, ctx, &vs) {
        Ok(_) => panic!("{name} {yaml}: expected an error"),
        Err(e) => e.to_string(),
    }
}

pub fn output(logits: &Tensor, feats: &[(&str, &Tensor)]) -> ModelOutput {
    ModelOutput {
        logits: logits.shallow_clone(),
        features: feats
            .iter()
            .map(|(n, t)| (n.to_string(), t.shallow_clone()))
            .collect(),
    }
}

pub fn run(
    loss: &mut dyn Loss,
    s: &ModelOutput,
    t: Option<&ModelOutput>,
    labels: &Tensor,
) -> Tensor {
    let idx = Tensor::arange(labels.size()[0], (Kind::Int64, Device::Cpu));
    run_at(loss, s, t, labels, &idx, 0)
}

pub fn run_at(
    loss: &mut dyn Loss,
    s: &ModelOutput,
    t: Option<&ModelOutput>,
    labels: &Tensor,
    indices: &Tensor,
    epoch: usize,
) -> Tensor {
    loss.compute(&LossInputs {
        student: s,
        teacher: t,
        roles: &[],
        labels,
        soft_targets: None,
        indices,
        epoch,
        step: 0,
    })
    .unwrap()
}

pub fn t2(rows: &[&[f64]]) -> Tensor {
    let flat: Vec<f32> = rows
        .iter()
        .flat_map(|r| r.iter().map(|&x| x as f32))
        .collect();
    Tensor::from_slice(&flat).view([rows.len() as i64, rows[0].len() as i64])
}

/// A random tensor (f32, standard normal) with gradients when `grad`. Seeded: the k-th
/// draw of a test comes from the stream `test name / k`, so a failure reproduces whatever
/// other tests run beside it (libtorch's own generator is global to the process).
pub fn randn(shape: &[i64], grad: bool) -> Tensor {
    seeded_normal(shape).set_requires_grad(grad)
}

thread_local! {
    static DRAWS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Standard normal values (Box-Muller) from this test thread's next stream.
pub fn seeded_normal(shape: &[i64]) -> Tensor {
    use rand::Rng;
    let k = DRAWS.with(|d| {
        let k = d.get();
        d.set(k + 1);
        k
    });
    let thread = std::thread::current();
    let test = thread.name().unwrap_or("main");
    let mut rng = rolekd_core::rng::Seed(0x6b64).child(test).index(k).rng();
    let n: i64 = shape.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|_| {
            let u1: f64 = 1.0 - rng.random::<f64>();
            let u2: f64 = rng.random();
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        })
        .collect();
    Tensor::from_slice(&values).view(shape)
}

pub fn vals(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.detach().flatten(0, -1).to_kind(Kind::Double)).unwrap()
}

pub fn scalar(t: &Tensor) -> f64 {
    f64::try_from(t.detach().to_kind(Kind::Double)).unwrap()
}

pub fn close(got: f64, expect: f64, what: &str) {
    let tol = 1e-4 * expect.abs().max(1.0);
    assert!(
        (got - expect).abs() <= tol,
        "{what}: got {got}, expected {expect}"
    );
}

/// Backpropagates `loss` and checks `x`'s gradient is finite and not all zero.
pub fn grad_ok(loss: &Tensor, x: &Tensor, what: &str) {
    loss.backward();
    let g = x.grad();
    assert!(g.defined(), "{what}: no gradient");
    assert!(
        bool::try_from(g.isfinite().all()).unwrap(),
        "{what}: non-finite gradient"
    );
    assert!(
        scalar(&g.abs().sum(Kind::Double)) > 0.0,
        "{what}: zero gradient"
    );
}

/// Value of element [b, c, h, w] of a 4-D f64 view.
pub struct Map4 {
    pub dims: [usize; 4],
    pub v: Vec<f64>,
}

impl Map4 {
    pub fn of(t: &Tensor) -> Map4 {
        let s = t.size();
        Map4 {
            dims: [s[0] as usize, s[1] as usize, s[2] as usize, s[3] as usize],
            v: vals(t),
        }
    }
    pub fn at(&self, b: usize, c: usize, i: usize) -> f64 {
        let hw = self.dims[2] * self.dims[3];
        self.v[(b * self.dims[1] + c) * hw + i]
    }
    pub fn hw(&self) -> usize {
        self.dims[2] * self.dims[3]
    }
    /// Row b flattened (C*H*W values).
    pub fn row(&self, b: usize) -> Vec<f64> {
        let n = self.dims[1] * self.hw();
        self.v[b * n..(b + 1) * n].to_vec()
    }
    /// Global average pooled row b.
    pub fn pooled(&self, b: usize) -> Vec<f64> {
        (0..self.dims[1])
            .map(|c| (0..self.hw()).map(|i| self.at(b, c, i)).sum::<f64>() / self.hw() as f64)
            .collect()
    }
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub fn unit(a: &[f64]) -> Vec<f64> {
    let n = dot(a, a).sqrt().max(1e-12);
    a.iter().map(|x| x / n).collect()
}

pub fn log_softmax(v: &[f64]) -> Vec<f64> {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
    v.iter().map(|x| x - lse).collect()
}

pub fn softmax(v: &[f64]) -> Vec<f64> {
    log_softmax(v).iter().map(|x| x.exp()).collect()
}

/// A 1x1 conv by hand: weight [O, I], optional bias [O], on row-major maps.
pub fn conv1x1(x: &Map4, w: &[f64], bias: Option<&[f64]>, o: usize) -> Map4 {
    let [b, i_c, h, ww] = x.dims;
    let hw = h * ww;
    let mut v = vec![0.0; b * o * hw];
    for n in 0..b {
        for oc in 0..o {
            for p in 0..hw {
                let mut acc = bias.map(|bb| bb[oc]).unwrap_or(0.0);
                for ic in 0..i_c {
                    acc += w[oc * i_c + ic] * x.at(n, ic, p);
                }
                v[(n * o + oc) * hw + p] = acc;
            }
        }
    }
    Map4 {
        dims: [b, o, h, ww],
        v,
    }
}

/// Runs `loss` for a student with features `student` against a teacher with `teacher`
/// (fresh random logits, labels 0..B), checks the value against the hand computation
/// `expect` and that a gradient reaches `grad_of`; returns the logits and labels.
pub fn check_loss(
    loss: &mut dyn Loss,
    student: &[(&str, &Tensor)],
    teacher: &[(&str, &Tensor)],
    expect: f64,
    what: &str,
    grad_of: &Tensor,
) -> (Tensor, Tensor) {
    let b = student[0].1.size()[0];
    let logits = randn(&[b, 3], false);
    let labels = Tensor::arange(b, (Kind::Int64, Device::Cpu));
    let v = run(
        loss,
        &output(&logits, student),
        Some(&output(&logits, teacher)),
        &labels,
    );
    close(scalar(&v), expect, what);
    grad_ok(&v, grad_of, what);
    (logits, labels)
}

/// Runs `loss` for student logits `s` against teacher logits `t`, checks the value against
/// the hand computation `expect` and that a gradient reaches `s`.
pub fn check_logit_loss(
    loss: &mut dyn Loss,
    s: &Tensor,
    t: &Tensor,
    labels: &Tensor,
    expect: f64,
    what: &str,
) {
    let v = run(loss, &output(s, &[]), Some(&output(t, &[])), labels);
    close(scalar(&v), expect, what);
    grad_ok(&v, s, what);
}

/// The mean of the squared differences of two equally sized matrices.
pub fn mean_sq_diff(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    let (sum, n) = a
        .iter()
        .zip(b)
        .flat_map(|(ra, rb)| ra.iter().zip(rb))
        .fold((0.0, 0), |(s, n), (x, y)| (s + (x - y).powi(2), n + 1));
    sum / n.max(1) as f64
}
