//! Every epoch's figures as TensorBoard scalars, in `events.out.tfevents.rolekd` beside
//! `metrics.jsonl` (the same numbers; see [`crate::tensorboard`]).

use super::metrics::{EpochMetrics, RoleMetrics};
use super::run::Run;
use crate::tensorboard::{unix_now, EventFile, Scalar};
use rolekd_core::error::Result;

/// The scalars of one epoch: `lr`, `loss/<term>`, `accuracy/*`, `calibration/test_ece`,
/// `agreement/test`, `speed/images_per_s`; with several trained roles, each one's under
/// `roles/<name>/`.
pub fn scalars_of(m: &EpochMetrics) -> Vec<Scalar> {
    let step = m.epoch as i64;
    let wall_time = m.wall_time.unwrap_or_else(unix_now);
    let mut out = Vec::new();
    let mut push = |tag: String, v: Option<f64>| {
        if let Some(value) = v.filter(|v| v.is_finite()) {
            out.push(Scalar {
                tag,
                step,
                value,
                wall_time,
            });
        }
    };
    push("lr".into(), Some(m.lr));
    for (term, v) in &m.loss {
        push(format!("loss/{term}"), Some(*v));
    }
    push("speed/images_per_s".into(), Some(m.images_per_s));
    let main = RoleMetrics {
        train_acc: m.train_acc,
        test_acc: m.test_acc,
        test_loss: m.test_loss,
        val_acc: m.val_acc,
        test_extras: m.test_extras.clone(),
        train_ce: m.train_ce,
        stall: None,
    };
    role_scalars("", &main, &mut push);
    // With several trained roles, each one's (the first's also in the main tags).
    for (name, r) in &m.roles {
        role_scalars(&format!("roles/{name}/"), r, &mut push);
    }
    out
}

fn role_scalars(prefix: &str, r: &RoleMetrics, push: &mut impl FnMut(String, Option<f64>)) {
    push(format!("{prefix}accuracy/train"), Some(r.train_acc));
    push(format!("{prefix}accuracy/val"), r.val_acc);
    push(format!("{prefix}accuracy/test"), r.test_acc);
    push(
        format!("{prefix}accuracy/test_top5"),
        r.test_extras.test_top5,
    );
    push(format!("{prefix}loss/test"), r.test_loss);
    push(format!("{prefix}loss/train_ce"), r.train_ce);
    push(
        format!("{prefix}calibration/test_ece"),
        r.test_extras.test_ece,
    );
    push(
        format!("{prefix}agreement/test"),
        r.test_extras.test_agreement,
    );
}

impl Run<'_> {
    /// Writes the event file afresh from the history (after `resume`).
    pub(super) fn open_events(&mut self) -> Result<()> {
        let history: Vec<Scalar> = self.history.iter().flat_map(scalars_of).collect();
        self.events = Some(EventFile::create(&self.ctx.dir, &history)?);
        Ok(())
    }

    /// Appends one epoch's scalars.
    pub(super) fn append_events(&self, m: &EpochMetrics) -> Result<()> {
        match &self.events {
            Some(f) => f.append(&scalars_of(m)),
            None => Ok(()),
        }
    }
}
