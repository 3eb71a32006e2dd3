//! `rolekd-run import`: a PyTorch state_dict as a rolekd checkpoint, which `teacher:` and
//! `init:` then accept like any trained stage's.

use crate::names::{is_batch_counter, Scheme};
use crate::torch_file::read_torch_file;
use rolekd_core::config::Params;
use rolekd_core::rng::Seed;
use rolekd_core::{Error, Result};
use rolekd_engine::checkpoint::{
    copy_into, named_tensors, read_tensors, save_checkpoint, SpecRecord,
};
use rolekd_engine::trainer::build_model;
use std::collections::BTreeMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Where the state_dict comes from; it decides the names expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// rolekd's own names, or RepDistiller's / torchvision's (whichever the file has).
    Pytorch,
    /// RepDistiller's CIFAR models (and `python/rolekd_models.py`).
    RepDistiller,
    /// torchvision's ResNets.
    Torchvision,
}

/// Wrappers training scripts put around a state_dict (`{'model': sd}`, `{'state_dict': sd}`,
/// DataParallel's `module.`), tried in this order.
const WRAPPERS: [&str; 9] = [
    "",
    "model.",
    "state_dict.",
    "net.",
    "module.",
    "model.module.",
    "state_dict.module.",
    "net.module.",
    "student.",
];

/// Every tensor of a `.pth`/`.pt` (torch.save) or `.safetensors` file, by dotted name.
pub fn read_state_dict(file: &Path) -> Result<Vec<(String, Tensor)>> {
    let is_safetensors = file.extension().is_some_and(|e| e == "safetensors");
    if is_safetensors {
        read_tensors(file)
    } else {
        read_torch_file(file)
    }
}

/// What an import did.
#[derive(Debug)]
pub struct Imported {
    pub tensors: usize,
    /// The wrapper prefix stripped (`model.` for RepDistiller's checkpoints).
    pub prefix: String,
    /// BatchNorm counters dropped.
    pub counters_dropped: usize,
    /// Tensors outside the state_dict (an optimizer's state, say), not used.
    pub outside: usize,
    pub spec: SpecRecord,
}

fn list(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(8).map(String::as_str).collect();
    let more = names.len().saturating_sub(shown.len());
    format!(
        "{}{}",
        shown.join(", "),
        if more > 0 {
            format!(" (and {more} more)")
        } else {
            String::new()
        }
    )
}

/// Imports `file` as a checkpoint of `model` (a model entry) for `height` x `width` images
/// into `out`. Input channels and classes come from the weights.
pub fn import(
    file: &Path,
    source: Source,
    model: &Params,
    height: i64,
    width: i64,
    out: &Path,
) -> Result<Imported> {
    let origin = file.display().to_string();
    let model_type = model.type_name()?;
    let scheme = Scheme::of_model(&model_type)?;
    let all = read_state_dict(file)?;
    let keys: BTreeMap<&str, &Tensor> = all.iter().map(|(k, t)| (k.as_str(), t)).collect();
    let [stem, head] = scheme.edges().map(|n| scheme.to_pytorch(n));
    let prefix = WRAPPERS
        .iter()
        .find(|p| {
            let has = |k: &str| keys.contains_key(format!("{p}{k}").as_str());
            (has(&stem) && has(&head)) || (has("conv1.weight") && has("fc.weight"))
        })
        .ok_or_else(|| {
            let seen: Vec<String> = all.iter().map(|(k, _)| k.clone()).collect();
            Error::Data(format!(
                "{origin}: no `{stem}` and `{head}` (bare, or under model., state_dict., net., module.): not a state_dict of a {model_type}; its tensors: {}",
                list(&seen)
            ))
        })?
        .to_string();
    let mut dict: BTreeMap<String, Tensor> = BTreeMap::new();
    let (mut counters, mut outside) = (0, 0);
    for (k, t) in &all {
        match k.strip_prefix(&prefix) {
            Some(short) if is_batch_counter(short) => counters += 1,
            Some(short) if prefix.is_empty() || !short.is_empty() => {
                dict.insert(short.to_string(), t.shallow_clone());
            }
            _ => outside += 1,
        }
    }
    // The input channels and classes, from the mapped names or rolekd's own.
    let dim = |keys: [&str; 2], axis: usize| {
        keys.iter()
            .find_map(|k| dict.get(*k))
            .and_then(|t| t.size().get(axis).copied())
            .unwrap_or(0)
    };
    let in_channels = dim([&stem, scheme.edges()[0]], 1);
    let num_classes = dim([&head, scheme.edges()[1]], 0);
    let spec = SpecRecord {
        in_channels,
        num_classes,
        height,
        width,
    };
    let built = build_model(model, &spec, Device::Cpu, Seed(0))?;
    let vars = named_tensors(&built.vs, "model.");
    // rolekd's own names first when the source allows them, else the mapped ones.
    let identity_hits = vars.iter().filter(|(n, _)| dict.contains_key(n)).count();
    let mapped_hits = vars
        .iter()
        .filter(|(n, _)| dict.contains_key(&scheme.to_pytorch(n)))
        .count();
    let use_identity = source == Source::Pytorch && identity_hits > mapped_hits;
    let torch_name = |n: &str| {
        if use_identity {
            n.to_string()
        } else {
            scheme.to_pytorch(n)
        }
    };
    let (mut missing, mut wrong) = (Vec::new(), Vec::new());
    let mut used = BTreeMap::new();
    for (name, var) in &vars {
        let key = torch_name(name);
        match dict.get(&key) {
            None => missing.push(key),
            Some(t) if t.size() != var.size() => wrong.push(format!(
                "{key} is {:?}, {model_type} needs {:?}",
                t.size(),
                var.size()
            )),
            Some(t) => {
                used.insert(name.clone(), t.to_kind(Kind::Float));
            }
        }
    }
    let mut mapped: std::collections::BTreeSet<String> =
        vars.iter().map(|(n, _)| torch_name(n)).collect();
    // A conv bias before BatchNorm (RepDistiller's VGG) goes into the running mean:
    // BN(conv(x) + b) uses (conv(x) + b - mean), so mean - b is the same function.
    for (name, _) in &vars {
        let Some(layer) = name.strip_suffix(".bn.running_mean") else {
            continue;
        };
        let bias = torch_name(&format!("{layer}.conv.weight")).replace(".weight", ".bias");
        if let (Some(b), Some(m)) = (dict.get(&bias), used.get(name)) {
            if b.size() == m.size() {
                let folded = m - b.to_kind(Kind::Float);
                used.insert(name.clone(), folded);
                mapped.insert(bias);
            }
        }
    }
    let unexpected: Vec<String> = dict
        .keys()
        .filter(|k| !mapped.contains(*k))
        .cloned()
        .collect();
    if !missing.is_empty() || !wrong.is_empty() || !unexpected.is_empty() {
        let mut msg = format!("{origin}: not a state_dict of this {model_type}:");
        if !missing.is_empty() {
            msg.push_str(&format!("\n  missing keys: {}", list(&missing)));
        }
        if !unexpected.is_empty() {
            msg.push_str(&format!("\n  unexpected keys: {}", list(&unexpected)));
        }
        if !wrong.is_empty() {
            msg.push_str(&format!("\n  wrong shapes: {}", list(&wrong)));
        }
        let stem_shape = dict.get("conv1.weight").map(|t| t.size());
        if stem_shape
            .as_ref()
            .is_some_and(|s| s.len() == 4 && s[2] == 7)
        {
            msg.push_str(
                "\n  conv1 is 7x7: an ImageNet ResNet (torchvision's stem with max-pool); for \
                 torchvision's ResNet-18 use `{type: resnet18}`, which has that stem",
            );
        }
        return Err(Error::Data(msg));
    }
    copy_into(&built.vs, "model.", &used, &origin)?;
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let revision = built.model.revision();
    save_checkpoint(
        out,
        &built.vs,
        "model.",
        &built.config,
        revision,
        &built.spec,
    )?;
    Ok(Imported {
        tensors: used.len(),
        prefix,
        counters_dropped: counters,
        outside,
        spec: built.spec,
    })
}
