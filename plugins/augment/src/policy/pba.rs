//! `pba` (one fixed 60-gene policy) and `pba-schedule` (a policy per epoch from a schedule
//! file), applied per image as PBA does.

use super::finish::{params_with_finish, Finish};
use crate::ops::pba::PbaOp;
use crate::schedule::{self, entries_from_genes, entries_in_gene_order, PolicyEntry, Schedule};
use rand::Rng;
use rolekd_core::config::Params;
use rolekd_core::plugin::augment::{AugmentCtx, AugmentPolicy, PolicyCtx};
use rolekd_core::plugin::image::Image;
use rolekd_core::rng::StreamRng;
use rolekd_core::{Error, Result};
use std::path::PathBuf;

/// One (op, probability, level) of a PBA policy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PbaEntry {
    pub op: PbaOp,
    pub prob: f64,
    pub level: u8,
}

/// A PBA policy: 30 (op, probability, level) tuples (each op in two slots).
#[derive(Clone, Debug, PartialEq)]
pub struct PbaPolicy {
    pub entries: Vec<PbaEntry>,
}

impl PbaPolicy {
    /// The policy of 60 genes (`genes[2k]` = probability in tenths, `genes[2k+1]` = level of
    /// entry k; entries in gene order).
    pub fn from_genes(genes: &[i64]) -> Result<PbaPolicy> {
        PbaPolicy::from_entries(&entries_from_genes(genes)?)
    }

    /// The policy of schedule entries (any order; each names its op).
    pub fn from_entries(entries: &[PolicyEntry]) -> Result<PbaPolicy> {
        let entries = entries
            .iter()
            .map(|e| {
                let op = PbaOp::from_name(&e.op)
                    .ok_or_else(|| Error::Invalid(format!("unknown PBA op `{}`", e.op)))?;
                Ok(PbaEntry {
                    op,
                    prob: e.prob,
                    level: e.magnitude,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PbaPolicy { entries })
    }

    /// Applies the policy to one image: draw `count` in {0, 1, 2} with probabilities
    /// {0.2, 0.3, 0.5}; if count > 0, walk the entries in a random order, apply each with
    /// its probability (signed ops flip sign with probability 0.5), and stop after `count`
    /// applied ops.
    pub fn apply(&self, img: &mut Image, rng: &mut StreamRng) {
        let u: f64 = rng.random();
        let mut count = if u < 0.2 {
            0
        } else if u < 0.5 {
            1
        } else {
            2
        };
        if count == 0 || self.entries.is_empty() {
            return;
        }
        // Walk the entries in a uniformly random order: a Fisher-Yates shuffle drawn lazily,
        // one position per entry visited (the walk usually stops after a few), which gives
        // every order prefix the probability a full shuffle gives it.
        let n = self.entries.len().min(64);
        let mut order = [0u8; 64];
        for (i, o) in order.iter_mut().enumerate().take(n) {
            *o = i as u8;
        }
        for i in 0..n {
            let j = rng.random_range(i..n);
            order.swap(i, j);
            let e = self.entries[order[i] as usize];
            if e.prob <= 0.0 {
                continue;
            }
            if rng.random::<f64>() < e.prob {
                let negate = e.op.signed() && rng.random::<f64>() < 0.5;
                e.op.apply(img, e.level, negate, rng);
                count -= 1;
                if count == 0 {
                    break;
                }
            }
        }
    }
}

params_with_finish! {
/// Parameters of `pba`.
pub struct PbaParams {
    /// The 60 genes (slot 1's 15 ops then slot 2's, each as probability 0..=10 in tenths
    /// and magnitude 0..=9, ops in PBA's log order). Give this or `policy`.
    #[serde(default)]
    pub genes: Option<Vec<i64>>,
    /// The policy as a list of `{op, slot, prob, magnitude}` (missing pairs: probability 0).
    #[serde(default)]
    pub policy: Option<Vec<PolicyEntry>>,
}
}

/// A fixed PBA policy followed by pad-crop, flip and cutout.
pub struct Pba {
    pub policy: PbaPolicy,
    pub finish: Finish,
}

impl AugmentPolicy for Pba {
    fn augment(&self, img: &mut Image, _ctx: &AugmentCtx, rng: &mut StreamRng) {
        self.policy.apply(img, rng);
        self.finish.apply(img, rng);
    }
}

fn build_pba(params: &Params, ctx: &PolicyCtx) -> Result<Box<dyn AugmentPolicy>> {
    let p: PbaParams = params.parse()?;
    let finish = p.checked_finish(params, ctx)?;
    let policy = match (&p.genes, &p.policy) {
        (Some(genes), None) => PbaPolicy::from_genes(genes)
            .map_err(|e| params.child_error("genes", e.to_string()))?,
        (None, Some(list)) => {
            let entries = entries_in_gene_order(list)
                .map_err(|e| params.child_error("policy", e.to_string()))?;
            PbaPolicy::from_entries(&entries)?
        }
        _ => {
            return Err(params
                .error("give the policy as either `genes` (60 integers) or `policy` (a list of {op, slot, prob, magnitude})")
                .into())
        }
    };
    Ok(Box::new(Pba { policy, finish }))
}

params_with_finish! {
/// Parameters of `pba-schedule`.
pub struct PbaScheduleParams {
    /// Path of a `rolekd-schedule/1` JSON file (a search's output, or one imported from a
    /// PBA log). A run of another length stretches it (PBA's rule).
    pub schedule: PathBuf,
}
}

/// A schedule of PBA policies, one per epoch range.
pub struct PbaSchedule {
    pub schedule: Schedule,
    pub policies: Vec<PbaPolicy>,
    pub finish: Finish,
}

impl PbaSchedule {
    pub fn new(schedule: Schedule, finish: Finish) -> Result<PbaSchedule> {
        schedule.validate()?;
        let policies = schedule
            .segments
            .iter()
            .map(|s| PbaPolicy::from_entries(&s.policy))
            .collect::<Result<Vec<_>>>()?;
        Ok(PbaSchedule {
            schedule,
            policies,
            finish,
        })
    }

    /// The policy in force at `epoch` of a run of `epochs` epochs.
    pub fn policy_at(&self, epoch: usize, epochs: usize) -> &PbaPolicy {
        &self.policies[self.schedule.segment_index_at(epoch, epochs)]
    }
}

impl AugmentPolicy for PbaSchedule {
    fn augment(&self, img: &mut Image, ctx: &AugmentCtx, rng: &mut StreamRng) {
        self.policy_at(ctx.epoch, ctx.epochs).apply(img, rng);
        self.finish.apply(img, rng);
    }
}

fn build_pba_schedule(params: &Params, ctx: &PolicyCtx) -> Result<Box<dyn AugmentPolicy>> {
    let p: PbaScheduleParams = params.parse()?;
    let finish = p.checked_finish(params, ctx)?;
    let schedule =
        schedule::load(&p.schedule).map_err(|e| params.child_error("schedule", e.to_string()))?;
    Ok(Box::new(PbaSchedule::new(schedule, finish)?))
}

rolekd_core::register_plugin!(
    AugmentPolicy,
    "pba",
    "a fixed PBA policy (60 genes): 0/1/2 ops per image, then pad-crop, flip, cutout",
    build_pba
);
rolekd_core::register_plugin!(
    AugmentPolicy,
    "pba-schedule",
    "a PBA schedule file (a policy per epoch range, stretched to the run), then pad-crop, flip, cutout",
    build_pba_schedule
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::finish::CropOffsets;
    use rand::SeedableRng;

    fn ctx() -> PolicyCtx {
        PolicyCtx {
            channels: 3,
            height: 16,
            width: 16,
            epochs: 10,
        }
    }

    fn img() -> Image {
        Image::new(16, 16, 3, (0..768).map(|i| (i * 7 % 256) as u8).collect())
    }

    /// Genes with only Invert (op 5) in slot 1, at probability `p` tenths.
    fn invert_only(p: i64) -> Vec<i64> {
        let mut g = vec![0; 60];
        g[2 * 5] = p;
        g
    }

    #[test]
    fn op_count_distribution() {
        // Invert in both slots with probability 1: an image gets 0, 1 or 2 inverts (0.2,
        // 0.3, 0.5), so it ends inverted exactly when count == 1.
        let mut g = invert_only(10);
        g[30 + 2 * 5] = 10;
        let pol = PbaPolicy::from_genes(&g).unwrap();
        let base = img();
        let mut inverted = 0;
        let n = 4000;
        for s in 0..n {
            let mut a = base.clone();
            pol.apply(&mut a, &mut StreamRng::seed_from_u64(s));
            if a != base {
                assert!(a.data.iter().zip(&base.data).all(|(x, y)| *x == 255 - y));
                inverted += 1;
            }
        }
        let frac = inverted as f64 / n as f64;
        assert!((frac - 0.3).abs() < 0.03, "{frac}");
    }

    #[test]
    fn probability_gene_scales_application() {
        let base = img();
        let rate = |p| {
            let pol = PbaPolicy::from_genes(&invert_only(p)).unwrap();
            (0..3000u64)
                .filter(|&s| {
                    let mut a = base.clone();
                    pol.apply(&mut a, &mut StreamRng::seed_from_u64(s));
                    a != base
                })
                .count() as f64
                / 3000.0
        };
        assert_eq!(rate(0), 0.0);
        // Applied when count > 0 (0.8) and the coin says yes (0.4).
        assert!((rate(4) - 0.32).abs() < 0.03, "{}", rate(4));
        assert!((rate(10) - 0.8).abs() < 0.03, "{}", rate(10));
    }

    #[test]
    fn builds_from_genes_or_list_and_reports_errors() {
        let b = |y: &str| build_pba(&Params::from_yaml(y).unwrap(), &ctx());
        assert!(b("{genes: [0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}").is_ok());
        let e = b("{genes: [1, 2]}").err().unwrap().to_string();
        assert!(e.contains("genes") && e.contains("60"), "{e}");
        assert!(b("{policy: [{op: Rotate, slot: 2, prob: 0.5, magnitude: 3}]}").is_ok());
        let e = b("{policy: [{op: Rotat, slot: 1, prob: 0.5, magnitude: 3}]}")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("Rotat"), "{e}");
        assert!(b("{cutout: 8}").is_err());
    }

    #[test]
    fn schedule_policy_follows_epochs_and_stretch() {
        let s = Schedule::from_pieces(&[(2, vec![0; 60]), (2, invert_only(10))]).unwrap();
        let finish = Finish {
            pad: 0,
            crop_offsets: CropOffsets::Full,
            flip: false,
            cutout: 0,
        };
        let pol = PbaSchedule::new(s, finish).unwrap();
        let base = img();
        let changed = |epoch, epochs| {
            (0..200u64).any(|seed| {
                let mut a = base.clone();
                let c = AugmentCtx { epoch, epochs };
                pol.augment(&mut a, &c, &mut StreamRng::seed_from_u64(seed));
                a != base
            })
        };
        assert!(!changed(1, 4) && changed(2, 4));
        // Stretched to 8 epochs: the second policy starts at epoch 4.
        assert!(!changed(3, 8) && changed(4, 8));
    }

    #[test]
    fn schedule_file_loads_through_the_plugin() {
        let dir = std::env::temp_dir().join(format!("rolekd-aug-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.json");
        schedule::save(&Schedule::constant(&invert_only(3), 5).unwrap(), &path).unwrap();
        let y = format!(
            "{{type: pba-schedule, schedule: '{}', cutout: 4}}",
            path.display()
        );
        assert!(build_pba_schedule(&Params::from_yaml(&y).unwrap(), &ctx()).is_ok());
        let y = "{type: pba-schedule, schedule: /nonexistent/s.json}";
        let e = build_pba_schedule(&Params::from_yaml(y).unwrap(), &ctx())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("schedule") && e.contains("nonexistent"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
