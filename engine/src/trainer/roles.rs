//! Building a role: its model (from YAML or from a checkpoint), its VarStore, its
//! initialisation, its augmentation policy.

use crate::checkpoint::{check_revision, load_checkpoint, read_meta, SpecRecord};
use rolekd_core::config::Params;
use rolekd_core::error::{Error, Result};
use rolekd_core::plugin::augment::{AugmentPolicy, PolicyCtx};
use rolekd_core::plugin::data::Dataset;
use rolekd_core::plugin::model::{Model, ModelSpec, QuantSpec};
use rolekd_core::registry;
use rolekd_core::rng::Seed;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::nn::VarStore;
use tch::Device;

/// Where a role's network comes from.
#[derive(Clone, Debug)]
pub enum ModelSource {
    /// Built from a YAML model entry (`{type: resnet-cifar, depth: 20, quant: {...}}`).
    Config(Params),
    /// Rebuilt from a checkpoint's `model.json`, weights loaded.
    Checkpoint(PathBuf),
}

/// A built model and its variables. Model variables live under `model.`; loss parts the
/// role owns live under `loss<i>.` in the same store.
pub struct BuiltModel {
    pub vs: VarStore,
    pub model: Box<dyn Model>,
    /// The model entry (for `model.json`).
    pub config: serde_json::Value,
    pub spec: SpecRecord,
}

/// The problem shape of a dataset.
pub fn spec_of(data: &Dataset) -> SpecRecord {
    SpecRecord {
        in_channels: data.train.channels as i64,
        num_classes: data.num_classes() as i64,
        height: data.train.height as i64,
        width: data.train.width as i64,
    }
}

/// Builds a model from a YAML entry under a fresh VarStore, seeding libtorch first so
/// the initial weights depend only on `seed`.
pub fn build_model(
    entry: &Params,
    spec: &SpecRecord,
    device: Device,
    seed: Seed,
) -> Result<BuiltModel> {
    let factory = registry::of_entry(entry, registry::model)?;
    let quant = match entry.get("quant") {
        Some(q) => q.parse::<QuantSpec>()?,
        None => QuantSpec::default(),
    };
    for (bits, field) in [
        (quant.weight_bits, "weight_bits"),
        (quant.activation_bits, "activation_bits"),
    ] {
        if bits == 0 || bits > 32 {
            let q = entry.get("quant").expect("parsed above");
            return Err(q
                .child_error(
                    field,
                    format!("bits must be 1..=32 (32 = full precision), got {bits}"),
                )
                .into());
        }
    }
    let full_spec: ModelSpec = spec.to_spec(quant);
    let vs = VarStore::new(device);
    let model = seeded(seed, || {
        factory(
            &entry.without(&["quant"]),
            &full_spec,
            &(vs.root() / "model"),
        )
    })?;
    let config = serde_json::to_value(entry.value())
        .map_err(|e| Error::Invalid(format!("model entry is not representable as JSON: {e}")))?;
    Ok(BuiltModel {
        vs,
        model,
        config,
        spec: spec.clone(),
    })
}

/// Runs `f` with libtorch's global generator seeded from `seed`, holding a process-wide
/// lock: trainers running side by side on threads (a search's workers) would otherwise
/// interleave their draws from that one generator, and initial weights would depend on
/// thread timing.
pub fn seeded<T>(seed: Seed, f: impl FnOnce() -> T) -> T {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(seed.torch_seed());
    f()
}

/// Rebuilds the model a checkpoint was trained as and loads its weights.
pub fn load_model(dir: &Path, expected: &SpecRecord, device: Device) -> Result<BuiltModel> {
    let meta = read_meta(dir)?;
    if &meta.spec != expected {
        return Err(Error::Data(format!(
            "{}: trained for {:?}, but this dataset is {:?}",
            dir.display(),
            meta.spec,
            expected
        )));
    }
    let value: rolekd_core::yaml::Value = serde_json::from_value(meta.model.clone())
        .map_err(|e| Error::Data(format!("{}: bad model entry: {e}", dir.display())))?;
    let entry = Params::new(
        value,
        format!("{}/model.json", dir.display()),
        Default::default(),
    );
    let built = build_model(&entry, &meta.spec, device, Seed(0))?;
    check_revision(dir, &meta, built.model.as_ref())?;
    load_checkpoint(dir, &built.vs, "model.")?;
    Ok(built)
}

/// Builds an augmentation policy (None = no augmentation).
pub fn build_policy(
    entry: Option<&Params>,
    data: &Dataset,
    epochs: usize,
) -> Result<Arc<dyn AugmentPolicy>> {
    let ctx = PolicyCtx {
        channels: data.train.channels,
        height: data.train.height,
        width: data.train.width,
        epochs,
    };
    let Some(entry) = entry else {
        return Ok(Arc::new(NoAugment));
    };
    let factory = registry::of_entry(entry, registry::augment_policy)?;
    Ok(Arc::from(factory(entry, &ctx)?))
}

/// The identity policy, used when a role names none.
pub struct NoAugment;

impl AugmentPolicy for NoAugment {
    fn augment(
        &self,
        _: &mut rolekd_core::plugin::image::Image,
        _: &rolekd_core::plugin::augment::AugmentCtx,
        _: &mut rolekd_core::rng::StreamRng,
    ) {
    }
}
