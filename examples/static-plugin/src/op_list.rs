//! `op-list`: a list of ops, each with a probability and a level, then a base policy.

use rand::Rng;
use rolekd_core::config::Params;
use rolekd_core::plugin::augment::{AugmentCtx, AugmentOp, AugmentPolicy, MixBatch, PolicyCtx};
use rolekd_core::plugin::image::Image;
use rolekd_core::registry;
use rolekd_core::rng::StreamRng;
use rolekd_core::yaml::Value;
use rolekd_core::{register_plugin, Result};
use serde::Deserialize;

/// Parameters of `op-list`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpListParams {
    /// The ops, in order: `{type: OP, prob: 0.5, level: 3, ...the op's own params}`.
    #[allow(dead_code)] // read item by item below, for located errors
    ops: Vec<Value>,
    /// The policy that runs afterwards (default `standard`).
    #[serde(default)]
    base: Option<Value>,
}

/// The `prob` and `level` of one `ops` entry (the rest belongs to the op).
#[derive(Deserialize)]
struct Slot {
    #[serde(default = "half")]
    prob: f64,
    #[serde(default)]
    level: u8,
}

fn half() -> f64 {
    0.5
}

struct OpList {
    ops: Vec<(Box<dyn AugmentOp>, Slot)>,
    base: Box<dyn AugmentPolicy>,
}

impl AugmentPolicy for OpList {
    fn augment(&self, img: &mut Image, ctx: &AugmentCtx, rng: &mut StreamRng) {
        for (op, slot) in &self.ops {
            if rng.random::<f64>() < slot.prob {
                let negate = op.signed() && rng.random::<bool>();
                op.apply(img, slot.level, negate, rng);
            }
        }
        self.base.augment(img, ctx, rng);
    }

    fn mix_batch(&self, batch: &mut MixBatch<'_>, ctx: &AugmentCtx, rng: &mut StreamRng) -> bool {
        self.base.mix_batch(batch, ctx, rng)
    }
}

fn build(params: &Params, ctx: &PolicyCtx) -> Result<Box<dyn AugmentPolicy>> {
    let p: OpListParams = params.parse()?;
    let mut ops = Vec::new();
    for item in params.get("ops").map(|o| o.items()).unwrap_or_default() {
        // Ops are plugins too: looked up by name, so built-in ones work as well.
        let name = item.type_name()?;
        let factory = registry::augment_op(&name).map_err(|e| {
            item.get("type")
                .unwrap_or_else(|| item.clone())
                .error(e.to_string())
        })?;
        let slot: Slot = item.parse()?;
        if !(0.0..=1.0).contains(&slot.prob) {
            return Err(item.child_error("prob", "must be in 0..=1").into());
        }
        if slot.level > 9 {
            return Err(item.child_error("level", "must be in 0..=9").into());
        }
        let op = factory(&item.without(&["prob", "level"]))?;
        ops.push((op, slot));
    }
    let base = match p.base.and(params.get("base")) {
        Some(entry) => {
            let factory = registry::augment_policy(&entry.type_name()?)
                .map_err(|e| entry.error(e.to_string()))?;
            factory(&entry, ctx)?
        }
        None => {
            let factory =
                registry::augment_policy("standard").map_err(|e| params.error(e.to_string()))?;
            factory(&Params::detached(Value::Null), ctx)?
        }
    };
    Ok(Box::new(OpList { ops, base }))
}

register_plugin!(
    AugmentPolicy,
    "op-list",
    "example plugin: `ops` [{type, prob, level, ..}] in order, then `base` (default standard)",
    build
);
