//! Search-strategy plugins: decide, at each perturbation point of a population search, which
//! members copy which and how their policies change.
//!
//! A strategy is a pure function of its inputs: the search keeps all state (genes, rewards,
//! lineages) in its population store and hands the strategy what it needs, with a random
//! stream derived from the pipeline seed and the epoch. That is what makes a killed search
//! resume to the same result, whatever the number of workers.

use crate::config::Params;
use crate::error::Result;
use crate::rng::StreamRng;

/// One member's standing at a perturbation point.
#[derive(Clone, Debug, PartialEq)]
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
    /// Copy `donor`'s weights (and, as the plan says, its optimizer state) and train on with
    /// `genes`.
    Exploit { donor: usize, genes: Vec<i64> },
}

/// The genes of a policy space and their bounds, so strategies can work on any space.
pub trait PolicySpace: Send + Sync {
    fn gene_count(&self) -> usize;
    /// Inclusive (low, high) bounds of gene `i`.
    fn bounds(&self, i: usize) -> (i64, i64);
    /// The group gene `i` belongs to (PBA: `prob` or `magnitude`), for strategies that set
    /// whole groups at once, such as a grid.
    fn group(&self, _i: usize) -> &'static str {
        "gene"
    }
}

/// The shape of a search, as its strategy configures it.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchPlan {
    /// Members trained side by side.
    pub population: usize,
    /// Epochs between perturbation points (members report their reward there).
    pub interval: usize,
    /// On exploit, copy the donor's optimizer state too (otherwise keep the member's own).
    pub copy_optimizer: bool,
    /// On exploit, copy the donor's non-trainable buffers (BatchNorm statistics) too
    /// (otherwise keep the member's own; the original code copied trainable weights only).
    pub copy_buffers: bool,
    /// Rank members at a perturbation point by their mean reward over the last this many
    /// epochs (1: the latest epoch's alone). Validation accuracy swings between epochs
    /// mid-training; a window no longer than the interval only sees the current lineage.
    pub reward_window: usize,
}

/// Where a decision is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecideCtx {
    /// Epochs completed by the members being ranked.
    pub epoch: usize,
    /// The trial's total epochs.
    pub epochs: usize,
}

/// A population search rule (PBA's exploit/explore, random, grid...).
pub trait SearchStrategy: Send + Sync {
    /// Population, interval and what an exploit copies.
    fn plan(&self) -> SearchPlan;
    /// The initial genes of `member` (its own random stream).
    fn initial(
        &self,
        member: usize,
        space: &dyn PolicySpace,
        rng: &mut StreamRng,
    ) -> Result<Vec<i64>>;
    /// One decision per entry of `scores` (same order), at a perturbation point. By
    /// default every member continues: a strategy without exploit/explore (random, grid).
    fn decide(
        &self,
        at: DecideCtx,
        scores: &[MemberScore],
        space: &dyn PolicySpace,
        rng: &mut StreamRng,
    ) -> Vec<Decision> {
        let _ = (at, space, rng);
        vec![Decision::Continue; scores.len()]
    }
}

/// Builds a strategy from its YAML params.
pub type SearchStrategyFactory = fn(&Params) -> Result<Box<dyn SearchStrategy>>;
