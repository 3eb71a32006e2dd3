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

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn::VarStore, Device};

    /// Variables `a` (2 values) and `b` (1) with gradients [3, 0] and [4]: norm 5.
    fn with_grads() -> (VarStore, Tensor, Tensor) {
        let vs = VarStore::new(Device::Cpu);
        let a = vs.root().zeros("a", &[2]);
        let b = vs.root().zeros("b", &[1]);
        let loss = (&a * Tensor::from_slice(&[3.0f32, 0.0])).sum(Kind::Float)
            + (&b * Tensor::from_slice(&[4.0f32])).sum(Kind::Float);
        loss.backward();
        (vs, a, b)
    }

    fn values(t: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(t.grad().to_kind(Kind::Double)).unwrap()
    }

    /// PyTorch's `clip_grad_norm_`: every gradient times max / (total 2-norm + 1e-6) when
    /// the total norm exceeds max, computed here by hand for a norm of 5.
    #[test]
    fn gradients_over_the_norm_are_scaled_as_pytorch_does() {
        let (vs, a, b) = with_grads();
        clip_grad_norm(&vs, 1.0);
        let k = 1.0 / (5.0 + 1e-6);
        for (got, want) in values(&a)
            .iter()
            .chain(&values(&b))
            .zip([3.0 * k, 0.0, 4.0 * k])
        {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
        let (vs, a, b) = with_grads();
        clip_grad_norm(&vs, 10.0);
        assert_eq!((values(&a), values(&b)), (vec![3.0, 0.0], vec![4.0]));
    }
}
