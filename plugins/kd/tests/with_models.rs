//! Every loss on real models from rolekd-models: built from probed feature shapes, one
//! step, finite value, gradient reaching the student's weights.

use rolekd_core::config::Params;
use rolekd_core::plugin::loss::{LossCtx, LossInputs};
use rolekd_core::plugin::model::{Model, ModelSpec, QuantSpec};
use tch::{nn, Device, Kind, Tensor};

fn spec() -> ModelSpec {
    // One intra-op thread: spinning OpenMP workers slow tiny ops on a busy 2-core host.
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| tch::set_num_threads(1));
    ModelSpec {
        in_channels: 3,
        num_classes: 5,
        height: 16,
        width: 16,
        quant: QuantSpec::default(),
    }
}

fn model(name: &str, yaml: &str, vs: &nn::VarStore) -> Box<dyn Model> {
    let f = rolekd_core::registry::model(name).unwrap();
    f(&Params::from_yaml(yaml).unwrap(), &spec(), &vs.root()).unwrap()
}

fn shapes(m: &dyn Model) -> Vec<(String, Vec<i64>)> {
    let x = Tensor::zeros([2, 3, 16, 16], (Kind::Float, Device::Cpu));
    tch::no_grad(|| m.forward(&x, false))
        .features
        .iter()
        .map(|(n, t)| (n.clone(), t.size()))
        .collect()
}

#[test]
fn every_loss_trains_a_real_student() {
    rolekd_kd::link();
    rolekd_models::link();
    let cases = [
        ("ce", "{}", false),
        ("kd", "{}", false),
        ("dkd", "{warmup_epochs: 0}", false),
        ("dist", "{}", false),
        ("logits", "{}", false),
        ("fitnet", "{features: [stage2]}", false),
        ("at", "{}", false),
        ("nst", "{}", false),
        ("sp", "{features: [stage2, stage3]}", false),
        ("pkt", "{}", false),
        ("cc", "{}", false),
        ("rkd", "{}", false),
        ("vid", "{}", false),
        ("ab", "{}", false),
        ("fsp", "{}", true),
        ("ft", "{}", false),
        ("crd", "{feat_dim: 8, negatives: 16}", false),
        ("ickd", "{}", false),
        ("kd-svd", "{features: [stage2, stage3]}", true),
        ("mhgd", "{heads: 2}", true),
    ];
    for (name, yaml, same_arch) in cases {
        tch::manual_seed(7);
        let svs = nn::VarStore::new(Device::Cpu);
        let tvs = nn::VarStore::new(Device::Cpu);
        let student = model("resnet-cifar", "{depth: 8, width: 4}", &svs);
        let teacher_yaml = if same_arch {
            "{depth: 8, width: 4}"
        } else {
            "{depth: 8, width: 8}"
        };
        let teacher = model("resnet-cifar", teacher_yaml, &tvs);
        let ctx = LossCtx {
            num_classes: 5,
            train_size: 40,
            device: Device::Cpu,
            student_features: shapes(student.as_ref()),
            teacher_features: shapes(teacher.as_ref()),
        };
        let f = rolekd_core::registry::loss(name).unwrap();
        let mut loss = f(
            &Params::from_yaml(yaml).unwrap(),
            &ctx,
            &(svs.root() / "loss0"),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let x = seeded_images(name);
        let s_out = student.forward(&x, true);
        let t_out = tch::no_grad(|| teacher.forward(&x, false)).detach();
        let labels = Tensor::from_slice(&[0i64, 1, 2, 3]);
        let indices = Tensor::from_slice(&[3i64, 17, 25, 39]);
        let value = loss
            .compute(&LossInputs {
                student: &s_out,
                teacher: Some(&t_out),
                roles: &[],
                labels: &labels,
                soft_targets: None,
                indices: &indices,
                epoch: 0,
                step: 0,
            })
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let v = value.double_value(&[]);
        assert!(v.is_finite(), "{name}: loss {v}");
        value.backward();
        let vars = svs.variables();
        let w = &vars["stage1.0.conv1.weight"];
        let g = w.grad();
        assert!(
            g.defined(),
            "{name}: no gradient at the student's first block"
        );
        let gsum = g.abs().sum(Kind::Double).double_value(&[]);
        assert!(gsum.is_finite() && gsum > 0.0, "{name}: gradient {gsum}");
    }
}

#[test]
fn unmatched_stages_name_both_models_stages() {
    rolekd_kd::link();
    let svs = nn::VarStore::new(Device::Cpu);
    let tvs = nn::VarStore::new(Device::Cpu);
    let student = model("resnet-cifar", "{depth: 8, width: 4}", &svs);
    let f = rolekd_core::registry::model("resnet18-cifar").unwrap();
    let teacher = f(
        &Params::from_yaml("{width: 4}").unwrap(),
        &spec(),
        &tvs.root(),
    )
    .unwrap();
    let ctx = LossCtx {
        num_classes: 5,
        train_size: 40,
        device: Device::Cpu,
        student_features: shapes(student.as_ref()),
        teacher_features: shapes(teacher.as_ref()),
    };
    let f = rolekd_core::registry::loss("at").unwrap();
    let err = match f(
        &Params::from_yaml("{features: [stage4]}").unwrap(),
        &ctx,
        &svs.root(),
    ) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    };
    assert!(matches!(err, rolekd_core::Error::Invalid(_)));
    let msg = err.to_string();
    assert!(
        msg.contains("student has no feature `stage4`")
            && msg.contains("[stage1, stage2, stage3, logits]")
            && msg.contains("[stage1, stage2, stage3, stage4, logits]"),
        "{msg}"
    );
    // A pair names each side explicitly.
    let ok = f(
        &Params::from_yaml("{features: [{student: stage3, teacher: stage4}]}").unwrap(),
        &ctx,
        &svs.root(),
    );
    assert!(ok.is_ok());
}

/// A batch of 4 random 3x16x16 images, the same for a given loss on every run (libtorch's
/// own generator is global to the process, so tests beside this one would move it).
fn seeded_images(name: &str) -> Tensor {
    use rand::Rng;
    let mut rng = rolekd_core::rng::Seed(0x6b64).child(name).rng();
    let values: Vec<f32> = (0..4 * 3 * 16 * 16)
        .map(|_| rng.random::<f32>() * 2.0 - 1.0)
        .collect();
    Tensor::from_slice(&values).view([4, 3, 16, 16])
}
