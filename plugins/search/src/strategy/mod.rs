//! Search-strategy plugins: `pba` (PBT's truncation selection with PBA's explore), `random`
//! (independent random policies, the best kept) and `grid` (uniform policies over a grid of
//! gene values per group).

pub mod grid;
pub mod pba;
pub mod random;

use rolekd_core::plugin::search::PolicySpace;
use rolekd_core::rng::StreamRng;

/// Ray PBT's quantile size: `ceil(n * fraction)`, at most half the population.
pub fn quantile_size(n: usize, fraction: f64) -> usize {
    if n <= 1 {
        return 0;
    }
    let q = (n as f64 * fraction).ceil() as usize;
    q.min(n / 2)
}

/// Indices of `rewards` from best to worst; ties go to the lower index (NaN ranks last).
pub fn ranking(rewards: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rewards.len()).collect();
    let key = |r: f64| if r.is_nan() { f64::NEG_INFINITY } else { r };
    order.sort_by(|&a, &b| key(rewards[b]).total_cmp(&key(rewards[a])).then(a.cmp(&b)));
    order
}

/// Genes drawn uniformly within each gene's bounds.
pub fn random_genes(space: &dyn PolicySpace, rng: &mut StreamRng) -> Vec<i64> {
    use rand::Rng;
    (0..space.gene_count())
        .map(|i| {
            let (lo, hi) = space.bounds(i);
            rng.random_range(lo..=hi)
        })
        .collect()
}

/// How a strategy's members start.
#[derive(Clone, Copy, Debug, Default, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// Every gene at its lower bound: no augmentation (PBA).
    #[default]
    Zeros,
    /// Genes drawn uniformly (each member from its own stream): with PBA's 30 (op, slot)
    /// entries at a mean probability of 0.5, almost every image gets two ops.
    Random,
    /// A ladder of strengths: genes drawn uniformly, then member m's probability genes
    /// scaled by m / (population - 1), so member 0 starts from no augmentation and the
    /// last member from a uniform random policy.
    Graded,
}

impl Init {
    /// The starting genes of `member` of `population`.
    pub fn genes(
        self,
        space: &dyn PolicySpace,
        member: usize,
        population: usize,
        rng: &mut StreamRng,
    ) -> Vec<i64> {
        match self {
            Init::Zeros => lowest_genes(space),
            Init::Random => random_genes(space, rng),
            Init::Graded => graded_genes(space, member, population, rng),
        }
    }
}

/// [`Init::Graded`]'s genes: the `prob` group (every gene when the space has none) scaled
/// towards its lower bound by `member / (population - 1)`.
pub fn graded_genes(
    space: &dyn PolicySpace,
    member: usize,
    population: usize,
    rng: &mut StreamRng,
) -> Vec<i64> {
    let scale = member as f64 / population.saturating_sub(1).max(1) as f64;
    let has_prob = (0..space.gene_count()).any(|i| space.group(i) == "prob");
    random_genes(space, rng)
        .into_iter()
        .enumerate()
        .map(|(i, g)| {
            if has_prob && space.group(i) != "prob" {
                return g;
            }
            let lo = space.bounds(i).0;
            lo + ((g - lo) as f64 * scale).round() as i64
        })
        .collect()
}

/// Every gene at its lower bound (PBA's all-zero starting policy).
pub fn lowest_genes(space: &dyn PolicySpace) -> Vec<i64> {
    (0..space.gene_count()).map(|i| space.bounds(i).0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graded_members_climb_from_no_augmentation_to_random() {
        use crate::space::PbaSearchSpace;
        use rand::SeedableRng;
        let space = PbaSearchSpace;
        let prob_sum = |m: usize| {
            let g = graded_genes(&space, m, 8, &mut StreamRng::seed_from_u64(3));
            assert!(crate::space::check_genes(&space, &g).is_ok());
            (0..60).filter(|i| i % 2 == 0).map(|i| g[i]).sum::<i64>()
        };
        assert_eq!(prob_sum(0), 0);
        let full = random_genes(&space, &mut StreamRng::seed_from_u64(3));
        assert_eq!(
            prob_sum(7),
            (0..60).filter(|i| i % 2 == 0).map(|i| full[i]).sum::<i64>()
        );
        assert!(prob_sum(2) < prob_sum(5) && prob_sum(5) < prob_sum(7));
        // Magnitudes are drawn, not scaled.
        let g = graded_genes(&space, 0, 8, &mut StreamRng::seed_from_u64(3));
        assert_eq!(g[1], full[1]);
    }

    #[test]
    fn quantiles_follow_ray() {
        assert_eq!(quantile_size(16, 0.25), 4);
        assert_eq!(quantile_size(4, 0.25), 1);
        assert_eq!(quantile_size(5, 0.25), 2);
        assert_eq!(quantile_size(3, 0.5), 1);
        assert_eq!(quantile_size(1, 0.25), 0);
    }

    #[test]
    fn ranking_is_stable_and_puts_nan_last() {
        assert_eq!(
            ranking(&[0.5, 0.9, 0.5, f64::NAN, 0.1]),
            vec![1, 0, 2, 4, 3]
        );
    }
}
