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

/// Every gene at its lower bound (PBA's all-zero starting policy).
pub fn lowest_genes(space: &dyn PolicySpace) -> Vec<i64> {
    (0..space.gene_count()).map(|i| space.bounds(i).0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
