//! Training health: a run that has stopped learning says so after the epoch it happens in,
//! instead of ending with exit 0 and a chance-level accuracy nobody notices.
//!
//! Checked on the training figures of each epoch's second half (the first steps of a
//! healthy run are still near chance, and they would mask a late collapse too):
//! - accuracy at chance: at most 1.5 / classes;
//! - cross-entropy at chance: at least ln(classes), the loss of a uniform guess;
//! - a rising loss: the cross-entropy rose over the last three epochs and ends 25% above
//!   the run's lowest.
//!
//! Epochs of fewer than [`MIN_STEPS`] steps are too short to judge and are not checked.

use serde::{Deserialize, Serialize};

/// Fewer steps than this in an epoch: no verdict (a tiny split or a test's toy run).
pub const MIN_STEPS: usize = 16;

/// What a stage does when its training stalls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnStall {
    /// Print a warning, record it in the result and train on.
    #[default]
    Warn,
    /// End the stage with an error (exit 1): no time spent on a run that is not learning.
    Stop,
}

/// Which symptom a stall shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Symptom {
    ChanceAccuracy,
    ChanceLoss,
    RisingLoss,
}

/// One flagged epoch.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
pub struct Stall {
    pub epoch: usize,
    pub symptom: Symptom,
    /// The figures and the likely causes, in words.
    pub message: String,
}

/// The training figures of one epoch the check reads.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochHealth {
    /// Accuracy on the training batches of the epoch's second half.
    pub train_acc: f64,
    /// Mean cross-entropy of the trained model's logits on those batches.
    pub train_ce: f64,
    pub steps: usize,
}

const CAUSES: &str = "likely causes: a learning rate too high for this model (try a tenth), \
a loss term whose weight dominates (compare the weighted loss terms of epoch 1), or \
augmentation too strong for it";

/// The verdict on the epoch `history.last()`, given the cross-entropy of every epoch so far.
pub fn check(now: EpochHealth, epoch: usize, ce_history: &[f64], classes: usize) -> Option<Stall> {
    if now.steps < MIN_STEPS || classes < 2 {
        return None;
    }
    let chance = 1.0 / classes as f64;
    let ln_c = (classes as f64).ln();
    let figures = format!(
        "train acc {:.1}% (chance {:.1}%), train cross-entropy {:.3} (ln {classes} = {ln_c:.3})",
        now.train_acc * 100.0,
        chance * 100.0,
        now.train_ce
    );
    let stall = |symptom, what: &str| Stall {
        epoch,
        symptom,
        message: format!("{what} after epoch {epoch}: {figures}; {CAUSES}"),
    };
    if now.train_acc <= 1.5 * chance {
        return Some(stall(
            Symptom::ChanceAccuracy,
            "training accuracy at chance level",
        ));
    }
    // NaN counts as at chance: it is no better than a uniform guess.
    if now.train_ce.is_nan() || now.train_ce >= ln_c {
        return Some(stall(
            Symptom::ChanceLoss,
            "training loss at or above a uniform guess's",
        ));
    }
    if let [.., a, b, c] = ce_history {
        let lowest = ce_history.iter().copied().fold(f64::INFINITY, f64::min);
        if a < b && b < c && *c > 1.25 * lowest {
            return Some(stall(
                Symptom::RisingLoss,
                &format!("training loss rose over the last 3 epochs ({a:.3}, {b:.3}, {c:.3}; lowest {lowest:.3})"),
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(train_acc: f64, train_ce: f64) -> EpochHealth {
        EpochHealth {
            train_acc,
            train_ce,
            steps: 40,
        }
    }

    #[test]
    fn chance_level_runs_are_flagged_healthy_ones_are_not() {
        let s = check(at(0.0975, 2.31), 1, &[2.31], 10).unwrap();
        assert_eq!(s.symptom, Symptom::ChanceAccuracy);
        assert!(s.message.contains("9.8%") && s.message.contains("learning rate"));
        let s = check(at(0.4, 2.5), 2, &[2.6, 2.5], 10).unwrap();
        assert_eq!(s.symptom, Symptom::ChanceLoss);
        assert!(check(at(0.4, f64::NAN), 2, &[f64::NAN], 10).is_some());
        assert_eq!(check(at(0.8, 0.6), 1, &[0.6], 10), None);
        // Too short an epoch to judge.
        let short = EpochHealth {
            steps: 3,
            ..at(0.1, 2.4)
        };
        assert_eq!(check(short, 1, &[2.4], 10), None);
    }

    #[test]
    fn a_loss_rising_for_three_epochs_is_flagged() {
        let s = check(at(0.7, 0.9), 5, &[0.9, 0.6, 0.7, 0.8, 0.9], 10).unwrap();
        assert_eq!(s.symptom, Symptom::RisingLoss);
        assert!(s.message.contains("0.600"), "{}", s.message);
        // A small rise (within 25% of the lowest) or a non-monotone one is not.
        assert_eq!(check(at(0.7, 0.7), 5, &[0.6, 0.62, 0.65, 0.7], 10), None);
        assert_eq!(check(at(0.7, 0.9), 5, &[0.6, 0.9, 0.8, 0.9], 10), None);
    }
}
