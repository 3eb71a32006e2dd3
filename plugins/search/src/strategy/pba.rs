//! `pba`: Population Based Augmentation's search rule. All members start from the all-zero
//! policy (every gene at its lower bound). At each perturbation point the members are
//! ranked by reward; each one in the bottom quantile copies a member drawn uniformly from
//! the top quantile and explores from the donor's genes: every gene independently is
//! resampled uniformly within its bounds with probability 0.2, otherwise shifted by a
//! uniform amount in {0, 1, 2, 3} up or down and clamped.

use super::{quantile_size, ranking, Init};
use rand::Rng;
use rolekd_augment::space::explore;
use rolekd_core::config::Params;
use rolekd_core::plugin::search::{
    DecideCtx, Decision, MemberScore, PolicySpace, SearchPlan, SearchStrategy,
};
use rolekd_core::rng::StreamRng;
use rolekd_core::{register_plugin, Result};
use serde::Deserialize;

/// Params of `pba`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PbaParams {
    /// Members trained side by side (16 in PBA).
    #[serde(default = "default_population")]
    pub population: usize,
    /// Epochs between perturbation points (3 in PBA).
    #[serde(default = "default_interval")]
    pub interval: usize,
    /// Fraction of the population in the bottom (and top) quantile (0.25 in PBA).
    #[serde(default = "default_quantile")]
    pub quantile: f64,
    /// On exploit, copy the donor's optimizer state too (otherwise keep the member's own).
    #[serde(default = "yes")]
    pub copy_optimizer: bool,
    /// On exploit, copy the donor's BatchNorm statistics and other non-trainable buffers
    /// too (otherwise keep the member's own: the original copied trainable weights only).
    #[serde(default = "yes")]
    pub copy_buffers: bool,
    /// `zeros` (PBA), `random` or `graded` starting policies (see [`Init`]).
    #[serde(default)]
    pub init: Init,
    /// No exploit before this many epochs (Ray PBT's `burn_in_period`; 0 in PBA): the
    /// first epochs' validation accuracies swing more between epochs than between
    /// policies, so ranking them selects noise.
    #[serde(default)]
    pub burn_in: usize,
    /// Rank by the mean reward of the last this many epochs (1 in PBA; at most the interval,
    /// so the mean covers the current lineage only).
    #[serde(default = "one")]
    pub reward_window: usize,
}

fn one() -> usize {
    1
}

fn default_population() -> usize {
    16
}
fn default_interval() -> usize {
    3
}
fn default_quantile() -> f64 {
    0.25
}
fn yes() -> bool {
    true
}

/// The `pba` strategy.
pub struct Pba {
    pub plan: SearchPlan,
    pub quantile: f64,
    pub init: Init,
    pub burn_in: usize,
}

impl SearchStrategy for Pba {
    fn plan(&self) -> SearchPlan {
        self.plan.clone()
    }

    fn initial(
        &self,
        member: usize,
        space: &dyn PolicySpace,
        rng: &mut StreamRng,
    ) -> Result<Vec<i64>> {
        Ok(self.init.genes(space, member, self.plan.population, rng))
    }

    fn decide(
        &self,
        at: DecideCtx,
        scores: &[MemberScore],
        space: &dyn PolicySpace,
        rng: &mut StreamRng,
    ) -> Vec<Decision> {
        let mut out = vec![Decision::Continue; scores.len()];
        if at.epoch < self.burn_in {
            return out;
        }
        let rewards: Vec<f64> = scores.iter().map(|s| s.reward).collect();
        let order = ranking(&rewards);
        let q = quantile_size(scores.len(), self.quantile);
        if q == 0 {
            return out;
        }
        let top = &order[..q];
        for &i in &order[order.len() - q..] {
            let donor = top[rng.random_range(0..q)];
            let genes = explore(space, &scores[donor].genes, rng);
            out[i] = Decision::Exploit {
                donor: scores[donor].member,
                genes,
            };
        }
        out
    }
}

fn build(params: &Params) -> Result<Box<dyn SearchStrategy>> {
    let p: PbaParams = params.parse()?;
    if p.population < 2 {
        return Err(params
            .child_error("population", "needs at least 2 members")
            .into());
    }
    params.at_least("interval", p.interval as i64, 1)?;
    if p.reward_window == 0 || p.reward_window > p.interval {
        return Err(params
            .child_error(
                "reward_window",
                format!(
                    "must be between 1 and the interval ({}), got {}",
                    p.interval, p.reward_window
                ),
            )
            .into());
    }
    if !(p.quantile > 0.0 && p.quantile <= 0.5) {
        return Err(params
            .child_error(
                "quantile",
                format!("must be in (0, 0.5], got {}", p.quantile),
            )
            .into());
    }
    Ok(Box::new(Pba {
        plan: SearchPlan {
            population: p.population,
            interval: p.interval,
            copy_optimizer: p.copy_optimizer,
            copy_buffers: p.copy_buffers,
            reward_window: p.reward_window,
        },
        quantile: p.quantile,
        init: p.init,
        burn_in: p.burn_in,
    }))
}

register_plugin!(
    SearchStrategy,
    "pba",
    "Population Based Augmentation: bottom quantile copies a top member and explores its policy (population, interval, quantile, copy_optimizer, copy_buffers, init: zeros|random|graded, burn_in, reward_window)",
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::PbaSearchSpace;
    use rand::SeedableRng;

    fn strategy(yaml: &str) -> Box<dyn SearchStrategy> {
        build(&Params::from_yaml(yaml).unwrap()).unwrap()
    }

    #[test]
    fn bottom_copies_top_and_explores_the_donor() {
        let s = strategy("{type: pba, population: 8, quantile: 0.25}");
        let space = PbaSearchSpace;
        let scores: Vec<MemberScore> = (0..8)
            .map(|m| MemberScore {
                member: m + 10,
                reward: [0.5, 0.9, 0.1, 0.7, 0.2, 0.95, 0.6, 0.3][m],
                genes: vec![(m % 10) as i64; 60],
            })
            .collect();
        let mut rng = StreamRng::seed_from_u64(1);
        let d = s.decide(
            DecideCtx {
                epoch: 3,
                epochs: 9,
            },
            &scores,
            &space,
            &mut rng,
        );
        // Bottom 2: indices 2 (0.1) and 4 (0.2); top 2: indices 5 (0.95) and 1 (0.9).
        for (i, dec) in d.iter().enumerate() {
            match dec {
                Decision::Exploit { donor, genes } => {
                    assert!([2, 4].contains(&i), "{i} exploited");
                    assert!([15, 11].contains(donor), "donor {donor}");
                    let base = (donor - 10) as i64 % 10;
                    // Explored from the donor's genes: most genes moved at most 3.
                    let near = genes.iter().filter(|&&g| (g - base).abs() <= 3).count();
                    assert!(near >= 40, "{genes:?}");
                    assert!(crate::space::check_genes(&space, genes).is_ok());
                }
                Decision::Continue => assert!(![2, 4].contains(&i)),
            }
        }
        // Same stream, same decisions.
        let again = s.decide(
            DecideCtx {
                epoch: 3,
                epochs: 9,
            },
            &scores,
            &space,
            &mut StreamRng::seed_from_u64(1),
        );
        assert_eq!(d, again);
        // Within the burn-in nobody is exploited; from its end on the bottom is.
        let late = strategy("{type: pba, population: 8, quantile: 0.25, burn_in: 4}");
        let at = |epoch| DecideCtx { epoch, epochs: 9 };
        let quiet = late.decide(at(3), &scores, &space, &mut StreamRng::seed_from_u64(1));
        assert!(quiet.iter().all(|d| *d == Decision::Continue));
        let busy = late.decide(at(4), &scores, &space, &mut StreamRng::seed_from_u64(1));
        assert_eq!(busy, d);
    }

    #[test]
    fn starts_from_zero_and_checks_params() {
        let s = strategy("{type: pba}");
        assert_eq!(s.plan().population, 16);
        assert_eq!(s.plan().interval, 3);
        let g = s
            .initial(0, &PbaSearchSpace, &mut StreamRng::seed_from_u64(0))
            .unwrap();
        assert_eq!(g, vec![0; 60]);
        for bad in [
            "{type: pba, population: 1}",
            "{type: pba, quantile: 0.7}",
            "{type: pba, interval: 0}",
            "{type: pba, popualtion: 3}",
        ] {
            assert!(build(&Params::from_yaml(bad).unwrap()).is_err(), "{bad}");
        }
    }
}
