//! Per-epoch metrics, written as `metrics.jsonl` (one JSON object per epoch).

use rolekd_core::error::Result;
use rolekd_core::files::write_atomic;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// One epoch's numbers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    pub lr: f64,
    /// Mean of each loss term over the epoch (unweighted), and `total` (weighted sum).
    pub loss: BTreeMap<String, f64>,
    pub train_acc: f64,
    /// None when the run does not evaluate on the test split (search trials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_acc: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_loss: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_acc: Option<f64>,
    /// Top-5, calibration and agreement with the teacher on the test split.
    #[serde(flatten)]
    pub test_extras: TestExtras,
    pub images_per_s: f64,
    pub seconds: f64,
    /// Unix seconds when the epoch ended (TensorBoard's wall time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_time: Option<f64>,
    /// Cross-entropy of the trained model's logits over the epoch's second half (what the
    /// health check reads; absent in metrics written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_ce: Option<f64>,
    /// The health check's verdict when this epoch looked stalled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall: Option<super::health::Stall>,
    /// With several trained roles: each one's figures (the fields above are the first's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<String, RoleMetrics>,
}

/// One trained role's figures for an epoch, when a stage trains several.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RoleMetrics {
    pub train_acc: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_acc: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_loss: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_acc: Option<f64>,
    #[serde(flatten)]
    pub test_extras: TestExtras,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_ce: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall: Option<super::health::Stall>,
}

/// Test-split figures beyond top-1 accuracy, on evaluated epochs (absent from metrics
/// written before they existed).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TestExtras {
    /// Top-5 accuracy (with 5 classes or more).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_top5: Option<f64>,
    /// Expected calibration error (15 bins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_ece: Option<f64>,
    /// Share of test images on which the role predicts the teacher's class (the run's first
    /// frozen role), in runs that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_agreement: Option<f64>,
}

impl EpochMetrics {
    /// This epoch as role `name` saw it (its own accuracies in the main fields); `None`
    /// when the epoch has no figures for it.
    pub fn for_role(&self, name: &str) -> Option<EpochMetrics> {
        let r = self.roles.get(name)?;
        Some(EpochMetrics {
            train_acc: r.train_acc,
            test_acc: r.test_acc,
            test_loss: r.test_loss,
            val_acc: r.val_acc,
            test_extras: r.test_extras.clone(),
            train_ce: r.train_ce,
            stall: r.stall.clone(),
            roles: BTreeMap::new(),
            ..self.clone()
        })
    }
}

/// Rewrites `metrics.jsonl` with every epoch so far (atomically, so a reader never sees a
/// partial line).
pub fn write_metrics(path: &Path, epochs: &[EpochMetrics]) -> Result<()> {
    let mut text = String::new();
    for e in epochs {
        text.push_str(&serde_json::to_string(e).expect("metrics serialise"));
        text.push('\n');
    }
    write_atomic(path, text.as_bytes())
}

/// Reads `metrics.jsonl`.
pub fn read_metrics(path: &Path) -> Result<Vec<EpochMetrics>> {
    let text = std::fs::read_to_string(path).map_err(|e| rolekd_core::Error::io(path, e))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                rolekd_core::Error::Data(format!(
                    "{}:{}: corrupt metrics line: {e}",
                    path.display(),
                    i + 1
                ))
            })
        })
        .collect()
}

/// Best and last figures of a run, for summaries.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainOutcome {
    pub final_test_acc: Option<f64>,
    pub best_test_acc: Option<f64>,
    pub best_epoch: usize,
    pub final_val_acc: Option<f64>,
    pub best_val_acc: Option<f64>,
    pub seconds: f64,
    /// The last epoch's top-5, calibration and teacher agreement.
    #[serde(default)]
    pub final_test_extras: TestExtras,
    /// Epochs the health check flagged.
    #[serde(default)]
    pub stalls: Vec<super::health::Stall>,
}

impl TrainOutcome {
    pub fn from_epochs(epochs: &[EpochMetrics]) -> Option<TrainOutcome> {
        let last = epochs.last()?;
        // Best by test accuracy, or by validation accuracy when there is no test score.
        let score = |e: &EpochMetrics| e.test_acc.or(e.val_acc).unwrap_or(f64::NAN);
        // Epochs that were not evaluated (`eval_every`) have no score and cannot be best.
        let best = epochs
            .iter()
            .filter(|e| e.test_acc.or(e.val_acc).is_some())
            .max_by(|a, b| score(a).total_cmp(&score(b)).then(b.epoch.cmp(&a.epoch)))
            .unwrap_or(last);
        let best_val = epochs
            .iter()
            .filter_map(|e| e.val_acc)
            .max_by(|a, b| a.total_cmp(b));
        Some(TrainOutcome {
            final_test_acc: last.test_acc,
            best_test_acc: best.test_acc,
            best_epoch: best.epoch,
            final_val_acc: last.val_acc,
            best_val_acc: best_val,
            seconds: epochs.iter().map(|e| e.seconds).sum(),
            final_test_extras: last.test_extras.clone(),
            stalls: epochs.iter().filter_map(|m| m.stall.clone()).collect(),
        })
    }

    /// The summary's numbers, and with several trained roles each role's own under
    /// `<role>.<figure>` (`peer_b.final_test_acc`).
    pub fn summary_with_roles(epochs: &[EpochMetrics]) -> BTreeMap<String, f64> {
        let mut m = TrainOutcome::from_epochs(epochs)
            .map(|o| o.summary())
            .unwrap_or_default();
        let names: Vec<String> = epochs
            .last()
            .map(|e| e.roles.keys().cloned().collect())
            .unwrap_or_default();
        for name in names {
            let own: Vec<EpochMetrics> = epochs.iter().filter_map(|e| e.for_role(&name)).collect();
            if let Some(o) = TrainOutcome::from_epochs(&own) {
                for (k, v) in o.summary() {
                    if k != "train_seconds" {
                        m.insert(format!("{name}.{k}"), v);
                    }
                }
            }
        }
        m
    }

    /// The numbers the summary table shows.
    pub fn summary(&self) -> BTreeMap<String, f64> {
        let mut m = BTreeMap::new();
        if let Some(v) = self.final_test_acc {
            m.insert("final_test_acc".into(), v);
        }
        if let Some(v) = self.best_test_acc {
            m.insert("best_test_acc".into(), v);
        }
        m.insert("best_epoch".into(), self.best_epoch as f64);
        m.insert("train_seconds".into(), self.seconds);
        if let Some(v) = self.final_val_acc {
            m.insert("final_val_acc".into(), v);
        }
        if let Some(v) = self.best_val_acc {
            m.insert("best_val_acc".into(), v);
        }
        let x = &self.final_test_extras;
        for (k, v) in [
            ("final_test_top5", x.test_top5),
            ("final_test_ece", x.test_ece),
            ("final_test_agreement", x.test_agreement),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), v);
            }
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A resumed run reads its earlier epochs back from `state.json`; a float that came
    /// back one ulp off (serde_json's default parser is not correctly rounded) made the
    /// resumed metrics differ from an uninterrupted run's (found by scripts/soak.sh).
    #[test]
    fn metrics_survive_a_json_round_trip_bit_for_bit() {
        let mut m = ep(1, 0.28);
        m.test_extras.test_ece = Some(0.10094657536596059);
        m.loss.insert("total".into(), 1.5446254603068035);
        let back: EpochMetrics = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(
            back.test_extras.test_ece.unwrap().to_bits(),
            0.10094657536596059f64.to_bits()
        );
        assert_eq!(
            back.loss["total"].to_bits(),
            1.5446254603068035f64.to_bits()
        );
        assert_eq!(back, m);
    }

    fn ep(epoch: usize, acc: f64) -> EpochMetrics {
        EpochMetrics {
            epoch,
            lr: 0.1,
            loss: BTreeMap::new(),
            train_acc: 0.0,
            test_acc: Some(acc),
            test_loss: Some(0.0),
            val_acc: None,
            test_extras: TestExtras::default(),
            images_per_s: 1.0,
            seconds: 2.0,
            wall_time: None,
            train_ce: None,
            stall: None,
            roles: BTreeMap::new(),
        }
    }

    #[test]
    fn outcome_takes_last_and_earliest_best() {
        let o =
            TrainOutcome::from_epochs(&[ep(1, 0.5), ep(2, 0.8), ep(3, 0.8), ep(4, 0.7)]).unwrap();
        assert_eq!(o.final_test_acc, Some(0.7));
        assert_eq!(o.best_test_acc, Some(0.8));
        assert_eq!(o.best_epoch, 2);
        assert_eq!(o.seconds, 8.0);
        // With `eval_every`, unevaluated epochs are never the best.
        let skipped = EpochMetrics {
            test_acc: None,
            test_loss: None,
            ..ep(2, 0.0)
        };
        let o = TrainOutcome::from_epochs(&[ep(1, 0.5), skipped, ep(3, 0.6)]).unwrap();
        assert_eq!((o.best_epoch, o.best_test_acc), (3, Some(0.6)));
    }

    #[test]
    fn metrics_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("metrics.jsonl");
        write_metrics(&p, &[ep(1, 0.5), ep(2, 0.6)]).unwrap();
        assert_eq!(read_metrics(&p).unwrap(), vec![ep(1, 0.5), ep(2, 0.6)]);
    }
}
