//! Evaluating a model on a whole split.

use crate::plugin::model::Model;
use crate::precision::{to_fp32, Autocast, Precision};
use tch::{Kind, Tensor};

/// Accuracy and mean cross-entropy of `model` (eval mode, running BN statistics) on the
/// whole set, the last partial batch included; the forward passes at `precision`, the
/// cross-entropy in fp32.
pub fn evaluate(
    model: &dyn Model,
    x: &Tensor,
    y: &Tensor,
    batch: usize,
    precision: Precision,
) -> (f64, f64) {
    let n = x.size()[0];
    let mut correct = 0i64;
    let mut loss = 0f64;
    tch::no_grad(|| {
        let mut start = 0;
        while start < n {
            let len = (batch as i64).min(n - start);
            let xs = x.narrow(0, start, len);
            let ys = y.narrow(0, start, len);
            let logits = {
                let _autocast = Autocast::begin(precision, xs.device());
                model.forward(&xs, false).logits
            };
            let logits = to_fp32(&logits);
            correct += logits
                .argmax(-1, false)
                .eq_tensor(&ys)
                .sum(Kind::Int64)
                .int64_value(&[]);
            loss += logits.cross_entropy_for_logits(&ys).double_value(&[]) * len as f64;
            start += len;
        }
    });
    (correct as f64 / n.max(1) as f64, loss / n.max(1) as f64)
}
