//! `mlp`: a multilayer perceptron over the flattened image.

use rolekd_core::config::Params;
use rolekd_core::plugin::model::{Model, ModelOutput, ModelSpec, QuantSpec};
use rolekd_core::{register_plugin, Result};
use serde::Deserialize;
use tch::{nn, nn::Module, Tensor};

/// Parameters of `mlp`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MlpParams {
    /// Units of each hidden layer (default [256]); feature `hiddenN` is layer N's output.
    #[serde(default = "default_hidden")]
    hidden: Vec<i64>,
}

fn default_hidden() -> Vec<i64> {
    vec![256]
}

/// Flatten, `hidden` fully connected layers with ReLU, then a linear classifier.
struct Mlp {
    hidden: Vec<nn::Linear>,
    classifier: nn::Linear,
}

impl Model for Mlp {
    fn forward(&self, xs: &Tensor, _train: bool) -> ModelOutput {
        let mut x = xs.flatten(1, -1);
        let mut features = Vec::with_capacity(self.hidden.len());
        for (i, layer) in self.hidden.iter().enumerate() {
            x = layer.forward(&x).relu();
            // Feature losses expect [B, C, H, W].
            features.push((format!("hidden{}", i + 1), x.unsqueeze(-1).unsqueeze(-1)));
        }
        ModelOutput {
            logits: self.classifier.forward(&x),
            features,
        }
    }
}

fn build(params: &Params, spec: &ModelSpec, vs: &nn::Path) -> Result<Box<dyn Model>> {
    let p: MlpParams = params.parse()?;
    if let Some(units) = p.hidden.iter().find(|&&u| u <= 0) {
        return Err(params
            .child_error(
                "hidden",
                format!("layer sizes must be positive, got {units}"),
            )
            .into());
    }
    if spec.quant != QuantSpec::default() {
        return Err(params.error("`mlp` has no quantised variant").into());
    }
    let mut inputs = spec.in_channels * spec.height * spec.width;
    let mut hidden = Vec::new();
    for (i, &units) in p.hidden.iter().enumerate() {
        hidden.push(nn::linear(
            vs / format!("hidden{}", i + 1),
            inputs,
            units,
            Default::default(),
        ));
        inputs = units;
    }
    let classifier = nn::linear(vs / "fc", inputs, spec.num_classes, Default::default());
    Ok(Box::new(Mlp { hidden, classifier }))
}

register_plugin!(
    Model,
    "mlp",
    "example plugin: flatten, `hidden` fc+ReLU layers (default [256]), linear classifier",
    build
);
