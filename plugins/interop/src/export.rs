//! `rolekd-run export`: a rolekd checkpoint for PyTorch, as a state_dict with PyTorch's
//! names (safetensors) or as a traced TorchScript module.

use crate::names::Scheme;
use rolekd_core::plugin::model::QuantSpec;
use rolekd_core::{Error, Result};
use rolekd_engine::checkpoint::{named_tensors, read_meta, write_tensors};
use rolekd_engine::trainer::load_model;
use rolekd_models::quant::{quantize_weight, FULL_PRECISION};
use std::path::Path;
use tch::{Device, Kind, Tensor};

fn quant_of(model: &serde_json::Value) -> Result<QuantSpec> {
    match model.get("quant") {
        Some(q) => serde_json::from_value(q.clone())
            .map_err(|e| Error::Data(format!("model.json: bad quant entry: {e}"))),
        None => Ok(QuantSpec::default()),
    }
}

/// The weight bits of parameter `name` (rolekd's name) under `q`: the stem conv and the
/// classifier are full precision unless `quantize_first_last`; BatchNorm and biases always.
fn weight_bits(name: &str, t: &Tensor, q: &QuantSpec, scheme: Scheme) -> u32 {
    let is_weight = name.ends_with(".weight") && matches!(t.dim(), 2 | 4);
    if !is_weight || q.weight_bits >= FULL_PRECISION {
        return FULL_PRECISION;
    }
    let edge = scheme.edges().contains(&name);
    if edge && !q.quantize_first_last {
        FULL_PRECISION
    } else {
        q.weight_bits
    }
}

/// What an export wrote.
#[derive(Debug)]
pub struct Exported {
    pub tensors: usize,
    /// Weights written with DoReFa's quantiser applied.
    pub quantised: usize,
    pub model_type: String,
    pub quant: QuantSpec,
}

/// Writes the checkpoint in `ckpt` as a PyTorch state_dict (safetensors) to `out`: PyTorch
/// names, DoReFa weights already quantised, and a zero `num_batches_tracked` per BatchNorm
/// so that `load_state_dict(strict=True)` accepts it.
pub fn export_state_dict(ckpt: &Path, out: &Path) -> Result<Exported> {
    let meta = read_meta(ckpt)?;
    let model_type = meta
        .model
        .get("type")
        .and_then(|t| t.as_str())
        .unwrap_or_default()
        .to_string();
    let scheme = Scheme::of_model(&model_type)?;
    let quant = quant_of(&meta.model)?;
    let built = load_model(ckpt, &meta.spec, Device::Cpu)?;
    let mut tensors = Vec::new();
    let mut quantised = 0;
    tch::no_grad(|| {
        for (name, t) in named_tensors(&built.vs, "model.") {
            let bits = weight_bits(&name, &t, &quant, scheme);
            let value = if bits < FULL_PRECISION {
                quantised += 1;
                quantize_weight(&t, bits).detach()
            } else {
                t.detach()
            };
            let torch_name = scheme.to_pytorch(&name);
            if scheme == Scheme::Vgg && name.ends_with(".conv.weight") {
                // RepDistiller's VGG convs carry a bias; rolekd's is zero (BN follows).
                tensors.push((
                    torch_name.replace(".weight", ".bias"),
                    Tensor::zeros([t.size()[0]], (Kind::Float, Device::Cpu)),
                ));
            }
            if let Some(bn) = torch_name.strip_suffix(".running_mean") {
                tensors.push((
                    format!("{bn}.num_batches_tracked"),
                    Tensor::zeros([], (Kind::Int64, Device::Cpu)),
                ));
            }
            tensors.push((torch_name, value));
        }
    });
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    write_tensors(out, &tensors)?;
    Ok(Exported {
        tensors: tensors.len(),
        quantised,
        model_type,
        quant,
    })
}

/// Traces the checkpoint's model (inference mode, quantisers included) on one input of the
/// checkpoint's shape and saves it as TorchScript (`torch.jit.load(out)` in Python).
pub fn export_torchscript(ckpt: &Path, out: &Path) -> Result<Exported> {
    let meta = read_meta(ckpt)?;
    let mut built = load_model(ckpt, &meta.spec, Device::Cpu)?;
    // Weights enter the trace as constants, which must not require grad.
    built.vs.freeze();
    let s = &meta.spec;
    let example = Tensor::zeros(
        [1, s.in_channels, s.height, s.width],
        (Kind::Float, Device::Cpu),
    );
    let model = built.model;
    let traced = tch::no_grad(|| {
        tch::CModule::create_by_tracing("RolekdModel", "forward", &[example], &mut |xs| {
            vec![model.forward(&xs[0], false).logits]
        })
    })
    .map_err(|e| Error::Data(format!("{}: tracing failed: {e}", ckpt.display())))?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    traced
        .save(out)
        .map_err(|e| Error::write_failed_text(out, e.to_string()))?;
    Ok(Exported {
        tensors: named_tensors(&built.vs, "model.").len(),
        quantised: 0,
        model_type: meta
            .model
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or_default()
            .to_string(),
        quant: quant_of(&meta.model)?,
    })
}

/// The logits of the checkpoint's model (inference mode) on `images` `[N, C, H, W]`.
pub fn logits(ckpt: &Path, images: &Tensor) -> Result<Tensor> {
    let meta = read_meta(ckpt)?;
    let s = &meta.spec;
    let want = [s.in_channels, s.height, s.width];
    let size = images.size();
    if size.len() != 4 || size[1..] != want {
        return Err(Error::Data(format!(
            "images are {size:?}; the checkpoint takes [N, {}, {}, {}]",
            want[0], want[1], want[2]
        )));
    }
    let built = load_model(ckpt, &meta.spec, Device::Cpu)?;
    Ok(tch::no_grad(|| {
        built
            .model
            .forward(&images.to_kind(Kind::Float), false)
            .logits
    }))
}
