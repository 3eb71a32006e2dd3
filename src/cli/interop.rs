//! `rolekd-run import`, `export` and `logits`: checkpoints to and from PyTorch.

use clap::{Args, ValueEnum};
use rolekd_core::config::Params;
use rolekd_interop::export::{export_state_dict, export_torchscript, logits};
use rolekd_interop::import::{import, Source};
use std::path::PathBuf;
use tch::Tensor;

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum From {
    /// rolekd's names or RepDistiller's/torchvision's, whichever the file has.
    Pytorch,
    Repdistiller,
    Torchvision,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// A state_dict: `.pth`/`.pt` (torch.save) or `.safetensors`; `{'model': ...}`-style
    /// wrappers and DataParallel's `module.` are unwrapped.
    file: PathBuf,
    /// Whose parameter names the file has.
    #[arg(long = "from", value_enum, default_value = "pytorch")]
    from: From,
    /// The rolekd model entry the weights are for, e.g. '{type: resnet32x4}'.
    #[arg(long)]
    model: String,
    /// Image size the model will see, HxW (32x32 for CIFAR, 28x28 for Fashion-MNIST); it
    /// must match the dataset of the stages that use the checkpoint.
    #[arg(long, default_value = "32x32")]
    size: String,
    /// The checkpoint directory to write (then `teacher: DIR` or `init: DIR`).
    #[arg(long, short)]
    output: PathBuf,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Format {
    /// safetensors with PyTorch (RepDistiller) names, for `load_state_dict(strict=True)`
    /// into `python/rolekd_models.py`'s classes.
    StateDict,
    /// A traced TorchScript module (`torch.jit.load`), quantisers included.
    Torchscript,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A rolekd checkpoint directory (a stage's `checkpoint/`).
    checkpoint: PathBuf,
    #[arg(long, value_enum, default_value = "state-dict")]
    format: Format,
    /// The file to write (`.safetensors` for state-dict, `.pt` for TorchScript).
    #[arg(long, short)]
    output: PathBuf,
}

#[derive(Args, Debug)]
pub struct LogitsArgs {
    /// A rolekd checkpoint directory.
    checkpoint: PathBuf,
    /// A safetensors file with the images, float [N, C, H, W], already normalised.
    #[arg(long)]
    input: PathBuf,
    /// The tensor's name in the input file.
    #[arg(long, default_value = "images")]
    key: String,
    /// Where to write the logits (safetensors, tensor `logits`).
    #[arg(long, short)]
    output: PathBuf,
}

fn size(text: &str) -> anyhow::Result<(i64, i64)> {
    let parse = |s: &str| s.trim().parse::<i64>().ok().filter(|v| *v > 0);
    match text.split_once('x') {
        Some((h, w)) => match (parse(h), parse(w)) {
            (Some(h), Some(w)) => Ok((h, w)),
            _ => anyhow::bail!("--size {text}: expected HxW with positive integers, e.g. 32x32"),
        },
        None => match parse(text) {
            Some(v) => Ok((v, v)),
            None => anyhow::bail!("--size {text}: expected HxW, e.g. 32x32"),
        },
    }
}

pub fn run_import(a: ImportArgs) -> anyhow::Result<()> {
    let (h, w) = size(&a.size)?;
    let entry = Params::from_yaml(&a.model)?;
    let model = Params::new(entry.value().clone(), "--model", entry.sources().clone());
    let source = match a.from {
        From::Pytorch => Source::Pytorch,
        From::Repdistiller => Source::RepDistiller,
        From::Torchvision => Source::Torchvision,
    };
    let r = import(&a.file, source, &model, h, w, &a.output)?;
    println!(
        "imported {} tensors from {}{} ({} BatchNorm counters dropped{}): {}x{}x{} images, {} classes -> {}",
        r.tensors,
        a.file.display(),
        if r.prefix.is_empty() { String::new() } else { format!(" (under `{}`)", r.prefix.trim_end_matches('.')) },
        r.counters_dropped,
        if r.outside > 0 { format!(", {} tensors outside the state_dict ignored", r.outside) } else { String::new() },
        r.spec.in_channels,
        r.spec.height,
        r.spec.width,
        r.spec.num_classes,
        a.output.display()
    );
    Ok(())
}

pub fn run_export(a: ExportArgs) -> anyhow::Result<()> {
    let r = match a.format {
        Format::StateDict => export_state_dict(&a.checkpoint, &a.output)?,
        Format::Torchscript => export_torchscript(&a.checkpoint, &a.output)?,
    };
    let quant = if r.quant.weight_bits < 32 || r.quant.activation_bits < 32 {
        format!(
            "; DoReFa W{}A{}: {}",
            r.quant.weight_bits,
            r.quant.activation_bits,
            match a.format {
                Format::StateDict => format!(
                    "{} weights written quantised; build the PyTorch class with activation_bits={}{}",
                    r.quantised,
                    r.quant.activation_bits,
                    if r.quant.quantize_first_last { ", quantize_first_last=True" } else { "" }
                ),
                Format::Torchscript => "quantisers are in the traced graph".to_string(),
            }
        )
    } else {
        String::new()
    };
    println!(
        "exported {} ({}, {} tensors) -> {}{quant}",
        a.checkpoint.display(),
        r.model_type,
        r.tensors,
        a.output.display()
    );
    Ok(())
}

pub fn run_logits(a: LogitsArgs) -> anyhow::Result<()> {
    let tensors = rolekd_engine::checkpoint::read_tensors(&a.input)?;
    let names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
    let images = tensors
        .iter()
        .find(|(n, _)| *n == a.key)
        .map(|(_, t)| t.shallow_clone())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{}: no tensor `{}` (has: {})",
                a.input.display(),
                a.key,
                names.join(", ")
            )
        })?;
    let out = logits(&a.checkpoint, &images)?;
    Tensor::write_safetensors(&[("logits", &out)], &a.output)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.output.display()))?;
    println!("{:?} logits -> {}", out.size(), a.output.display());
    Ok(())
}
