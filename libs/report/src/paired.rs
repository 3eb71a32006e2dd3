//! Paired differences between two stages across seeds: the figure that says whether one arm
//! beats another (seeds share data splits and teachers). A seed where both stages are the
//! same run (an empty searched schedule makes role-wise KD equal KD without augmentation)
//! carries no evidence: it is shown as such and left out of the statistics.

use crate::scan::{RunScan, StageScan};
use crate::summary::mean_std;

/// One seed's pair.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pair {
    /// `a - b` in points of test accuracy.
    Differ(f64),
    /// Both stages are the same run: every per-epoch figure equal.
    Identical,
}

/// The paired comparison `a - b` over the seeds where both finished.
#[derive(Clone, Debug, PartialEq)]
pub struct Paired {
    pub pairs: Vec<Pair>,
}

impl Paired {
    /// Stage `a` minus stage `b` (indices into each seed's stages), test accuracy.
    pub fn of(run: &RunScan, a: usize, b: usize) -> Paired {
        let pairs = run
            .seeds
            .iter()
            .filter_map(|(_, stages)| pair(stages.get(a)?, stages.get(b)?))
            .collect();
        Paired { pairs }
    }

    /// The differences of the pairs that are not the same run.
    pub fn differences(&self) -> Vec<f64> {
        self.pairs
            .iter()
            .filter_map(|p| match p {
                Pair::Differ(d) => Some(*d),
                Pair::Identical => None,
            })
            .collect()
    }

    pub fn identical(&self) -> usize {
        self.pairs.len() - self.differences().len()
    }

    /// Seeds where `a` is strictly better (an identical pair is not a win).
    pub fn wins(&self) -> usize {
        self.differences().iter().filter(|&&d| d > 0.0).count()
    }

    /// Mean and sample std of the differences (None without any).
    pub fn mean_std(&self) -> Option<(f64, f64)> {
        let d = self.differences();
        (!d.is_empty()).then(|| mean_std(&d))
    }

    /// The 95% t-interval of the mean difference (needs two differing pairs).
    pub fn interval95(&self) -> Option<(f64, f64)> {
        let d = self.differences();
        if d.len() < 2 {
            return None;
        }
        let (m, sd) = mean_std(&d);
        let half = t975(d.len() - 1) * sd / (d.len() as f64).sqrt();
        Some((m - half, m + half))
    }

    /// `-0.10 / = / +0.44` (`=`: the same run).
    pub fn per_seed(&self) -> String {
        let each: Vec<String> = self
            .pairs
            .iter()
            .map(|p| match p {
                Pair::Differ(d) => format!("{d:+.2}"),
                Pair::Identical => "=".into(),
            })
            .collect();
        each.join(" / ")
    }
}

fn pair(a: &StageScan, b: &StageScan) -> Option<Pair> {
    let d = (a.test_acc()? - b.test_acc()?) * 100.0;
    Some(if same_run(a, b) {
        Pair::Identical
    } else {
        Pair::Differ(d)
    })
}

/// Whether two stages are the same run: both have per-epoch metrics and every figure but
/// time agrees exactly (different runs never share every epoch's mean loss to the bit).
pub fn same_run(a: &StageScan, b: &StageScan) -> bool {
    let figures = |s: &StageScan| -> Vec<String> {
        s.metrics
            .iter()
            .map(|m| {
                format!(
                    "{} {:?} {:?} {:?} {:?} {:?} {:?}",
                    m.epoch, m.lr, m.loss, m.train_acc, m.test_acc, m.test_loss, m.val_acc
                )
            })
            .collect()
    };
    !a.metrics.is_empty() && figures(a) == figures(b) && a.test_acc() == b.test_acc()
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom (the two-sided 95%
/// interval's factor); df > 30 uses the normal's 1.96 (within 2% from there on).
pub fn t975(df: usize) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::NAN,
        1..=30 => T[df - 1],
        _ => 1.96,
    }
}

/// A table row's cells after the baseline's name: mean ± std, 95% interval, per seed,
/// wins, identical pairs.
pub fn row_cells(p: &Paired) -> String {
    let stats = p
        .mean_std()
        .map_or("-".into(), |(m, sd)| format!("{m:+.2} ± {sd:.2}"));
    let interval = p
        .interval95()
        .map_or("-".into(), |(lo, hi)| format!("[{lo:+.2}, {hi:+.2}]"));
    format!(
        "{stats} | {interval} | {} | {}/{} | {}",
        p.per_seed(),
        p.wins(),
        p.pairs.len(),
        p.identical()
    )
}

/// The header of a table built from [`row_cells`], the first column named `first`.
pub fn header(first: &str, better: &str) -> String {
    format!(
        "| {first} | mean ± std (points) | 95% interval | per seed | {better} better in | identical runs |\n\
         |---|---|---|---|---|---|"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rolekd_core::plugin::stage::StageResult;
    use serde_json::json;

    /// A finished stage whose epochs have total losses `losses` and final test acc `acc`.
    fn stage(name: &str, losses: &[f64], acc: f64) -> StageScan {
        let metrics = losses
            .iter()
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_value(json!({"epoch": i + 1, "lr": 0.05, "loss": {"total": l},
                    "train_acc": 0.9, "test_acc": acc, "images_per_s": 1000.0,
                    "seconds": 1.0 + i as f64}))
                .unwrap()
            })
            .collect();
        let mut result = StageResult::default();
        result.summary.insert("final_test_acc".into(), acc);
        StageScan {
            name: name.into(),
            kind: "distill".into(),
            dir: name.into(),
            result: Some(result),
            metrics,
            config: serde_yaml_ng::Value::Null,
        }
    }

    fn run(seeds: Vec<Vec<StageScan>>) -> RunScan {
        RunScan {
            name: "t".into(),
            run_dir: "r".into(),
            seeds: seeds
                .into_iter()
                .enumerate()
                .map(|(i, s)| (Some(i as u64), s))
                .collect(),
        }
    }

    #[test]
    fn t_quantiles_follow_students_table() {
        // Two-sided 95% factors from the standard t table.
        assert_eq!(t975(1), 12.706);
        assert_eq!(t975(4), 2.776);
        assert_eq!(t975(30), 2.042);
        assert_eq!(t975(200), 1.96);
        assert!(t975(0).is_nan());
    }

    #[test]
    fn the_interval_is_the_means_t_interval() {
        let r = run(vec![
            vec![stage("a", &[0.5], 0.81), stage("b", &[0.6], 0.80)],
            vec![stage("a", &[0.5], 0.82), stage("b", &[0.6], 0.80)],
            vec![stage("a", &[0.5], 0.83), stage("b", &[0.6], 0.80)],
        ]);
        let p = Paired::of(&r, 0, 1);
        let (m, sd) = p.mean_std().unwrap();
        assert!((m - 2.0).abs() < 1e-9 && (sd - 1.0).abs() < 1e-9);
        // mean ± t(0.975, 2) · 1 / sqrt(3)
        let (lo, hi) = p.interval95().unwrap();
        let half = 4.303 / 3f64.sqrt();
        assert!((lo - (2.0 - half)).abs() < 1e-9 && (hi - (2.0 + half)).abs() < 1e-9);
        assert_eq!((p.wins(), p.identical()), (3, 0));
    }

    #[test]
    fn a_pair_of_identical_runs_is_marked_and_left_out() {
        let same = [0.9, 0.5, 0.3];
        let r = run(vec![
            vec![stage("a", &same, 0.85), stage("b", &same, 0.85)],
            vec![stage("a", &[0.8, 0.4], 0.86), stage("b", &[0.8, 0.5], 0.85)],
            vec![stage("a", &[0.7, 0.4], 0.84), stage("b", &[0.8, 0.5], 0.85)],
        ]);
        let p = Paired::of(&r, 0, 1);
        assert_eq!(p.pairs[0], Pair::Identical);
        assert_eq!(p.identical(), 1);
        assert_eq!(p.wins(), 1, "an identical pair is not a win");
        let (m, _) = p.mean_std().unwrap();
        assert!(m.abs() < 1e-9, "mean over the two differing seeds: {m}");
        assert!(
            p.interval95().is_some(),
            "two differing pairs give an interval"
        );
        assert!(
            p.per_seed().starts_with("= / +1.00 / -1.00"),
            "{}",
            p.per_seed()
        );
        let cells = row_cells(&p);
        assert!(cells.ends_with("| 1/3 | 1"), "{cells}");
    }

    #[test]
    fn equal_accuracy_from_different_runs_is_not_identical() {
        // The same final accuracy, one epoch's loss differs: two runs, a real 0.00.
        let a = stage("a", &[0.9, 0.5], 0.85);
        let b = stage("b", &[0.9, 0.51], 0.85);
        assert!(!same_run(&a, &b));
        assert!(same_run(&a, &a.clone()));
        let r = run(vec![vec![a, b]]);
        assert_eq!(Paired::of(&r, 0, 1).pairs, vec![Pair::Differ(0.0)]);
        // One differing pair: a mean, no interval.
        assert!(Paired::of(&r, 0, 1).interval95().is_none());
    }
}
