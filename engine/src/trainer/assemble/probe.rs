//! Checking a spec's plugins before anything trains: registered names, and params that
//! build on a stand-in problem.

use crate::trainer::roles::BuiltModel;
use crate::trainer::spec::TrainSpec;
use rolekd_core::config::Params;
use rolekd_core::error::{Error, Result};
use rolekd_core::registry;

/// Checks that a plugin entry names a registered plugin of `kind`, with a located error.
pub(super) fn check_type(entry: &Params, kind: registry::PluginKind) -> Result<()> {
    let name = entry.type_name()?;
    let reg = registry::Registry::global()
        .read()
        .unwrap_or_else(|e| e.into_inner());
    reg.get(kind, &name)
        .map_err(|e| Error::Config(entry.type_error(e.to_string())))?;
    Ok(())
}

/// Checks the policy and losses against the model built on the stand-in problem
/// ([`build_stand_in`]) so that a misspelt or out-of-range parameter is reported before any stage
/// trains. Only configuration errors count here: anything else (a shape that only the
/// stand-in problem gets wrong, a file that an earlier stage will write) waits for the run.
pub(super) fn probe_plugins(
    spec: &TrainSpec,
    stand_in: Result<BuiltModel>,
    with_roles: bool,
    probe_augment: bool,
) -> Result<()> {
    let keep_config = |r: Result<()>| match r {
        Err(Error::Config(c)) => Err(Error::Config(c)),
        _ => Ok(()),
    };
    let built = match stand_in {
        Ok(b) => b,
        Err(e) => return keep_config(Err(e)),
    };
    let probe = tch::Tensor::zeros([2, 1, 28, 28], (tch::Kind::Float, tch::Device::Cpu));
    let feats: Vec<(String, Vec<i64>)> = tch::no_grad(|| built.model.forward(&probe, false))
        .features
        .iter()
        .map(|(n, t)| (n.clone(), t.size()))
        .collect();
    let has_frozen = spec.roles.iter().any(|r| !r.trainable);
    // A term has a teacher when it names one or a frozen role is there to default to.
    let loss_ctx = |teacher: bool| rolekd_core::plugin::loss::LossCtx {
        num_classes: 10,
        train_size: 64,
        device: tch::Device::Cpu,
        student_features: feats.clone(),
        teacher_features: if teacher { feats.clone() } else { Vec::new() },
    };
    // Augmentation policies: on the stand-in image shape, unless an input is still to come.
    let policy_ctx = rolekd_core::plugin::augment::PolicyCtx {
        channels: 1,
        height: 28,
        width: 28,
        epochs: spec.epochs,
    };
    let entries = spec.roles.iter().filter_map(|r| r.augment.as_ref());
    for entry in entries.filter(|_| probe_augment) {
        if rolekd_core::artifact::holds_placeholder(entry.value()) {
            continue;
        }
        let factory = registry::of_entry(entry, registry::augment_policy)?;
        if let Err(e) = factory(entry, &policy_ctx) {
            keep_config(Err(e))?;
        }
    }
    for (i, l) in spec.losses.iter().enumerate() {
        let f = registry::of_entry(&l.entry, registry::loss)?;
        let teacher = has_frozen || !l.teacher.is_empty();
        match f(
            &l.entry.without(&["weight", "student", "teacher"]),
            &loss_ctx(teacher),
            &(built.vs.root() / format!("probe{i}")),
        ) {
            Ok(loss) if loss.needs_teacher() && !teacher => {
                let name = l.entry.type_name()?;
                let hint = if with_roles {
                    "name the role it learns from with `teacher: <role>`"
                } else {
                    "use it in a `distill` stage"
                };
                return Err(l
                    .entry
                    .error(format!("loss `{name}` needs a teacher: {hint}"))
                    .into());
            }
            Ok(_) => {}
            Err(e) => keep_config(Err(e))?,
        }
    }
    Ok(())
}

/// Optimizers are cheap to build: built now so bad params surface before anything trains.
pub(super) fn check_optimizer(optimizer: &Params) -> Result<()> {
    registry::of_entry(optimizer, registry::optimizer)?(&optimizer.without(&["lr"]), Vec::new())?;
    Ok(())
}
