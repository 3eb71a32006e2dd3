//! `grid`: uniform policies over a small grid. The space's genes fall into groups (PBA:
//! `prob` and `magnitude`); a grid point sets every gene of a group to one value, and the
//! members are the cartesian product of the per-group value lists (groups in the space's
//! order, the first varying slowest). In PBA's space the default grid
//! `{prob: [2, 5], magnitude: [2, 5, 8]}` is six RandAugment-like policies: every op in
//! both slots with probability 0.2 or 0.5 and the same magnitude. Members train to the end
//! without exploits; the best final reward wins.

use rolekd_core::config::Params;
use rolekd_core::plugin::search::{PolicySpace, SearchPlan, SearchStrategy};
use rolekd_core::rng::StreamRng;
use rolekd_core::{register_plugin, Result};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Params of `grid`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridParams {
    /// Values per gene group (a group left out stays at its lower bound).
    #[serde(default = "default_values")]
    pub values: BTreeMap<String, Vec<i64>>,
    /// Epochs between reward reports (no perturbation happens).
    #[serde(default = "default_interval")]
    pub interval: usize,
}

fn default_values() -> BTreeMap<String, Vec<i64>> {
    BTreeMap::from([
        ("prob".to_string(), vec![2, 5]),
        ("magnitude".to_string(), vec![2, 5, 8]),
    ])
}
fn default_interval() -> usize {
    3
}

/// The `grid` strategy.
pub struct Grid {
    pub values: BTreeMap<String, Vec<i64>>,
    pub plan: SearchPlan,
    /// Where `values` sits in the YAML, for located errors about the space.
    pub at: Params,
}

/// The groups of a space in order of first appearance.
pub fn groups(space: &dyn PolicySpace) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for i in 0..space.gene_count() {
        let g = space.group(i);
        if !out.contains(&g) {
            out.push(g);
        }
    }
    out
}

impl Grid {
    /// The value of each group at grid point `member`.
    pub fn point(&self, member: usize, space: &dyn PolicySpace) -> Result<BTreeMap<String, i64>> {
        let groups = groups(space);
        for name in self.values.keys() {
            if !groups.contains(&name.as_str()) {
                return Err(self
                    .at
                    .child_error(
                        "values",
                        format!(
                            "`{name}` is not a gene group of this space; its groups: {}",
                            groups.join(", ")
                        ),
                    )
                    .into());
            }
        }
        let mut rest = member;
        let mut point = BTreeMap::new();
        // The last group varies fastest.
        for name in groups.iter().rev() {
            let Some(list) = self.values.get(*name) else {
                continue;
            };
            point.insert(name.to_string(), list[rest % list.len()]);
            rest /= list.len();
        }
        Ok(point)
    }
}

impl SearchStrategy for Grid {
    fn plan(&self) -> SearchPlan {
        self.plan.clone()
    }

    fn initial(
        &self,
        member: usize,
        space: &dyn PolicySpace,
        _rng: &mut StreamRng,
    ) -> Result<Vec<i64>> {
        let point = self.point(member, space)?;
        (0..space.gene_count())
            .map(|i| {
                let (lo, hi) = space.bounds(i);
                let group = space.group(i);
                let v = point.get(group).copied().unwrap_or(lo);
                if !(lo..=hi).contains(&v) {
                    return Err(self
                        .at
                        .child_error(
                            "values",
                            format!("{group} value {v} is outside the genes' bounds {lo}..={hi}"),
                        )
                        .into());
                }
                Ok(v)
            })
            .collect()
    }
}

fn build(params: &Params) -> Result<Box<dyn SearchStrategy>> {
    let p: GridParams = params.parse()?;
    params.at_least("interval", p.interval as i64, 1)?;
    if let Some((name, _)) = p.values.iter().find(|(_, v)| v.is_empty()) {
        return Err(params
            .child_error("values", format!("`{name}` has no values"))
            .into());
    }
    let population: usize = p.values.values().map(|v| v.len()).product();
    Ok(Box::new(Grid {
        values: p.values,
        plan: SearchPlan {
            population: population.max(1),
            interval: p.interval,
            copy_optimizer: true,
            copy_buffers: true,
            reward_window: 1,
        },
        at: params.clone(),
    }))
}

register_plugin!(
    SearchStrategy,
    "grid",
    "Grid of uniform policies: every gene of a group (PBA: prob, magnitude) set to one value per member, no exploit",
    build
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::PbaSearchSpace;
    use rand::SeedableRng;

    #[test]
    fn enumerates_the_product() {
        let s = build(&Params::from_yaml("{type: grid}").unwrap()).unwrap();
        assert_eq!(s.plan().population, 6);
        let mut rng = StreamRng::seed_from_u64(0);
        let all: Vec<Vec<i64>> = (0..6)
            .map(|m| s.initial(m, &PbaSearchSpace, &mut rng).unwrap())
            .collect();
        // Member 0: prob 2, magnitude 2; member 1: prob 2, magnitude 5; member 3: prob 5, magnitude 2.
        assert_eq!(&all[0][..2], &[2, 2]);
        assert_eq!(&all[1][..2], &[2, 5]);
        assert_eq!(&all[3][..2], &[5, 2]);
        assert!(all[5].chunks(2).all(|c| c == [5, 8]));
        let distinct: std::collections::BTreeSet<_> = all.iter().collect();
        assert_eq!(distinct.len(), 6);
    }

    #[test]
    fn unknown_group_and_bounds_are_errors() {
        let mut rng = StreamRng::seed_from_u64(0);
        let s =
            build(&Params::from_yaml("{type: grid, values: {strength: [1]}}").unwrap()).unwrap();
        let e = s.initial(0, &PbaSearchSpace, &mut rng).unwrap_err();
        assert!(e.to_string().contains("prob, magnitude"), "{e}");
        let s =
            build(&Params::from_yaml("{type: grid, values: {magnitude: [12]}}").unwrap()).unwrap();
        assert!(s.initial(0, &PbaSearchSpace, &mut rng).is_err());
        assert!(build(&Params::from_yaml("{type: grid, values: {prob: []}}").unwrap()).is_err());
    }
}
