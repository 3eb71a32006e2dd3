//! Evaluating a model on a whole split: top-1 and top-5 accuracy, cross-entropy, expected
//! calibration error, and the predictions (for agreement with another model).

use super::eval_data::EvalData;
use super::roles::load_model;
use crate::autocast::Autocast;
use crate::checkpoint::SpecRecord;
use rolekd_core::error::Result;
use rolekd_core::layout;
use rolekd_core::plugin::model::Model;
use rolekd_core::precision::{to_fp32, Precision};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Equal-width confidence bins of the expected calibration error (Guo et al., "On
/// Calibration of Modern Neural Networks", ICML 2017, use 15).
pub const ECE_BINS: i64 = 15;

/// A model's figures on one split.
#[derive(Debug)]
pub struct Evaluation {
    pub acc: f64,
    /// Mean cross-entropy (fp32).
    pub loss: f64,
    /// Top-5 accuracy; `None` with fewer than 5 classes, where it would always be 1.
    pub top5: Option<f64>,
    /// Expected calibration error over [`ECE_BINS`] bins of the top-1 softmax probability.
    pub ece: f64,
    /// The predicted class of every image (int64, on the CPU).
    pub predictions: Tensor,
}

impl Evaluation {
    /// Fraction of images on which this model and `other` predict the same class: how
    /// closely a student follows its teacher, right or wrong.
    pub fn agreement(&self, other: &Tensor) -> f64 {
        agreement(&self.predictions, other)
    }

    /// The figures under `<split>_acc`, `_loss`, `_ece`, `_top5` (and `final_test_acc`
    /// for the test split), as stage summaries carry them.
    pub fn summary(&self, split: &str) -> BTreeMap<String, f64> {
        let mut s = BTreeMap::new();
        s.insert(format!("{split}_acc"), self.acc);
        s.insert(format!("{split}_loss"), self.loss);
        s.insert(format!("{split}_ece"), self.ece);
        if let Some(v) = self.top5 {
            s.insert(format!("{split}_top5"), v);
        }
        if split == "test" {
            s.insert("final_test_acc".into(), self.acc);
        }
        s
    }
}

/// Loads the checkpoint in `dir` for `spec` and evaluates it on `data` (build it
/// channels-last, as the trainer evaluates: faster convolutions, same accuracy).
pub fn evaluate_checkpoint(
    dir: &Path,
    spec: &SpecRecord,
    data: &EvalData,
    batch: usize,
    device: Device,
    precision: Precision,
) -> Result<Evaluation> {
    let built = load_model(dir, spec, device)?;
    layout::vars_channels_last(&built.vs);
    evaluate(built.model.as_ref(), data, batch.max(1), precision)
}

/// Fraction of equal entries of two prediction vectors.
pub fn agreement(a: &Tensor, b: &Tensor) -> f64 {
    let n = a.size()[0].max(1);
    a.eq_tensor(b).sum(Kind::Int64).int64_value(&[]) as f64 / n as f64
}

/// Evaluates `model` (eval mode, running BN statistics) on the whole set, the last partial
/// batch included; the forward passes at `precision`, everything after them in fp32.
pub fn evaluate(
    model: &dyn Model,
    data: &EvalData,
    batch: usize,
    precision: Precision,
) -> Result<Evaluation> {
    let mut n = 0i64;
    let mut correct = 0i64;
    let mut correct5 = 0i64;
    let mut loss = 0f64;
    let mut predictions = Vec::new();
    let mut confidences = Vec::new();
    let mut labels = Vec::new();
    let mut classes = 0;
    tch::no_grad(|| {
        data.for_each_batch(batch, |xs, ys| {
            let len = ys.size()[0];
            let logits = {
                let _autocast = Autocast::begin(precision, xs.device());
                model.forward(xs, false).logits
            };
            let logits = to_fp32(&logits);
            classes = logits.size()[1];
            let (conf, pred) = logits.softmax(-1, Kind::Float).max_dim(-1, false);
            correct += pred.eq_tensor(ys).sum(Kind::Int64).int64_value(&[]);
            if classes >= 5 {
                let (_, top) = logits.topk(5, -1, true, false);
                correct5 += top
                    .eq_tensor(&ys.unsqueeze(-1))
                    .sum(Kind::Int64)
                    .int64_value(&[]);
            }
            loss += logits.cross_entropy_for_logits(ys).double_value(&[]) * len as f64;
            predictions.push(pred.to_device(Device::Cpu));
            confidences.push(conf.to_device(Device::Cpu));
            labels.push(ys.to_device(Device::Cpu));
            n += len;
        })
    })?;
    let nf = n.max(1) as f64;
    let predictions = cat_or_empty(&predictions, Kind::Int64);
    let confidences = cat_or_empty(&confidences, Kind::Float);
    let labels = cat_or_empty(&labels, Kind::Int64);
    Ok(Evaluation {
        acc: correct as f64 / nf,
        loss: loss / nf,
        top5: (classes >= 5).then(|| correct5 as f64 / nf),
        ece: expected_calibration_error(&confidences, &predictions.eq_tensor(&labels)),
        predictions,
    })
}

fn cat_or_empty(parts: &[Tensor], kind: Kind) -> Tensor {
    if parts.is_empty() {
        Tensor::zeros([0], (kind, tch::Device::Cpu))
    } else {
        Tensor::cat(parts, 0)
    }
}

/// `sum_b |acc_b - conf_b| * n_b / N` over equal-width bins of the confidence (a
/// confidence of exactly 1 falls in the last bin).
pub fn expected_calibration_error(confidence: &Tensor, correct: &Tensor) -> f64 {
    let n = confidence.size()[0];
    if n == 0 {
        return 0.0;
    }
    let conf = Vec::<f32>::try_from(confidence.to_kind(Kind::Float)).unwrap_or_default();
    let hit = Vec::<bool>::try_from(correct.to_kind(Kind::Bool)).unwrap_or_default();
    let bins = ECE_BINS as usize;
    let mut count = vec![0usize; bins];
    let mut conf_sum = vec![0f64; bins];
    let mut hit_sum = vec![0f64; bins];
    for (c, h) in conf.iter().zip(&hit) {
        let b = ((*c as f64 * bins as f64).ceil() as usize).clamp(1, bins) - 1;
        count[b] += 1;
        conf_sum[b] += *c as f64;
        hit_sum[b] += if *h { 1.0 } else { 0.0 };
    }
    (0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| (hit_sum[b] - conf_sum[b]).abs())
        .sum::<f64>()
        / n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ece_is_zero_when_confidence_matches_accuracy() {
        // 10 images at confidence 0.7, 7 of them right: perfectly calibrated.
        let conf = Tensor::from_slice(&[0.7f32; 10]);
        let hit: Vec<bool> = (0..10).map(|i| i < 7).collect();
        let ece = expected_calibration_error(&conf, &Tensor::from_slice(&hit));
        assert!(ece.abs() < 1e-6, "{ece}");
    }

    #[test]
    fn ece_weighs_each_bin_by_its_share() {
        // 4 images at 0.95 all wrong (gap 0.95), 4 at 0.55 all right (gap 0.45):
        // (4 * 0.95 + 4 * 0.45) / 8 = 0.7.
        let conf = Tensor::from_slice(&[0.95f32, 0.95, 0.95, 0.95, 0.55, 0.55, 0.55, 0.55]);
        let hit = Tensor::from_slice(&[false, false, false, false, true, true, true, true]);
        let ece = expected_calibration_error(&conf, &hit);
        assert!((ece - 0.7).abs() < 1e-6, "{ece}");
    }

    #[test]
    fn confidence_one_lands_in_the_last_bin() {
        let conf = Tensor::from_slice(&[1.0f32, 1.0]);
        let hit = Tensor::from_slice(&[true, false]);
        assert!((expected_calibration_error(&conf, &hit) - 0.5).abs() < 1e-6);
    }

    /// A "model" whose logits are its inputs, so a test chooses them.
    struct Echo;
    impl Model for Echo {
        fn forward(&self, xs: &Tensor, _train: bool) -> rolekd_core::plugin::model::ModelOutput {
            rolekd_core::plugin::model::ModelOutput {
                logits: xs.shallow_clone(),
                features: Vec::new(),
            }
        }
    }

    #[test]
    fn top1_top5_and_the_loss_match_a_hand_count() {
        // 3 images, 6 classes. Image 0: label 2 is the argmax (top-1 and top-5 hit).
        // Image 1: label 0 ranks 5th (top-5 hit, top-1 miss). Image 2: label 5 ranks 6th
        // (both miss).
        let logits = Tensor::from_slice(&[
            0.0f32, 1.0, 9.0, 2.0, 3.0, 4.0, // image 0
            1.0, 6.0, 5.0, 4.0, 3.0, 0.5, // image 1
            5.0, 4.0, 3.0, 2.0, 1.0, 0.0, // image 2
        ])
        .view([3, 6]);
        let labels = Tensor::from_slice(&[2i64, 0, 5]);
        let data = EvalData::Resident {
            x: logits.shallow_clone(),
            y: labels.shallow_clone(),
        };
        for batch in [1, 2, 3] {
            let ev = evaluate(&Echo, &data, batch, Precision::Fp32).unwrap();
            assert!(
                (ev.acc - 1.0 / 3.0).abs() < 1e-12,
                "batch {batch}: {}",
                ev.acc
            );
            assert!(
                (ev.top5.unwrap() - 2.0 / 3.0).abs() < 1e-12,
                "batch {batch}"
            );
            // Cross-entropy by hand: mean of logsumexp - logit of the label.
            let rows: Vec<Vec<f64>> = (0..3)
                .map(|i| {
                    Vec::<f32>::try_from(logits.get(i))
                        .unwrap()
                        .into_iter()
                        .map(f64::from)
                        .collect()
                })
                .collect();
            let ce: f64 = rows
                .iter()
                .zip([2usize, 0, 5])
                .map(|(r, l)| r.iter().map(|v| v.exp()).sum::<f64>().ln() - r[l])
                .sum::<f64>()
                / 3.0;
            assert!((ev.loss - ce).abs() < 1e-5, "{} vs {ce}", ev.loss);
        }
    }

    #[test]
    fn agreement_counts_equal_predictions() {
        let a = Tensor::from_slice(&[1i64, 2, 3, 4]);
        let b = Tensor::from_slice(&[1i64, 0, 3, 0]);
        assert_eq!(agreement(&a, &b), 0.5);
    }
}
