//! Shape, naming, size and init checks for the model zoo.

use crate::{count_macs, param_count};
use rolekd_core::config::Params;
use rolekd_core::plugin::model::{Model, ModelSpec, QuantSpec};
use tch::{nn, Device, Kind, Tensor};

/// One intra-op thread: on a small, busy machine libtorch's spinning OpenMP workers make
/// these tiny forwards many times slower.
pub(crate) fn one_thread() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| tch::set_num_threads(1));
}

pub(crate) fn spec(c: i64, hw: i64, classes: i64) -> ModelSpec {
    one_thread();
    ModelSpec {
        in_channels: c,
        num_classes: classes,
        height: hw,
        width: hw,
        quant: QuantSpec::default(),
    }
}

pub(crate) fn build(name: &str, yaml: &str, s: &ModelSpec) -> (nn::VarStore, Box<dyn Model>) {
    let vs = nn::VarStore::new(Device::Cpu);
    let f = rolekd_core::registry::model(name).unwrap();
    let m = f(&Params::from_yaml(yaml).unwrap(), s, &vs.root()).unwrap();
    (vs, m)
}

fn build_err(name: &str, yaml: &str, s: &ModelSpec) -> String {
    let vs = nn::VarStore::new(Device::Cpu);
    let f = rolekd_core::registry::model(name).unwrap();
    match f(&Params::from_yaml(yaml).unwrap(), s, &vs.root()) {
        Ok(_) => panic!("{name} {yaml}: expected an error"),
        Err(e) => e.to_string(),
    }
}

fn names(out: &rolekd_core::plugin::model::ModelOutput) -> Vec<String> {
    out.features.iter().map(|(n, _)| n.clone()).collect()
}

#[test]
fn small_cnn_shapes_and_features() {
    for (c, hw) in [(1, 28), (3, 32)] {
        let s = spec(c, hw, 10);
        let (_vs, m) = build("small-cnn", "{}", &s);
        let out = m.forward(
            &Tensor::zeros([2, c, hw, hw], (Kind::Float, Device::Cpu)),
            true,
        );
        assert_eq!(out.logits.size(), vec![2, 10]);
        assert_eq!(names(&out), vec!["stage1", "stage2"]);
        assert_eq!(out.features[0].1.size(), vec![2, 32, hw / 2, hw / 2]);
        assert_eq!(out.features[1].1.size(), vec![2, 64, hw / 4, hw / 4]);

        let (_vs, m) = build("small-cnn", "{channels: [8, 16, 24], hidden: 20}", &s);
        let out = m.forward(
            &Tensor::zeros([3, c, hw, hw], (Kind::Float, Device::Cpu)),
            false,
        );
        assert_eq!(out.logits.size(), vec![3, 10]);
        assert_eq!(names(&out), vec!["stage1", "stage2", "stage3"]);
        assert_eq!(out.features[2].1.size(), vec![3, 24, hw / 8, hw / 8]);
    }
}

#[test]
fn small_cnn_param_count() {
    // 1x28x28, channels [32, 64], 10 classes:
    // conv 1*32*9 = 288, BN 64; conv 32*64*9 = 18432, BN 128; fc 64*7*7*10 + 10 = 31370.
    let (vs, _m) = build("small-cnn", "{}", &spec(1, 28, 10));
    assert_eq!(param_count(&vs), 288 + 64 + 18432 + 128 + 31370);
}

#[test]
fn resnet_cifar_shapes_and_features() {
    for (c, hw) in [(1, 28), (3, 32)] {
        let s = spec(c, hw, 7);
        let (_vs, m) = build("resnet-cifar", "{depth: 8, width: 4}", &s);
        let out = m.forward(
            &Tensor::randn([2, c, hw, hw], (Kind::Float, Device::Cpu)),
            true,
        );
        assert_eq!(out.logits.size(), vec![2, 7]);
        assert_eq!(names(&out), vec!["stage1", "stage2", "stage3"]);
        let h2 = (hw + 1) / 2;
        let h3 = (h2 + 1) / 2;
        assert_eq!(out.features[0].1.size(), vec![2, 4, hw, hw]);
        assert_eq!(out.features[1].1.size(), vec![2, 8, h2, h2]);
        assert_eq!(out.features[2].1.size(), vec![2, 16, h3, h3]);
        // post-ReLU features
        assert!(f64::try_from(out.features[2].1.min()).unwrap() >= 0.0);
        let out = m.forward(
            &Tensor::randn([1, c, hw, hw], (Kind::Float, Device::Cpu)),
            false,
        );
        assert_eq!(out.logits.size(), vec![1, 7]);
    }
}

#[test]
fn resnet20_param_count_and_macs() {
    // ResNet-20, 3x32x32, 10 classes, option-B (1x1 conv + BN) shortcuts:
    //   stem      3*16*9 + BN 2*16                                  =     464
    //   stage1    3 blocks * (2 * 16*16*9 + 2 * 2*16)               =  14,016
    //   stage2    16*32*9 + 32*32*9 + 2*64 + (16*32 + 64)           =  14,528
    //             + 2 * (2 * 32*32*9 + 2*64)                        =  37,120
    //   stage3    32*64*9 + 64*64*9 + 2*128 + (32*64 + 128)         =  57,728
    //             + 2 * (2 * 64*64*9 + 2*128)                       = 147,968
    //   fc        64*10 + 10                                        =     650
    //   total                                                       = 272,474
    // (the option-A ResNet-20, with parameter-free shortcuts, has 272,474 - 576 - 2,176
    // = 269,722: the familiar "0.27M").
    let s = spec(3, 32, 10);
    let (vs, m) = build("resnet-cifar", "{}", &s);
    assert_eq!(param_count(&vs), 272_474);
    let (vs2, _m) = build("resnet20", "{}", &s);
    assert_eq!(param_count(&vs2), 272_474);
    // MACs: stem 32*32*16*3*9 = 442,368; stage1 6 * 32*32*16*16*9 = 14,155,776;
    // stage2 16*16*32*16*9 + 5 * 16*16*32*32*9 + 16*16*32*16 = 13,107,200;
    // stage3 8*8*64*32*9 + 5 * 8*8*64*64*9 + 8*8*64*32 = 13,107,200; fc 640.
    assert_eq!(count_macs(m.as_ref(), &s, Device::Cpu), 40_813_184);
}

#[test]
fn resnet_depth_must_be_6n_plus_2() {
    let msg = build_err("resnet-cifar", "{depth: 21}", &spec(3, 32, 10));
    assert!(msg.contains("depth") && msg.contains("6n + 2"), "{msg}");
    let msg = build_err("resnet-cifar", "{depht: 20}", &spec(3, 32, 10));
    assert!(msg.contains("depht"), "{msg}");
}

#[test]
fn inits_follow_pytorch() {
    tch::manual_seed(1);
    let (vs, _m) = build("resnet-cifar", "{depth: 8, width: 16}", &spec(3, 32, 10));
    let vars = vs.variables();
    let bn_w = &vars["bn1.weight"];
    assert_eq!(f64::try_from(bn_w.min()).unwrap(), 1.0);
    assert_eq!(f64::try_from(vars["bn1.bias"].abs().max()).unwrap(), 0.0);
    // Kaiming normal, fan-out: std = sqrt(2 / (64 * 9)) for a 64-out 3x3 conv.
    let w = &vars["stage3.0.conv2.weight"];
    let std = f64::try_from(w.std(true)).unwrap();
    let expect = (2.0f64 / (64.0 * 9.0)).sqrt();
    assert!((std / expect - 1.0).abs() < 0.05, "std {std} vs {expect}");
    // Linear: uniform in ±1/sqrt(64).
    let fc = &vars["fc.weight"];
    let bound = 1.0 / 8.0;
    assert!(f64::try_from(fc.abs().max()).unwrap() <= bound);
    assert!(f64::try_from(vars["fc.bias"].abs().max()).unwrap() <= bound);
    assert!(f64::try_from(fc.abs().max()).unwrap() > 0.5 * bound);
}

#[test]
fn quantised_resnet_runs_and_backprops() {
    let mut s = spec(3, 16, 5);
    s.quant = QuantSpec {
        weight_bits: 2,
        activation_bits: 2,
        quantize_first_last: false,
    };
    let (vs, m) = build("resnet-cifar", "{depth: 8, width: 4}", &s);
    let out = m.forward(
        &Tensor::randn([4, 3, 16, 16], (Kind::Float, Device::Cpu)),
        true,
    );
    // stage1 features are 2-bit activations: values in {0, 1/3, 2/3, 1}.
    let f = out.features[0].1.flatten(0, -1);
    let scaled = &f * 3.0;
    let frac = (&scaled - scaled.round()).abs().max();
    assert!(f64::try_from(frac).unwrap() < 1e-5);
    assert!(f64::try_from(f.max()).unwrap() <= 1.0);
    out.logits.sum(Kind::Float).backward();
    for (name, t) in vs.variables() {
        if t.requires_grad() && name.contains("stage1.0.conv1") {
            let g = t.grad();
            assert!(
                f64::try_from(g.abs().sum(Kind::Double)).unwrap() > 0.0,
                "{name}"
            );
        }
    }
}

/// Forward on 1x28x28 and 3x32x32; returns the feature names and shapes of the 3x32x32 run.
fn check_forward(name: &str, yaml: &str, classes: i64) -> Vec<(String, Vec<i64>)> {
    let mut last = Vec::new();
    for (c, hw) in [(1, 28), (3, 32)] {
        let s = spec(c, hw, classes);
        let (_vs, m) = build(name, yaml, &s);
        let out = m.forward(
            &Tensor::randn([2, c, hw, hw], (Kind::Float, Device::Cpu)),
            true,
        );
        assert_eq!(out.logits.size(), vec![2, classes], "{name}");
        assert!(
            bool::try_from(out.logits.isfinite().all()).unwrap(),
            "{name}"
        );
        let eval = m.forward(
            &Tensor::randn([1, c, hw, hw], (Kind::Float, Device::Cpu)),
            false,
        );
        assert_eq!(eval.logits.size(), vec![1, classes], "{name}");
        last = out
            .features
            .iter()
            .map(|(n, t)| (n.clone(), t.size()))
            .collect();
    }
    last
}

#[test]
fn zoo_forward_shapes_and_features() {
    let f = check_forward("wrn", "{depth: 10, widen_factor: 1}", 5);
    assert_eq!(
        f,
        vec![
            ("stage1".to_string(), vec![2, 16, 32, 32]),
            ("stage2".to_string(), vec![2, 32, 16, 16]),
            ("stage3".to_string(), vec![2, 64, 8, 8]),
        ]
    );
    let f = check_forward("vgg-cifar", "{depth: 8}", 5);
    let shapes: Vec<Vec<i64>> = f.iter().map(|(_, s)| s.clone()).collect();
    assert_eq!(
        shapes,
        vec![
            vec![2, 64, 32, 32],
            vec![2, 128, 16, 16],
            vec![2, 256, 8, 8],
            vec![2, 512, 4, 4],
            vec![2, 512, 4, 4]
        ]
    );
    let f = check_forward("resnet8x4", "{}", 5);
    assert_eq!(f[0].1, vec![2, 64, 32, 32]);
    assert_eq!(f[2].1, vec![2, 256, 8, 8]);
    let f = check_forward("mobilenetv2-cifar", "{width_mult: 0.25}", 5);
    let names: Vec<&str> = f.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, vec!["stage1", "stage2", "stage3", "stage4"]);
    assert_eq!(f[0].1, vec![2, 8, 32, 32]);
    assert_eq!(f[2].1, vec![2, 24, 8, 8]);
    assert_eq!(f[3].1, vec![2, 1280, 4, 4]);
    let f = check_forward("shufflenetv2-cifar", "{width_mult: 0.5}", 5);
    assert_eq!(f[0].1, vec![2, 48, 16, 16]);
    assert_eq!(f[2].1, vec![2, 192, 4, 4]);
    assert_eq!(f[3].1, vec![2, 1024, 4, 4]);
}

#[test]
fn zoo_param_counts_match_the_reference_architectures() {
    let s = spec(3, 32, 10);
    // ResNet-18, CIFAR stem, 10 classes: stem 1,728 + 128; stage1 4*36,864 + 4*128;
    // stage2 73,728 + 3*147,456 + 4*256 + (8,192 + 256); stage3 294,912 + 3*589,824
    // + 4*512 + (32,768 + 512); stage4 1,179,648 + 3*2,359,296 + 4*1,024 + (131,072
    // + 1,024); fc 5,130 = 11,173,962 (the usual CIFAR ResNet-18 figure).
    let (vs, m) = build("resnet18-cifar", "{}", &s);
    assert_eq!(param_count(&vs), 11_173_962);
    let out = m.forward(
        &Tensor::zeros([1, 3, 32, 32], (Kind::Float, Device::Cpu)),
        false,
    );
    assert_eq!(out.features.len(), 4);
    assert_eq!(out.features[3].1.size(), vec![1, 512, 4, 4]);
    // WRN-16-2: stem 432; group1 (16->32) 32+4,608+64+9,216+512 and 64+9,216+64+9,216;
    // group2 (32->64) 57,536 + 73,984; group3 (64->128) 229,760 + 295,424; final BN 256;
    // fc 1,290 = 691,674.
    let (vs, _m) = build("wrn", "{}", &s);
    assert_eq!(param_count(&vs), 691_674);
    // torchvision's MobileNetV2 (3,504,872 with 1000 classes) minus its 1280*1000 + 1000
    // classifier plus 1280*10 + 10: the CIFAR strides change no parameter.
    let (vs, _m) = build("mobilenetv2-cifar", "{}", &s);
    assert_eq!(param_count(&vs), 3_504_872 - 1_281_000 + 12_810);
    // torchvision's shufflenet_v2_x1_0 (2,278,604) minus 1024*1000 + 1000 plus
    // 1024*10 + 10 (its stride-2 stem has the same 3x3x3x24 weights, the max-pool none).
    let (vs, _m) = build("shufflenetv2-cifar", "{}", &s);
    assert_eq!(param_count(&vs), 2_278_604 - 1_025_000 + 10_250);
}

#[test]
fn every_model_honours_quantisation() {
    let mut s = spec(3, 16, 4);
    s.quant = QuantSpec {
        weight_bits: 1,
        activation_bits: 2,
        quantize_first_last: true,
    };
    for (name, yaml) in [
        ("small-cnn", "{channels: [4, 8], hidden: 6}"),
        ("resnet-cifar", "{depth: 8, width: 4}"),
        ("wrn", "{depth: 10, widen_factor: 1}"),
        ("vgg-cifar", "{depth: 8}"),
        ("mobilenetv2-cifar", "{width_mult: 0.25}"),
        ("shufflenetv2-cifar", "{width_mult: 0.5}"),
    ] {
        let (vs, m) = build(name, yaml, &s);
        let out = m.forward(
            &Tensor::randn([2, 3, 16, 16], (Kind::Float, Device::Cpu)),
            true,
        );
        out.logits.sum(Kind::Float).backward();
        let mut with_grad = 0;
        for t in vs.trainable_variables() {
            if f64::try_from(t.grad().abs().sum(Kind::Double)).unwrap_or(0.0) > 0.0 {
                with_grad += 1;
            }
        }
        assert!(with_grad > 0, "{name}: no gradient reached the weights");
        // With quantize_first_last, the last feature map is a 2-bit activation too.
        let (_, f) = out.features.last().unwrap();
        let scaled = f * 3.0;
        let frac = f64::try_from((&scaled - scaled.round()).abs().max()).unwrap();
        // wrn's and vgg's last features are activations; others end on one as well.
        assert!(
            frac < 1e-4,
            "{name}: last feature not on the 2-bit grid ({frac})"
        );
    }
}

#[test]
fn bad_zoo_params_are_located() {
    let s = spec(3, 32, 10);
    assert!(build_err("wrn", "{depth: 17}", &s).contains("6n + 4"));
    assert!(build_err("vgg-cifar", "{depth: 12}", &s).contains("depth"));
    assert!(build_err("shufflenetv2-cifar", "{width_mult: 0.7}", &s).contains("width_mult"));
    assert!(build_err("resnet20", "{depth: 32}", &s).contains("depth"));
    assert!(build_err("vgg-cifar", "{}", &spec(1, 7, 10)).contains("too small (>= 8x8)"));
}

#[test]
fn summaries_cover_every_built_in_model() {
    let s = spec(3, 32, 10);
    let r20 = crate::summarize("resnet20", &Params::from_yaml("{}").unwrap(), &s).unwrap();
    assert_eq!(r20.params, 272_474);
    assert_eq!(r20.macs, 40_813_184);
    assert_eq!(r20.features[2], ("stage3".to_string(), vec![1, 64, 8, 8]));
    let small = spec(1, 28, 10);
    for name in [
        "small-cnn",
        "resnet8",
        "wrn",
        "vgg-cifar",
        "shufflenetv2-cifar",
    ] {
        let m = crate::summarize(name, &Params::from_yaml("{}").unwrap(), &small).unwrap();
        assert!(
            m.params > 0 && m.macs > 0 && !m.features.is_empty(),
            "{name}"
        );
    }
    assert!(crate::summarize("resnet21", &Params::from_yaml("{}").unwrap(), &s).is_err());
}
