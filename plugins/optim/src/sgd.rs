//! `sgd`: torch.optim.SGD's update, for parameter p with gradient g at learning rate lr:
//!
//! ```text
//! d = g + weight_decay * p                      (weight_decay only where decay = true)
//! b = d                                         (first step)
//! b = momentum * b + (1 - dampening) * d        (later steps)
//! u = d + momentum * b  if nesterov, else  b    (u = d when momentum = 0)
//! p = p - lr * u
//! ```

use crate::state::{snapshot, StateTable};
use rolekd_core::config::Params;
use rolekd_core::plugin::optim::{Optimizer, TrainableParam};
use rolekd_core::Result;
use serde::Deserialize;
use tch::{TchError, Tensor};

/// Parameters of `sgd` (the learning rate comes from the schedule).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SgdParams {
    /// Momentum factor (0 disables the momentum buffer).
    #[serde(default = "default_momentum")]
    pub momentum: f64,
    /// Dampening of the gradient's contribution to the momentum buffer.
    #[serde(default)]
    pub dampening: f64,
    /// Nesterov momentum (needs momentum > 0 and dampening 0).
    #[serde(default)]
    pub nesterov: bool,
    /// L2 penalty added to the gradient of parameters marked for decay.
    #[serde(default = "default_weight_decay")]
    pub weight_decay: f64,
}

fn default_momentum() -> f64 {
    0.9
}

fn default_weight_decay() -> f64 {
    5e-4
}

impl Default for SgdParams {
    fn default() -> Self {
        SgdParams {
            momentum: default_momentum(),
            dampening: 0.0,
            nesterov: false,
            weight_decay: default_weight_decay(),
        }
    }
}

struct Slot {
    param: TrainableParam,
    momentum_buffer: Option<Tensor>,
    /// Working memory shaped like the parameter, allocated on the first step.
    scratch: Option<Tensor>,
}

/// SGD with momentum, as torch.optim.SGD.
pub struct Sgd {
    cfg: SgdParams,
    slots: Vec<Slot>,
    /// `momentum` as a scalar tensor per device, for Nesterov's `d + momentum * b`.
    momentum_t: Option<Tensor>,
}

impl Sgd {
    pub fn new(cfg: SgdParams, params: Vec<TrainableParam>) -> Self {
        let slots = params
            .into_iter()
            .map(|param| Slot {
                param,
                momentum_buffer: None,
                scratch: None,
            })
            .collect();
        Sgd {
            cfg,
            slots,
            momentum_t: None,
        }
    }

    fn try_step(&mut self, lr: f64) -> Result<(), TchError> {
        let SgdParams {
            momentum,
            dampening,
            nesterov,
            weight_decay,
        } = self.cfg;
        for slot in &mut self.slots {
            let grad = slot.param.tensor.grad();
            if !grad.defined() {
                continue;
            }
            let p = &mut slot.param.tensor;
            let d = slot.scratch.get_or_insert_with(|| p.zeros_like());
            let wd = if slot.param.decay { weight_decay } else { 0.0 };
            // d = g + wd * p
            if wd != 0.0 {
                p.f_mul_scalar_out(d, wd).map(drop)?;
                d.f_add_(&grad).map(drop)?;
            } else {
                d.f_copy_(&grad)?;
            }
            if momentum == 0.0 {
                d.f_mul_scalar_(-lr).map(drop)?;
                p.f_add_(d).map(drop)?;
                continue;
            }
            match &mut slot.momentum_buffer {
                None => slot.momentum_buffer = Some(d.copy()),
                Some(b) => {
                    b.f_mul_scalar_(momentum).map(drop)?;
                    if dampening != 0.0 {
                        // Nesterov is refused with dampening, so d is not needed afterwards.
                        d.f_mul_scalar_(1.0 - dampening).map(drop)?;
                    }
                    b.f_add_(d).map(drop)?;
                }
            }
            let b = slot.momentum_buffer.as_ref().expect("set above");
            if nesterov {
                let m = match &self.momentum_t {
                    Some(m) if m.device() == p.device() && m.kind() == p.kind() => m,
                    _ => self.momentum_t.insert(
                        Tensor::from(momentum)
                            .to_kind(p.kind())
                            .to_device(p.device()),
                    ),
                };
                // u = d + momentum * b, then p -= lr * u
                d.f_addcmul_(b, m).map(drop)?;
                d.f_mul_scalar_(-lr).map(drop)?;
            } else {
                b.f_mul_scalar_out(d, -lr).map(drop)?;
            }
            p.f_add_(d).map(drop)?;
        }
        Ok(())
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, lr: f64) {
        if let Err(e) = tch::no_grad(|| self.try_step(lr)) {
            panic!("sgd step failed: {e}");
        }
    }

    fn state(&self) -> Vec<(String, Tensor)> {
        self.slots
            .iter()
            .filter_map(|s| {
                let b = s.momentum_buffer.as_ref()?;
                Some((format!("{}.momentum_buffer", s.param.name), snapshot(b)))
            })
            .collect()
    }

    fn load_state(&mut self, state: &[(String, Tensor)]) -> Result<()> {
        let mut table = StateTable::new("sgd", state)?;
        let mut buffers = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            let b = tch::no_grad(|| {
                table.take_like(&s.param.name, "momentum_buffer", &s.param.tensor)
            })?;
            buffers.push(b);
        }
        table.finish()?;
        for (s, b) in self.slots.iter_mut().zip(buffers) {
            s.momentum_buffer = b;
        }
        Ok(())
    }
}

/// Factory of `sgd`.
pub fn build(params: &Params, trainable: Vec<TrainableParam>) -> Result<Box<dyn Optimizer>> {
    let cfg: SgdParams = params.parse()?;
    for (field, v) in [
        ("momentum", cfg.momentum),
        ("dampening", cfg.dampening),
        ("weight_decay", cfg.weight_decay),
    ] {
        params.non_negative(field, v)?;
    }
    if cfg.nesterov && (cfg.momentum <= 0.0 || cfg.dampening != 0.0) {
        return Err(params
            .child_error(
                "nesterov",
                "Nesterov momentum needs momentum > 0 and dampening 0",
            )
            .into());
    }
    Ok(Box::new(Sgd::new(cfg, trainable)))
}
