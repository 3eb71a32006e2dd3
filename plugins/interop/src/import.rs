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
use std::collections::{BTreeMap, BTreeSet};
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
    let prefix = find_prefix(&all, scheme, &origin, &model_type)?;
    let (dict, counters, outside) = unwrap(&all, &prefix);
    let spec = spec_from(&dict, scheme, height, width);
    let built = build_model(model, &spec, Device::Cpu, Seed(0))?;
    let vars = named_tensors(&built.vs, "model.");
    let names = TorchNames::choose(scheme, source, &vars, &dict);
    let mut m = match_vars(&vars, &dict, &names, &model_type);
    fold_conv_biases(&vars, &dict, &names, &mut m);
    let unexpected: Vec<String> = dict
        .keys()
        .filter(|k| !m.mapped.contains(*k))
        .cloned()
        .collect();
    if !m.missing.is_empty() || !m.wrong.is_empty() || !unexpected.is_empty() {
        return Err(mismatch(&origin, &model_type, &m, &unexpected, &dict));
    }
    copy_into(&built.vs, "model.", &m.used, &origin)?;
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
        tensors: m.used.len(),
        prefix,
        counters_dropped: counters,
        outside,
        spec: built.spec,
    })
}

/// The first of [`WRAPPERS`] under which the file holds the model's stem and head (in the
/// scheme's names or rolekd's own).
fn find_prefix(
    all: &[(String, Tensor)],
    scheme: Scheme,
    origin: &str,
    model_type: &str,
) -> Result<String> {
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
        })?;
    Ok(prefix.to_string())
}

/// The state_dict under `prefix`, without BatchNorm counters; and how many counters and
/// tensors outside it were left out.
fn unwrap(all: &[(String, Tensor)], prefix: &str) -> (BTreeMap<String, Tensor>, usize, usize) {
    let mut dict: BTreeMap<String, Tensor> = BTreeMap::new();
    let (mut counters, mut outside) = (0, 0);
    for (k, t) in all {
        match k.strip_prefix(prefix) {
            Some(short) if is_batch_counter(short) => counters += 1,
            Some(short) if prefix.is_empty() || !short.is_empty() => {
                dict.insert(short.to_string(), t.shallow_clone());
            }
            _ => outside += 1,
        }
    }
    (dict, counters, outside)
}

/// The input channels and classes, from the mapped names or rolekd's own.
fn spec_from(
    dict: &BTreeMap<String, Tensor>,
    scheme: Scheme,
    height: i64,
    width: i64,
) -> SpecRecord {
    let [stem, head] = scheme.edges().map(|n| scheme.to_pytorch(n));
    let dim = |keys: [&str; 2], axis: usize| {
        keys.iter()
            .find_map(|k| dict.get(*k))
            .and_then(|t| t.size().get(axis).copied())
            .unwrap_or(0)
    };
    SpecRecord {
        in_channels: dim([&stem, scheme.edges()[0]], 1),
        num_classes: dim([&head, scheme.edges()[1]], 0),
        height,
        width,
    }
}

/// The file's name for each of rolekd's.
struct TorchNames {
    scheme: Scheme,
    identity: bool,
}

impl TorchNames {
    /// rolekd's own names first when the source allows them, else the mapped ones.
    fn choose(
        scheme: Scheme,
        source: Source,
        vars: &[(String, Tensor)],
        dict: &BTreeMap<String, Tensor>,
    ) -> TorchNames {
        let identity_hits = vars.iter().filter(|(n, _)| dict.contains_key(n)).count();
        let mapped_hits = vars
            .iter()
            .filter(|(n, _)| dict.contains_key(&scheme.to_pytorch(n)))
            .count();
        TorchNames {
            scheme,
            identity: source == Source::Pytorch && identity_hits > mapped_hits,
        }
    }

    fn of(&self, n: &str) -> String {
        if self.identity {
            n.to_string()
        } else {
            self.scheme.to_pytorch(n)
        }
    }
}

/// The model's variables against the file's tensors.
struct Matched {
    /// Found with the right shape, in fp32, by rolekd name.
    used: BTreeMap<String, Tensor>,
    missing: Vec<String>,
    wrong: Vec<String>,
    /// The file's names that some variable maps to.
    mapped: BTreeSet<String>,
}

fn match_vars(
    vars: &[(String, Tensor)],
    dict: &BTreeMap<String, Tensor>,
    names: &TorchNames,
    model_type: &str,
) -> Matched {
    let (mut missing, mut wrong) = (Vec::new(), Vec::new());
    let mut used = BTreeMap::new();
    for (name, var) in vars {
        let key = names.of(name);
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
    let mapped = vars.iter().map(|(n, _)| names.of(n)).collect();
    Matched {
        used,
        missing,
        wrong,
        mapped,
    }
}

/// A conv bias before BatchNorm (RepDistiller's VGG) goes into the running mean:
/// BN(conv(x) + b) uses (conv(x) + b - mean), so mean - b is the same function.
fn fold_conv_biases(
    vars: &[(String, Tensor)],
    dict: &BTreeMap<String, Tensor>,
    names: &TorchNames,
    m: &mut Matched,
) {
    for (name, _) in vars {
        let Some(layer) = name.strip_suffix(".bn.running_mean") else {
            continue;
        };
        let bias = names
            .of(&format!("{layer}.conv.weight"))
            .replace(".weight", ".bias");
        if let (Some(b), Some(mean)) = (dict.get(&bias), m.used.get(name)) {
            if b.size() == mean.size() {
                let folded = mean - b.to_kind(Kind::Float);
                m.used.insert(name.clone(), folded);
                m.mapped.insert(bias);
            }
        }
    }
}

/// What does not fit, with a hint for an ImageNet stem.
fn mismatch(
    origin: &str,
    model_type: &str,
    m: &Matched,
    unexpected: &[String],
    dict: &BTreeMap<String, Tensor>,
) -> Error {
    let mut msg = format!("{origin}: not a state_dict of this {model_type}:");
    if !m.missing.is_empty() {
        msg.push_str(&format!("\n  missing keys: {}", list(&m.missing)));
    }
    if !unexpected.is_empty() {
        msg.push_str(&format!("\n  unexpected keys: {}", list(unexpected)));
    }
    if !m.wrong.is_empty() {
        msg.push_str(&format!("\n  wrong shapes: {}", list(&m.wrong)));
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
    Error::Data(msg)
}
