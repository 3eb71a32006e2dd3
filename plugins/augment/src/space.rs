//! PBA's policy space for population searches: 60 genes (probability genes 0..=10,
//! magnitude genes 0..=9) and PBA's explore rule.

use rand::Rng;
use rolekd_core::plugin::search::PolicySpace;
use rolekd_core::rng::StreamRng;

/// PBA's 60-gene space.
#[derive(Clone, Copy, Debug, Default)]
pub struct PbaSpace;

impl PolicySpace for PbaSpace {
    fn gene_count(&self) -> usize {
        crate::schedule::GENES
    }

    fn bounds(&self, i: usize) -> (i64, i64) {
        if i.is_multiple_of(2) {
            (0, 10)
        } else {
            (0, 9)
        }
    }
}

/// PBA's explore step on any space: each gene independently is resampled uniformly within
/// its bounds with probability 0.2, otherwise shifted by a uniform amount in {0, 1, 2, 3}
/// up or down (probability 0.5 each) and clamped.
pub fn explore(space: &dyn PolicySpace, genes: &[i64], rng: &mut StreamRng) -> Vec<i64> {
    genes
        .iter()
        .enumerate()
        .map(|(i, &g)| {
            let (lo, hi) = space.bounds(i);
            if rng.random::<f64>() < 0.2 {
                rng.random_range(lo..=hi)
            } else {
                let amount = rng.random_range(0..=3i64);
                let shifted = if rng.random::<f64>() < 0.5 {
                    g + amount
                } else {
                    g - amount
                };
                shifted.clamp(lo, hi)
            }
        })
        .collect()
}

/// PBA's explore step on PBA's 60-gene space.
pub fn pba_explore(genes: &[i64], rng: &mut StreamRng) -> Vec<i64> {
    explore(&PbaSpace, genes, rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn bounds_alternate() {
        assert_eq!(PbaSpace.gene_count(), 60);
        assert_eq!(PbaSpace.bounds(0), (0, 10));
        assert_eq!(PbaSpace.bounds(59), (0, 9));
    }

    #[test]
    fn explore_stays_in_bounds_and_moves_like_pba() {
        let mut rng = StreamRng::seed_from_u64(4);
        let start = vec![5i64; 60];
        let mut diffs = [0usize; 7];
        let mut big = 0;
        let trials = 500;
        for _ in 0..trials {
            let g = pba_explore(&start, &mut rng);
            for (i, &v) in g.iter().enumerate() {
                let (lo, hi) = PbaSpace.bounds(i);
                assert!((lo..=hi).contains(&v));
                let d = v - 5;
                if d.abs() <= 3 {
                    diffs[(d + 3) as usize] += 1;
                } else {
                    big += 1;
                }
            }
        }
        let n = (trials * 60) as f64;
        // |d| > 3 only by resampling: 0.2 * (values 0,1,9,10 and 10 only for prob genes).
        let want_big = 0.2 * (4.0 / 11.0 + 3.0 / 10.0) / 2.0;
        assert!(
            (big as f64 / n - want_big).abs() < 0.01,
            "{}",
            big as f64 / n
        );
        // Unchanged: 0.8 * 1/4 + resampled to 5: 0.2 * (1/11 + 1/10) / 2.
        let want_same = 0.8 * 0.25 + 0.2 * (1.0 / 11.0 + 1.0 / 10.0) / 2.0;
        assert!(
            (diffs[3] as f64 / n - want_same).abs() < 0.01,
            "{}",
            diffs[3] as f64 / n
        );
        // Shifts up and down are symmetric.
        assert!((diffs[0] as f64 - diffs[6] as f64).abs() / n < 0.01);
        // Clamping at the top: a probability gene at 10 never exceeds 10.
        let g = pba_explore(&[10; 60], &mut rng);
        assert!(g.iter().step_by(2).all(|&v| v <= 10));
    }
}
