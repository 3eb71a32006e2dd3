//! `adam` and `adamw`: torch.optim.Adam and torch.optim.AdamW (amsgrad off). For parameter p
//! with gradient g at learning rate lr, step t (counted per parameter from 1):
//!
//! ```text
//! adamw:  p = p * (1 - lr * weight_decay)        (decoupled; decay params only)
//! adam:   g = g + weight_decay * p               (L2; decay params only)
//! m = beta1 * m + (1 - beta1) * g                (as m.lerp_(g, 1 - beta1))
//! v = beta2 * v + (1 - beta2) * g * g
//! p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
//! ```

use crate::state::{snapshot, step_tensor, StateTable};
use rolekd_core::config::Params;
use rolekd_core::plugin::optim::{Optimizer, TrainableParam};
use rolekd_core::Result;
use serde::Deserialize;
use tch::{TchError, Tensor};

/// Parameters of `adam` and `adamw` (the learning rate comes from the schedule).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamParams {
    /// Decay rates of the first and second moment estimates, each in [0, 1).
    #[serde(default = "default_betas")]
    pub betas: [f64; 2],
    /// Added to the denominator for numerical stability.
    #[serde(default = "default_eps")]
    pub eps: f64,
    /// Weight decay of parameters marked for decay: an L2 term added to the gradient for
    /// `adam` (default 0), decoupled for `adamw` (default 0.01).
    #[serde(default)]
    pub weight_decay: Option<f64>,
}

fn default_betas() -> [f64; 2] {
    [0.9, 0.999]
}

fn default_eps() -> f64 {
    1e-8
}

struct Slot {
    param: TrainableParam,
    /// Steps taken on this parameter (0: no state yet).
    step: u64,
    exp_avg: Option<Tensor>,
    exp_avg_sq: Option<Tensor>,
    /// Working memory shaped like the parameter.
    scratch: Option<Tensor>,
}

/// Adam (L2 weight decay) or AdamW (decoupled weight decay).
pub struct Adam {
    name: &'static str,
    decoupled: bool,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
    slots: Vec<Slot>,
}

impl Adam {
    /// torch.optim.Adam: `weight_decay` is an L2 term added to the gradient.
    pub fn new_adam(
        betas: [f64; 2],
        eps: f64,
        weight_decay: f64,
        params: Vec<TrainableParam>,
    ) -> Self {
        Adam::new("adam", false, betas, eps, weight_decay, params)
    }

    /// torch.optim.AdamW: `weight_decay` shrinks the parameter directly.
    pub fn new_adamw(
        betas: [f64; 2],
        eps: f64,
        weight_decay: f64,
        params: Vec<TrainableParam>,
    ) -> Self {
        Adam::new("adamw", true, betas, eps, weight_decay, params)
    }

    fn new(
        name: &'static str,
        decoupled: bool,
        betas: [f64; 2],
        eps: f64,
        weight_decay: f64,
        params: Vec<TrainableParam>,
    ) -> Self {
        let slots = params
            .into_iter()
            .map(|param| Slot {
                param,
                step: 0,
                exp_avg: None,
                exp_avg_sq: None,
                scratch: None,
            })
            .collect();
        Adam {
            name,
            decoupled,
            beta1: betas[0],
            beta2: betas[1],
            eps,
            weight_decay,
            slots,
        }
    }

    fn try_step(&mut self, lr: f64) -> Result<(), TchError> {
        let (beta1, beta2, eps) = (self.beta1, self.beta2, self.eps);
        for slot in &mut self.slots {
            let grad = slot.param.tensor.grad();
            if !grad.defined() {
                continue;
            }
            let p = &mut slot.param.tensor;
            let wd = if slot.param.decay {
                self.weight_decay
            } else {
                0.0
            };
            slot.step += 1;
            let m = slot.exp_avg.get_or_insert_with(|| p.zeros_like());
            let v = slot.exp_avg_sq.get_or_insert_with(|| p.zeros_like());
            let s = slot.scratch.get_or_insert_with(|| p.zeros_like());

            if self.decoupled && wd != 0.0 {
                p.f_mul_scalar_(1.0 - lr * wd).map(drop)?;
            }
            // g (+ wd * p for adam): into s when it must be modified.
            let g: &Tensor = if !self.decoupled && wd != 0.0 {
                p.f_mul_scalar_out(s, wd).map(drop)?;
                s.f_add_(&grad).map(drop)?;
                s
            } else {
                &grad
            };
            m.f_lerp_(g, 1.0 - beta1).map(drop)?;
            // v = beta2 * v + (1 - beta2) * g * g
            g.f_mul_out(s, g).map(drop)?;
            s.f_mul_scalar_(1.0 - beta2).map(drop)?;
            v.f_mul_scalar_(beta2).map(drop)?;
            v.f_add_(s).map(drop)?;

            let t = slot.step as i32;
            let bias_correction1 = 1.0 - beta1.powi(t);
            let bias_correction2_sqrt = (1.0 - beta2.powi(t)).sqrt();
            let step_size = lr / bias_correction1;
            // s = sqrt(v) / sqrt(bc2) + eps; s = m / s; p -= step_size * s
            v.f_sqrt_out(s).map(drop)?;
            s.f_div_scalar_(bias_correction2_sqrt).map(drop)?;
            s.f_add_scalar_(eps).map(drop)?;
            m.f_div_out(s, s).map(drop)?;
            s.f_mul_scalar_(-step_size).map(drop)?;
            p.f_add_(s).map(drop)?;
        }
        Ok(())
    }
}

impl Optimizer for Adam {
    fn step(&mut self, lr: f64) {
        if let Err(e) = tch::no_grad(|| self.try_step(lr)) {
            panic!("{} step failed: {e}", self.name);
        }
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(3 * self.slots.len());
        for s in &self.slots {
            if let (Some(m), Some(v)) = (&s.exp_avg, &s.exp_avg_sq) {
                let n = &s.param.name;
                out.push((format!("{n}.exp_avg"), snapshot(m)));
                out.push((format!("{n}.exp_avg_sq"), snapshot(v)));
                out.push((format!("{n}.step"), step_tensor(s.step)));
            }
        }
        out
    }

    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        let mut table = StateTable::new(self.name, state)?;
        let mut restored = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            let (n, p) = (&s.param.name, &s.param.tensor);
            let m = tch::no_grad(|| table.take_like(n, "exp_avg", p))?;
            let v = tch::no_grad(|| table.take_like(n, "exp_avg_sq", p))?;
            let step = table.take_step(n)?;
            let entry = match (m, v, step) {
                (None, None, None) => None,
                (Some(m), Some(v), Some(step)) => Some((m, v, step)),
                (m, v, step) => {
                    let have = [
                        ("exp_avg", m.is_some()),
                        ("exp_avg_sq", v.is_some()),
                        ("step", step.is_some()),
                    ];
                    let present = have.iter().find(|h| h.1).expect("one is present").0;
                    let missing = have.iter().find(|h| !h.1).expect("one is missing").0;
                    return Err(table.missing(n, present, missing));
                }
            };
            restored.push(entry);
        }
        table.finish()?;
        for (s, entry) in self.slots.iter_mut().zip(restored) {
            match entry {
                Some((m, v, step)) => {
                    s.exp_avg = Some(m);
                    s.exp_avg_sq = Some(v);
                    s.step = step;
                }
                None => {
                    s.exp_avg = None;
                    s.exp_avg_sq = None;
                    s.step = 0;
                }
            }
        }
        Ok(())
    }
}

fn check(params: &Params, cfg: &AdamParams, weight_decay: f64) -> Result<()> {
    for (i, b) in cfg.betas.iter().enumerate() {
        if !(0.0..1.0).contains(b) {
            return Err(params
                .child_error("betas", format!("betas[{i}] must be in [0, 1), is {b}"))
                .into());
        }
    }
    params.non_negative("eps", cfg.eps)?;
    params.non_negative("weight_decay", weight_decay)?;
    Ok(())
}

/// Factory of `adam`.
pub fn build_adam(params: &Params, trainable: Vec<TrainableParam>) -> Result<Box<dyn Optimizer>> {
    let cfg: AdamParams = params.parse()?;
    let wd = cfg.weight_decay.unwrap_or(0.0);
    check(params, &cfg, wd)?;
    Ok(Box::new(Adam::new_adam(cfg.betas, cfg.eps, wd, trainable)))
}

/// Factory of `adamw`.
pub fn build_adamw(params: &Params, trainable: Vec<TrainableParam>) -> Result<Box<dyn Optimizer>> {
    let cfg: AdamParams = params.parse()?;
    let wd = cfg.weight_decay.unwrap_or(0.01);
    check(params, &cfg, wd)?;
    Ok(Box::new(Adam::new_adamw(cfg.betas, cfg.eps, wd, trainable)))
}
