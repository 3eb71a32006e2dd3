//! `rolekd-run loss eval`: one loss on tensors from a file, for checking a loss against a
//! reference implementation.

use anyhow::{bail, Context};
use rolekd_core::config::Params;
use rolekd_core::plugin::loss::{LossCtx, LossInputs};
use rolekd_core::plugin::model::ModelOutput;
use rolekd_core::registry;
use rolekd_core::rng::Seed;
use std::collections::BTreeMap;
use std::path::Path;
use tch::{nn::VarStore, Device, Kind, Tensor};

/// Evaluates `loss_yaml` on `student.logits`, `teacher.logits`, `labels` and any
/// `student.features.<stage>` / `teacher.features.<stage>` tensors in `inputs`.
pub fn eval(
    loss_yaml: &str,
    inputs: &Path,
    seed: u64,
    train_size: Option<usize>,
) -> anyhow::Result<()> {
    let entry = Params::from_yaml(loss_yaml).context("--loss")?;
    let name = entry.type_name()?;
    let factory = registry::loss(&name)?;
    let tensors: BTreeMap<String, Tensor> = Tensor::read_safetensors(inputs)
        .with_context(|| format!("{}: cannot read safetensors", inputs.display()))?
        .into_iter()
        .collect();
    let get = |k: &str| -> anyhow::Result<Tensor> {
        tensors
            .get(k)
            .map(|t| t.shallow_clone())
            .with_context(|| format!("{}: no tensor `{k}`", inputs.display()))
    };
    let output = |role: &str| -> anyhow::Result<Option<ModelOutput>> {
        let key = format!("{role}.logits");
        if !tensors.contains_key(&key) {
            return Ok(None);
        }
        let prefix = format!("{role}.features.");
        let features = tensors
            .iter()
            .filter_map(|(k, t)| {
                k.strip_prefix(&prefix)
                    .map(|s| (s.to_string(), t.to_kind(Kind::Float)))
            })
            .collect();
        Ok(Some(ModelOutput {
            logits: get(&key)?.to_kind(Kind::Float),
            features,
        }))
    };
    let student = output("student")?.context("`student.logits` is required")?;
    let teacher = output("teacher")?;
    let labels = get("labels")?.to_kind(Kind::Int64);
    let batch = labels.size()[0];
    let shapes = |o: &ModelOutput| {
        o.features
            .iter()
            .map(|(n, t)| (n.clone(), t.size()))
            .collect::<Vec<_>>()
    };
    let ctx = LossCtx {
        num_classes: *student.logits.size().last().unwrap_or(&0),
        train_size: train_size.unwrap_or(batch as usize),
        device: Device::Cpu,
        student_features: shapes(&student),
        teacher_features: teacher.as_ref().map(shapes).unwrap_or_default(),
    };
    tch::manual_seed(Seed(seed).torch_seed());
    let vs = VarStore::new(Device::Cpu);
    let mut loss = factory(&entry.without(&["weight"]), &ctx, &vs.root())?;
    if loss.needs_teacher() && teacher.is_none() {
        bail!("loss `{name}` needs `teacher.logits`");
    }
    let indices = Tensor::arange(batch, (Kind::Int64, Device::Cpu));
    let value = loss.compute(&LossInputs {
        student: &student,
        teacher: teacher.as_ref(),
        roles: &[],
        labels: &labels,
        soft_targets: None,
        indices: &indices,
        epoch: 0,
        step: 0,
    })?;
    println!("{}", serde_json::json!({ "loss": value.double_value(&[]) }));
    Ok(())
}
