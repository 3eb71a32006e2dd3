//! A dynamic rolekd plugin: written exactly like a static plugin crate, plus
//! `rolekd_core::export_plugins!()` and `crate-type = ["cdylib"]`.
//!
//! - model `mlp`: flatten, fully connected hidden layers with ReLU, linear classifier;
//! - loss `cosine-kd`: one minus the cosine similarity of the softened class distributions;
//! - augmentation op `gaussian-noise`, and the policy `noisy` that applies an op (looked up
//!   by name in the host's registry) before a base policy (default `standard`).
//!
//! `examples/dynamic-plugin/pipeline.yaml` uses all of them.

mod cosine_kd;
mod mlp;
mod noise;

// The one line that turns a plugin crate into a loadable plugin library: it exports the
// declaration (magic number, ABI version, build fingerprint) and the registration entry
// point that hands the `register_plugin!` entries above to rolekd-run.
rolekd_core::export_plugins!();

/// A plugin's unit tests look its factories up by name, as rolekd-run does: inside the
/// crate's own test binary only its own plugins are registered (no built-ins).
#[cfg(test)]
mod tests {
    use rolekd_core::config::Params;
    use rolekd_core::plugin::image::Image;
    use rolekd_core::plugin::loss::{LossCtx, LossInputs};
    use rolekd_core::plugin::model::{ModelSpec, QuantSpec};
    use rolekd_core::registry;
    use rolekd_core::rng::Seed;
    use tch::{nn, Device, Kind, Tensor};

    #[test]
    fn mlp_gives_logits_and_features() {
        let build = registry::model("mlp").unwrap();
        let vs = nn::VarStore::new(Device::Cpu);
        let spec = ModelSpec {
            in_channels: 1,
            num_classes: 10,
            height: 28,
            width: 28,
            quant: QuantSpec::default(),
        };
        let model = build(
            &Params::from_yaml("{hidden: [32]}").unwrap(),
            &spec,
            &vs.root(),
        )
        .unwrap();
        let out = model.forward(
            &Tensor::zeros([2, 1, 28, 28], (Kind::Float, Device::Cpu)),
            true,
        );
        assert_eq!(out.logits.size(), [2, 10]);
        assert_eq!(out.feature("hidden1").unwrap().size(), [2, 32, 1, 1]);
        // Bad params are located errors, not panics.
        let err = build(
            &Params::from_yaml("{hidden: [0]}").unwrap(),
            &spec,
            &vs.root(),
        );
        assert!(err.err().unwrap().to_string().contains("hidden"));
    }

    #[test]
    fn cosine_kd_is_zero_for_equal_outputs_and_needs_a_teacher() {
        let build = registry::loss("cosine-kd").unwrap();
        let vs = nn::VarStore::new(Device::Cpu);
        let ctx = LossCtx {
            num_classes: 10,
            train_size: 4,
            device: Device::Cpu,
            student_features: vec![],
            teacher_features: vec![],
        };
        let mut loss = build(&Params::from_yaml("{}").unwrap(), &ctx, &vs.root()).unwrap();
        let out = || rolekd_core::plugin::model::ModelOutput {
            logits: Tensor::from_slice(&[1.0f32, 2.0, 3.0, 0.5]).view([2, 2]),
            features: vec![],
        };
        let (s, t) = (out(), out());
        let labels = Tensor::from_slice(&[0i64, 1]);
        let mut inputs = LossInputs {
            student: &s,
            teacher: Some(&t),
            roles: &[],
            labels: &labels,
            soft_targets: None,
            indices: &labels,
            epoch: 0,
            step: 0,
        };
        assert!(loss.compute(&inputs).unwrap().double_value(&[]).abs() < 1e-6);
        inputs.teacher = None;
        assert!(loss.compute(&inputs).is_err());
    }

    #[test]
    fn gaussian_noise_changes_pixels_reproducibly() {
        let build = registry::augment_op("gaussian-noise").unwrap();
        let op = build(&Params::from_yaml("{sigma_per_level: 5}").unwrap()).unwrap();
        let noisy = |seed| {
            let mut img = Image::new(4, 4, 1, vec![128; 16]);
            op.apply(&mut img, 9, false, &mut Seed(seed).rng());
            img.data
        };
        assert_ne!(noisy(1), vec![128; 16]);
        assert_eq!(noisy(1), noisy(1));
    }
}
