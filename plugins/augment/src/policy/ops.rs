//! `ops`: any registered augmentation ops, by name, each with a probability and a level or
//! a range of levels, then a base policy. A new op (a plugin's) is usable at once, with no
//! policy of its own:
//!
//! ```yaml
//! augment:
//!   type: ops
//!   ops:
//!     - {type: salt-pepper, p: 0.5, level: 3}      # a fixed level
//!     - {type: Rotate, p: 0.3, level: [2, 7]}      # a level drawn per image, 2..=7
//!   choose: 1          # optional: N entries drawn per image (with replacement), not all
//!   base: {type: standard, pad: 4, flip: true}    # default: standard
//! ```
//!
//! Without `choose`, every entry is tried in order, each with its own `p`. With `choose: N`,
//! N entries are drawn uniformly per image (RandAugment's way), each then applied with its
//! `p`. Signed ops get a random sign. The other keys of an entry are the op's own params.

use rand::Rng;
use rolekd_core::config::Params;
use rolekd_core::plugin::augment::{AugmentCtx, AugmentOp, AugmentPolicy, MixBatch, PolicyCtx};
use rolekd_core::plugin::image::Image;
use rolekd_core::registry;
use rolekd_core::rng::StreamRng;
use rolekd_core::yaml::Value;
use rolekd_core::Result;
use serde::Deserialize;

/// Parameters of `ops`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OpsParams {
    /// The entries; read one by one below, so errors are located per entry.
    #[allow(dead_code)]
    ops: Vec<Value>,
    #[serde(default)]
    choose: Option<usize>,
    #[allow(dead_code)]
    #[serde(default)]
    base: Option<Value>,
}

/// An entry's `p` and `level` (a number or `[low, high]`).
#[derive(Deserialize)]
struct Slot {
    #[serde(default = "half")]
    p: f64,
    #[serde(default)]
    level: Level,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(untagged)]
enum Level {
    Fixed(u8),
    Range([u8; 2]),
}

impl Default for Level {
    fn default() -> Self {
        Level::Fixed(5)
    }
}

fn half() -> f64 {
    0.5
}

struct Entry {
    op: Box<dyn AugmentOp>,
    p: f64,
    level: Level,
}

impl Entry {
    fn maybe_apply(&self, img: &mut Image, rng: &mut StreamRng) {
        if rng.random::<f64>() >= self.p {
            return;
        }
        let level = match self.level {
            Level::Fixed(l) => l,
            Level::Range([lo, hi]) => rng.random_range(lo..=hi),
        };
        let negate = self.op.signed() && rng.random::<bool>();
        self.op.apply(img, level, negate, rng);
    }
}

struct Ops {
    entries: Vec<Entry>,
    choose: Option<usize>,
    base: Box<dyn AugmentPolicy>,
}

impl AugmentPolicy for Ops {
    fn augment(&self, img: &mut Image, ctx: &AugmentCtx, rng: &mut StreamRng) {
        match self.choose {
            None => self.entries.iter().for_each(|e| e.maybe_apply(img, rng)),
            Some(n) => {
                for _ in 0..n {
                    let k = rng.random_range(0..self.entries.len());
                    self.entries[k].maybe_apply(img, rng);
                }
            }
        }
        self.base.augment(img, ctx, rng);
    }

    fn mix_batch(&self, batch: &mut MixBatch<'_>, ctx: &AugmentCtx, rng: &mut StreamRng) -> bool {
        self.base.mix_batch(batch, ctx, rng)
    }
}

/// One `ops` entry: the op looked up by name, its slot checked.
fn entry(item: &Params) -> Result<Entry> {
    let factory = registry::of_entry(item, registry::augment_op)?;
    let slot: Slot = item.parse()?;
    if !(0.0..=1.0).contains(&slot.p) {
        return Err(item.child_error("p", "must be in 0..=1").into());
    }
    let in_range = |l: u8| l <= 9;
    let ok = match slot.level {
        Level::Fixed(l) => in_range(l),
        Level::Range([lo, hi]) => in_range(hi) && lo <= hi,
    };
    if !ok {
        return Err(item
            .child_error(
                "level",
                "must be 0..=9, or [low, high] with low <= high <= 9",
            )
            .into());
    }
    Ok(Entry {
        op: factory(&item.without(&["p", "level"]))?,
        p: slot.p,
        level: slot.level,
    })
}

fn build_ops(params: &Params, ctx: &PolicyCtx) -> Result<Box<dyn AugmentPolicy>> {
    let p: OpsParams = params.parse()?;
    let items = params.get("ops").map(|o| o.items()).unwrap_or_default();
    if items.is_empty() {
        return Err(params.child_error("ops", "needs at least one op").into());
    }
    let entries = items.iter().map(entry).collect::<Result<Vec<_>>>()?;
    if p.choose == Some(0) {
        return Err(params.child_error("choose", "must be at least 1").into());
    }
    Ok(Box::new(Ops {
        entries,
        choose: p.choose,
        base: super::base_policy(params, ctx)?,
    }))
}

rolekd_core::register_plugin!(
    AugmentPolicy,
    "ops",
    "any registered ops by name: [{type, p, level | [lo, hi], ..}] in order or `choose: N` per image, then `base` (default standard)",
    build_ops
);

#[cfg(test)]
mod tests {
    use super::*;
    use rolekd_core::rng::Seed;

    fn policy(yaml: &str) -> Result<Box<dyn AugmentPolicy>> {
        let ctx = PolicyCtx {
            channels: 1,
            height: 8,
            width: 8,
            epochs: 1,
        };
        build_ops(&Params::from_yaml(yaml).unwrap(), &ctx)
    }

    fn run(p: &dyn AugmentPolicy, seed: u64) -> Image {
        let mut img = Image::new(8, 8, 1, (0..64).collect());
        let ctx = AugmentCtx {
            epoch: 0,
            epochs: 1,
        };
        p.augment(&mut img, &ctx, &mut Seed(seed).rng());
        img
    }

    #[test]
    fn a_certain_op_always_applies_and_a_never_op_never_does() {
        let base = Image::new(8, 8, 1, (0..64).collect());
        let always = policy("{ops: [{type: Invert, p: 1.0}], base: {type: none}}").unwrap();
        let never = policy("{ops: [{type: Invert, p: 0.0}], base: {type: none}}").unwrap();
        for seed in 0..5 {
            assert_eq!(
                run(always.as_ref(), seed).data,
                base.data.iter().map(|v| 255 - v).collect::<Vec<_>>()
            );
            assert_eq!(run(never.as_ref(), seed), base);
        }
    }

    #[test]
    fn bad_entries_are_located() {
        let e = |y: &str| policy(y).err().unwrap().to_string();
        assert!(e("{ops: [{type: Nonesuch}]}").contains("Nonesuch"));
        assert!(e("{ops: [{type: Invert, p: 2}]}").contains("ops[0].p"));
        assert!(e("{ops: [{type: Rotate, level: [7, 2]}]}").contains("ops[0].level"));
        assert!(e("{ops: []}").contains("at least one"));
        assert!(e("{ops: [{type: Invert}], choose: 0}").contains("choose"));
    }
}
