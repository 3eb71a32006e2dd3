//! Loss-term weights, constant or on a schedule over epochs.

use serde::Deserialize;

/// `weight: 0.9`, `weight: {linear: {from: 0, to: 1, epochs: 5}}` (ramp over the first
/// epochs, then hold), or `weight: {step: {values: [0, 1], milestones: [5]}}`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum WeightSchedule {
    Constant(f64),
    Scheduled(ScheduledWeight),
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum ScheduledWeight {
    Linear {
        from: f64,
        to: f64,
        epochs: f64,
    },
    Step {
        values: Vec<f64>,
        milestones: Vec<usize>,
    },
}

impl Default for WeightSchedule {
    fn default() -> Self {
        WeightSchedule::Constant(1.0)
    }
}

impl WeightSchedule {
    /// The weight after `epochs_done` (fractional) epochs.
    pub fn at(&self, epochs_done: f64) -> f64 {
        match self {
            WeightSchedule::Constant(w) => *w,
            WeightSchedule::Scheduled(ScheduledWeight::Linear { from, to, epochs }) => {
                let t = if *epochs <= 0.0 {
                    1.0
                } else {
                    (epochs_done / epochs).clamp(0.0, 1.0)
                };
                from + (to - from) * t
            }
            WeightSchedule::Scheduled(ScheduledWeight::Step { values, milestones }) => {
                let passed = milestones
                    .iter()
                    .filter(|m| epochs_done >= **m as f64)
                    .count();
                values.get(passed).or(values.last()).copied().unwrap_or(0.0)
            }
        }
    }

    /// Checks the schedule is usable.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            WeightSchedule::Constant(w) if !w.is_finite() => Err("weight must be finite".into()),
            WeightSchedule::Scheduled(ScheduledWeight::Step { values, milestones })
                if values.len() != milestones.len() + 1 =>
            {
                Err(format!(
                    "a step weight needs one more value than milestones ({} values, {} milestones)",
                    values.len(),
                    milestones.len()
                ))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        assert_eq!(WeightSchedule::Constant(0.3).at(10.0), 0.3);
        let lin: WeightSchedule =
            serde_yaml_ng::from_str("{linear: {from: 0, to: 2, epochs: 4}}").unwrap();
        assert_eq!(lin.at(1.0), 0.5);
        assert_eq!(lin.at(9.0), 2.0);
        let step: WeightSchedule =
            serde_yaml_ng::from_str("{step: {values: [0, 1, 3], milestones: [2, 5]}}").unwrap();
        assert_eq!((step.at(1.9), step.at(2.0), step.at(7.0)), (0.0, 1.0, 3.0));
        let bad: WeightSchedule =
            serde_yaml_ng::from_str("{step: {values: [0], milestones: [2]}}").unwrap();
        assert!(bad.validate().is_err());
    }
}
