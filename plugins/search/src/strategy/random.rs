//! `random`: `population` members with independent uniformly random policies, trained to
//! the end without exploits; the best final reward wins (random search, the usual baseline
//! of a policy search).

use super::Init;
use rolekd_core::config::Params;
use rolekd_core::plugin::search::{PolicySpace, SearchPlan, SearchStrategy};
use rolekd_core::rng::StreamRng;
use rolekd_core::{register_plugin, Result};
use serde::Deserialize;

/// Params of `random`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RandomParams {
    /// Random policies tried.
    #[serde(default = "default_population")]
    pub population: usize,
    /// Epochs between reward reports (no perturbation happens).
    #[serde(default = "default_interval")]
    pub interval: usize,
    /// `random` (default: uniform policies) or `graded` (a ladder from no augmentation to
    /// uniform, as PBA's `init: graded`; the fair baseline for such a PBA search).
    #[serde(default = "random_init")]
    pub init: Init,
}

fn random_init() -> Init {
    Init::Random
}

fn default_population() -> usize {
    8
}
fn default_interval() -> usize {
    3
}

/// The `random` strategy.
pub struct RandomSearch {
    pub plan: SearchPlan,
    pub init: Init,
}

impl SearchStrategy for RandomSearch {
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
}

fn build(params: &Params) -> Result<Box<dyn SearchStrategy>> {
    let p: RandomParams = params.parse()?;
    if p.population == 0 {
        return Err(params
            .child_error("population", "needs at least 1 member")
            .into());
    }
    params.at_least("interval", p.interval as i64, 1)?;
    Ok(Box::new(RandomSearch {
        plan: SearchPlan {
            population: p.population,
            interval: p.interval,
            copy_optimizer: true,
            copy_buffers: true,
            reward_window: 1,
        },
        init: p.init,
    }))
}

register_plugin!(
    SearchStrategy,
    "random",
    "Random search: `population` random policies (init: random | graded), no exploit; the best final reward wins",
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::PbaSearchSpace;
    use rand::SeedableRng;
    use rolekd_core::plugin::search::{DecideCtx, Decision, MemberScore};

    #[test]
    fn members_differ_and_never_exploit() {
        let s = build(&Params::from_yaml("{type: random, population: 3}").unwrap()).unwrap();
        let a = s
            .initial(0, &PbaSearchSpace, &mut StreamRng::seed_from_u64(1))
            .unwrap();
        let b = s
            .initial(1, &PbaSearchSpace, &mut StreamRng::seed_from_u64(2))
            .unwrap();
        assert_ne!(a, b);
        assert!(crate::space::check_genes(&PbaSearchSpace, &a).is_ok());
        let scores = vec![
            MemberScore {
                member: 0,
                reward: 0.1,
                genes: a,
            },
            MemberScore {
                member: 1,
                reward: 0.9,
                genes: b,
            },
        ];
        let d = s.decide(
            DecideCtx {
                epoch: 3,
                epochs: 6,
            },
            &scores,
            &PbaSearchSpace,
            &mut StreamRng::seed_from_u64(0),
        );
        assert_eq!(d, vec![Decision::Continue, Decision::Continue]);
    }
}
