//! Gradients: which variables an optimiser steps, the clip-to-CE combination, norm clipping.

use rolekd_core::error::Result;
use rolekd_core::plugin::optim::TrainableParam;
use tch::{Kind, Tensor};

/// The trainable variables, sorted by name (a stable order for optimizer state). Weight
/// decay applies to all of them, as PyTorch's optimizers do by default.
pub(super) fn trainable_params(vs: &tch::nn::VarStore) -> Vec<TrainableParam> {
    let mut v: Vec<TrainableParam> = vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .map(|(name, tensor)| TrainableParam {
            name,
            tensor,
            decay: true,
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// Sets each parameter's gradient to grad(CE) + clip(grad(D), ||grad(CE)|| sigmoid(epoch)),
/// through a surrogate whose gradient is exactly that combination.
pub(super) fn backward_clip_to_ce(
    params: &[Tensor],
    ce: &Tensor,
    distill: &Tensor,
    epoch: usize,
) -> Result<()> {
    let g_ce = Tensor::f_run_backward(&[ce], params, true, false)?;
    let g_d = Tensor::f_run_backward(&[distill], params, false, false)?;
    let scale = 1.0 / (1.0 + (-(epoch as f64)).exp());
    let mut surrogate: Option<Tensor> = None;
    for ((p, c), d) in params.iter().zip(&g_ce).zip(&g_d) {
        let c = if c.defined() {
            c.shallow_clone()
        } else {
            p.zeros_like()
        };
        let d = if d.defined() {
            let max = c.norm().double_value(&[]) * scale;
            let norm = d.norm().double_value(&[]);
            if norm > max && norm > 0.0 {
                d * (max / norm)
            } else {
                d.shallow_clone()
            }
        } else {
            p.zeros_like()
        };
        let term = (p * (c + d).detach()).sum(Kind::Float);
        surrogate = Some(match surrogate {
            Some(s) => s + term,
            None => term,
        });
    }
    if let Some(s) = surrogate {
        s.backward();
    }
    Ok(())
}

pub(super) fn clip_grad_norm(vs: &tch::nn::VarStore, max: f64) {
    let grads: Vec<Tensor> = vs
        .trainable_variables()
        .iter()
        .map(|p| p.grad())
        .filter(|g| g.defined())
        .collect();
    if grads.is_empty() {
        return;
    }
    let total: f64 = grads
        .iter()
        .map(|g| g.pow_tensor_scalar(2).sum(Kind::Double).double_value(&[]))
        .sum::<f64>()
        .sqrt();
    if total > max {
        let scale = max / (total + 1e-6);
        tch::no_grad(|| {
            for g in &grads {
                let mut g = g.shallow_clone();
                let _ = g.f_mul_scalar_(scale);
            }
        });
    }
}
