//! Search-strategy plugins: decide, at each perturbation point of a population search, which
//! members copy which and how their policies change.

use crate::config::Params;
use crate::error::Result;
use crate::rng::StreamRng;

/// One member's standing at a perturbation point.
#[derive(Clone, Debug)]
pub struct MemberScore {
    pub member: usize,
    pub reward: f64,
    pub genes: Vec<i64>,
}

/// What a strategy decides for one member.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Keep training as is.
    Continue,
    /// Copy `donor`'s weights and train on with `genes`.
    Exploit { donor: usize, genes: Vec<i64> },
}

/// The bounds of a policy space's genes, so strategies can mutate any space.
pub trait PolicySpace: Send + Sync {
    fn gene_count(&self) -> usize;
    /// Inclusive (low, high) bounds of gene `i`.
    fn bounds(&self, i: usize) -> (i64, i64);
}

/// A population search rule (PBA's exploit/explore, random, grid...).
pub trait SearchStrategy: Send {
    /// The initial genes of member `i` of `population`.
    fn initial(&mut self, member: usize, space: &dyn PolicySpace, rng: &mut StreamRng) -> Vec<i64>;
    /// Decisions for every member at a perturbation point.
    fn decide(
        &mut self,
        scores: &[MemberScore],
        space: &dyn PolicySpace,
        rng: &mut StreamRng,
    ) -> Vec<Decision>;
}

/// Builds a strategy from its YAML params.
pub type SearchStrategyFactory = fn(&Params) -> Result<Box<dyn SearchStrategy>>;
