//! The built pieces of a run: roles, trained roles' optimisation, loss terms bound to roles.

use super::roles::BuiltModel;
use super::weights::WeightSchedule;
use rolekd_core::plugin::loss::Loss;
use rolekd_core::plugin::optim::Optimizer;
use tch::Tensor;

/// A built role: its model (frozen roles' variables frozen) and the view it sees.
pub(super) struct Role {
    pub name: String,
    pub built: BuiltModel,
    /// Index into the batch's views.
    pub view: usize,
    pub trainable: bool,
}

/// A trained role's optimisation: its optimizer over its own variables (model and the
/// loss parts bound to it) and its base learning rate.
pub(super) struct Trained {
    /// Index into the run's roles.
    pub role: usize,
    pub opt: Box<dyn Optimizer>,
    pub lr: f64,
    /// Its trainable variables (gradients are zeroed and clipped per role).
    pub params: Vec<Tensor>,
}

/// Whom a loss term learns from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Teacher {
    None,
    One(usize),
    /// The mean of these roles' logits (a teacher ensemble; no features).
    Mean(Vec<usize>),
}

/// A built loss term.
pub(super) struct Term {
    /// `kd`, `kd#2` when a type repeats, `peer_a/kd` with several trained roles.
    pub label: String,
    pub loss: Box<dyn Loss>,
    pub weight: WeightSchedule,
    /// Index into the run's roles of the role it trains.
    pub student: usize,
    pub teacher: Teacher,
    /// A `ce` term (what `combine: clip-to-ce` keeps whole).
    pub is_ce: bool,
}
