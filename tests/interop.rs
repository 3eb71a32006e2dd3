//! What leaves rolekd for the tools users already have: TensorBoard event files read back
//! by TensorBoard's own reader, the run-level `metrics.csv`, `provenance.json`, and the
//! beyond-top-1 figures (top-5, ECE, teacher agreement) of training and `evaluate`.

mod common;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// The tiny pipeline plus a two-member search and an `evaluate` that compares the
/// distilled student with its teacher.
fn pipeline() -> String {
    let mut p = tiny_pipeline(2);
    p.push_str(
        "    teacher: ${teacher.checkpoint}
  search:
    kind: search
    role: teacher
    train_size: 300
    val_size: 200
    workers: 1
    strategy: {type: pba, population: 2, interval: 1}
    trial:
      model: {type: small-cnn, channels: [4, 8]}
      epochs: 2
      batch_size: 50
",
    );
    p
}

type Scalars = BTreeMap<String, BTreeMap<String, Vec<(i64, f64)>>>;

fn read_with_tensorboard(run_dir: &Path) -> Scalars {
    let python = pyvenv::tensorboard_python();
    let o = Command::new(python)
        .arg(repo().join("tests/python/tb_scalars.py"))
        .arg(run_dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: BTreeMap<String, BTreeMap<String, Vec<(i64, f64)>>> =
        serde_json::from_slice(&o.stdout).unwrap();
    v
}

fn metrics(stage_dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(stage_dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    // Event files hold f32.
    (a - b).abs() <= 1e-6 * b.abs().max(1.0)
}

#[test]
fn tensorboard_reads_back_every_stage_and_member() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "p.yaml", &pipeline());
    let o = run(d.path(), &[f.to_str().unwrap(), "--run-dir", "run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let run_dir = d.path().join("run");
    let tb = read_with_tensorboard(&run_dir);

    // Every trained stage: each epoch's figures, equal to metrics.jsonl.
    for stage in ["teacher", "student_alone", "student_kd"] {
        let scalars = &tb[stage];
        let m = metrics(&run_dir.join(stage));
        assert_eq!(m.len(), 2);
        for (tag, key) in [
            ("accuracy/train", "train_acc"),
            ("accuracy/test", "test_acc"),
            ("accuracy/test_top5", "test_top5"),
            ("calibration/test_ece", "test_ece"),
            ("lr", "lr"),
            ("speed/images_per_s", "images_per_s"),
        ] {
            let got = &scalars[tag];
            assert_eq!(got.len(), 2, "{stage} {tag}: {got:?}");
            for (i, e) in m.iter().enumerate() {
                assert_eq!(got[i].0, e["epoch"].as_i64().unwrap());
                assert!(close(got[i].1, e[key].as_f64().unwrap()), "{stage} {tag}");
            }
        }
        assert!(close(
            scalars["loss/total"][1].1,
            m[1]["loss"]["total"].as_f64().unwrap()
        ));
    }
    // The distilled student: agreement with its teacher and the KD term.
    let kd = &tb["student_kd"];
    assert!(
        kd.contains_key("agreement/test") && kd.contains_key("loss/kd"),
        "{kd:?}"
    );
    assert!(!tb["student_alone"].contains_key("agreement/test"));

    // The search: per member, reward and policy strength at every epoch; the trials'
    // own trainer figures beside them.
    let search = &tb["search"];
    for k in 0..2 {
        for what in ["reward", "policy_strength", "train_acc", "loss"] {
            let tag = format!("member_{k}/{what}");
            assert_eq!(search[&tag].len(), 2, "{tag}: {search:?}");
        }
        let strength = &search[&format!("member_{k}/policy_strength")];
        assert!(strength.iter().all(|(_, v)| (0.0..=1.0).contains(v)));
    }
    let results = results_by_member_epoch(&run_dir.join("search"));
    assert!(close(search["member_1/reward"][1].1, results[&(1, 2)]));
    // Each picture's data beside it: rewards, the schedule, the run's curves.
    let rewards = std::fs::read_to_string(run_dir.join("search/rewards.csv")).unwrap();
    assert_eq!(rewards.lines().next(), Some("member,epoch,reward"));
    assert_eq!(rewards.lines().count(), 1 + results.len(), "{rewards}");
    let schedule = std::fs::read_to_string(run_dir.join("search/schedule.csv")).unwrap();
    assert_eq!(
        schedule.lines().next(),
        Some("epoch,op,probability,magnitude")
    );
    let curves = std::fs::read_to_string(run_dir.join("curves.csv")).unwrap();
    let teacher_rows = curves.lines().filter(|l| l.starts_with("teacher,")).count();
    assert_eq!(teacher_rows, 2, "{curves}");
    let svg = std::fs::read_to_string(run_dir.join("curves.svg")).unwrap();
    assert_eq!(svg.matches("<polyline").count(), 3, "{svg}");
    assert!(
        tb.keys().any(|k| k.starts_with("search/trials/")),
        "{:?}",
        tb.keys()
    );
}

#[test]
fn run_root_has_metrics_csv_and_provenance_and_evaluate_reports_beyond_top1() {
    let d = tempfile::tempdir().unwrap();
    let f = write(
        d.path(),
        "p.yaml",
        &tiny_pipeline(1).replace(
            "    checkpoint: ${student_kd.checkpoint}\n",
            "    checkpoint: ${student_kd.checkpoint}\n    teacher: ${teacher.checkpoint}\n",
        ),
    );
    let o = run(d.path(), &[f.to_str().unwrap(), "--run-dir", "run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let run_dir = d.path().join("run");

    // metrics.csv: one row per stage epoch, the loss terms as columns.
    let csv = std::fs::read_to_string(run_dir.join("metrics.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    for c in [
        "seed",
        "stage",
        "epoch",
        "test_acc",
        "test_ece",
        "test_agreement",
        "loss.kd",
        "loss.ce",
    ] {
        assert!(header.contains(&c), "{header:?}");
    }
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let stages: Vec<&str> = rows.iter().map(|r| r[1]).collect();
    assert_eq!(stages, ["student_alone", "student_kd", "teacher"], "{csv}");
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let kd_row = &rows[1];
    let m = &metrics(&run_dir.join("student_kd"))[0];
    assert_eq!(kd_row[col("seed")], "3");
    let test_acc: f64 = kd_row[col("test_acc")].parse().unwrap();
    assert_eq!(test_acc, m["test_acc"].as_f64().unwrap());
    assert!(!kd_row[col("test_agreement")].is_empty());
    assert!(rows[0][col("test_agreement")].is_empty());

    // provenance.json: this binary, its command line, the libtorch it runs on.
    let p: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("provenance.json")).unwrap())
            .unwrap();
    let inv = &p["invocations"][0];
    assert_eq!(inv["tool"], "rolekd-run");
    assert_eq!(inv["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(inv["device"], "Cpu");
    assert!(
        inv["libtorch"].as_str().unwrap().starts_with("2.11"),
        "{inv}"
    );
    assert!(
        inv["command_line"][1].as_str().unwrap().ends_with("p.yaml"),
        "{inv}"
    );
    assert!(inv["cuda_available"].is_boolean() && inv["host"].is_string());

    // evaluate with a teacher: ECE, top-5 and agreement, consistent with the student's own
    // training record (same checkpoint, same test split).
    let s = stage_summary(&run_dir.join("check"));
    let acc = s["test_acc"].as_f64().unwrap();
    assert!(close(acc, m["test_acc"].as_f64().unwrap()), "{s}");
    assert!(
        close(
            s["test_ece"].as_f64().unwrap(),
            m["test_ece"].as_f64().unwrap()
        ),
        "{s}"
    );
    assert!(
        close(
            s["test_agreement"].as_f64().unwrap(),
            m["test_agreement"].as_f64().unwrap()
        ),
        "{s}"
    );
    let top5 = s["test_top5"].as_f64().unwrap();
    assert!(top5 >= acc && top5 <= 1.0, "{s}");

    // A rerun reuses every stage and records a second invocation.
    let o = run(d.path(), &[f.to_str().unwrap(), "--run-dir", "run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("provenance.json")).unwrap())
            .unwrap();
    assert_eq!(p["invocations"].as_array().unwrap().len(), 2);

    // The report shows the beyond-top-1 table.
    let report = std::fs::read_to_string(run_dir.join("report.md")).unwrap();
    assert!(report.contains("Beyond top-1"), "{report}");
}

/// Runs tests/python/torch_roundtrip.py with the project's torch venv.
fn torch_script(args: &[&str]) -> String {
    let o = Command::new(pyvenv::torch_python())
        .arg(repo().join("tests/python/torch_roundtrip.py"))
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

fn max_abs_diff(a: &Path, b: &Path) -> f64 {
    let read = |p: &Path| {
        tch::Tensor::read_safetensors(p)
            .unwrap()
            .into_iter()
            .find(|(n, _)| n == "logits")
            .unwrap()
            .1
    };
    (read(a) - read(b)).abs().max().double_value(&[])
}

/// PyTorch builds `arch` (python/rolekd_models.py, written from RepDistiller's forward
/// passes) and saves it three ways; rolekd imports each as `model` and must give PyTorch's
/// logits on 32x32 images; rolekd's export (state_dict and TorchScript) must give rolekd's
/// logits back in PyTorch. `abits` < 32: a DoReFa model (imported weights, quantised by
/// rolekd), so only the export direction is compared.
fn round_trip(arch: &str, model: &str, abits: u32) {
    round_trip_at(arch, model, abits, 32);
}

/// [`round_trip`] on `size` x `size` images.
fn round_trip_at(arch: &str, model: &str, abits: u32, size: u32) {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let ds = dir.to_str().unwrap();
    let size_arg = format!("{size}x{size}");
    torch_script(&["make", arch, "10", ds, &size.to_string()]);
    // Every file kind for the small models; the wrapped .pth alone for ResNet-18, VGG-13,
    // the 64x64 runs and DoReFa (the file reading is the same code; the test time is not).
    let few = abits < 32 || size != 32 || arch.contains("resnet18") || arch == "vgg13";
    let files: &[&str] = if few {
        &["wrapped.pth"]
    } else {
        &["wrapped.pth", "plain.pth", "sd.safetensors"]
    };
    for (i, file) in files.iter().enumerate() {
        let ck = format!("ck{i}");
        let from = if i == 0 { "repdistiller" } else { "pytorch" };
        let o = run(
            dir,
            &[
                "import",
                &format!("{ds}/{file}"),
                "--from",
                from,
                "--model",
                model,
                "--size",
                &size_arg,
                "-o",
                &ck,
            ],
        );
        assert!(o.status.success(), "{file}: {}", stderr(&o));
        let o = run(
            dir,
            &[
                "logits",
                &ck,
                "--input",
                "inputs.safetensors",
                "-o",
                "rolekd_logits.safetensors",
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        if abits >= 32 {
            let diff = max_abs_diff(
                &dir.join("rolekd_logits.safetensors"),
                &dir.join("expected.safetensors"),
            );
            assert!(
                diff < 1e-5,
                "{arch} at {size_arg} from {file}: logits differ by {diff}"
            );
        }
    }
    // The last import is also what is exported (its logits are in rolekd_logits).
    let ck = format!("ck{}", files.len() - 1);
    for (format, out) in [
        ("state-dict", "student.safetensors"),
        ("torchscript", "student.pt"),
    ] {
        let o = run(dir, &["export", &ck, "--format", format, "-o", out]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let out = torch_script(&[
        "check",
        arch,
        "10",
        ds,
        &format!("{ds}/student.safetensors"),
        &format!("{ds}/student.pt"),
        &abits.to_string(),
    ]);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    for k in ["state_dict_max_diff", "torchscript_max_diff"] {
        let diff = v[k].as_f64().unwrap();
        assert!(diff < 1e-5, "{arch} at {size_arg}: {k} = {diff} ({v})");
    }
}

#[test]
fn repdistiller_resnet8x4_round_trips_through_pytorch() {
    round_trip("resnet8x4", "{type: resnet8x4}", 32);
}

#[test]
fn cifar_resnet20_resnet18_wrn_and_vgg_round_trip_through_pytorch() {
    round_trip("resnet20", "{type: resnet20}", 32);
    round_trip("resnet18_cifar", "{type: resnet18-cifar}", 32);
    round_trip("wrn_16_2", "{type: wrn, depth: 16, widen_factor: 2}", 32);
    round_trip("vgg8", "{type: vgg-cifar, depth: 8}", 32);
}

/// RepDistiller's VGG max-pools after block3 only for 64-pixel-high inputs: VGG-8 and
/// VGG-13 at 32x32 (three max-pools, block4 at 4x4) and VGG-8 at 64x64 (four).
#[test]
fn repdistiller_vgg_round_trips_at_32_and_64_pixels() {
    round_trip("vgg13", "{type: vgg-cifar, depth: 13}", 32);
    round_trip_at("vgg8", "{type: vgg-cifar, depth: 8}", 32, 64);
}

/// A VGG checkpoint written before the pooling fix (model.json without `model_revision`)
/// would load and compute another function: it is refused, by name.
#[test]
fn vgg_checkpoints_from_before_the_pooling_fix_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    torch_script(&["make", "vgg8", "10", dir.to_str().unwrap()]);
    let import = [
        "import",
        "plain.pth",
        "--model",
        "{type: vgg-cifar, depth: 8}",
    ];
    let o = run(dir, &[&import[..], &["-o", "ck"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    let meta_path = dir.join("ck/model.json");
    let mut meta: Value =
        serde_json::from_str(&std::fs::read_to_string(&meta_path).unwrap()).unwrap();
    assert_eq!(meta["model_revision"], 2, "{meta}");
    meta.as_object_mut().unwrap().remove("model_revision");
    std::fs::write(&meta_path, meta.to_string()).unwrap();
    let o = run(dir, &["export", "ck", "-o", "sd.safetensors"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("`vgg-cifar` computed another function (model revision 1, now 2"),
        "{e}"
    );
}

#[test]
fn torchvision_resnet18_round_trips_through_pytorch() {
    // torchvision's own class (the project's torch venv has torchvision 0.26).
    round_trip("torchvision.resnet18", "{type: resnet18}", 32);
}

#[test]
fn dorefa_student_exports_with_its_quantisers() {
    round_trip(
        "resnet8",
        "{type: resnet8, quant: {weight_bits: 2, activation_bits: 2}}",
        2,
    );
}

#[test]
fn bad_pytorch_files_get_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let ds = dir.to_str().unwrap();
    torch_script(&["make", "resnet20", "10", ds]);
    let import = |file: &str, model: &str| {
        let o = run(dir, &["import", file, "--model", model, "-o", "ck"]);
        assert!(!o.status.success(), "{file} imported");
        assert!(!stderr(&o).contains("internal error"), "{}", stderr(&o));
        stderr(&o)
    };
    // Truncated: the zip's directory is at its end.
    let bytes = std::fs::read(dir.join("plain.pth")).unwrap();
    std::fs::write(dir.join("cut.pth"), &bytes[..bytes.len() / 2]).unwrap();
    let e = import("cut.pth", "{type: resnet20}");
    assert!(e.contains("cut.pth") && e.contains("truncated"), "{e}");
    // Another model's state_dict: the keys and shapes that do not fit are named.
    let e = import("plain.pth", "{type: resnet8x4}");
    assert!(e.contains("not a state_dict of this resnet8x4"), "{e}");
    assert!(e.contains("missing keys: layer1.0.downsample"), "{e}");
    assert!(
        e.contains("conv1.weight is [16, 3, 3, 3], resnet8x4 needs [32, 3, 3, 3]"),
        "{e}"
    );
    // A model type without a mapping, and a misspelt one.
    let e = import("plain.pth", "{type: resnet2O}");
    assert!(e.contains("did you mean `resnet20`"), "{e}");
    // Not a checkpoint at all.
    std::fs::write(dir.join("notes.pth"), "hello").unwrap();
    let e = import("notes.pth", "{type: resnet20}");
    assert!(e.contains("not a torch.save archive"), "{e}");
    // No crash and no file written for any of them.
    assert!(!dir.join("ck/model.json").exists());
}

/// CIFAR-100 binary records (coarse label, fine label, R, G, B planes of 32x32): each
/// class a different colour and stripe pattern plus a little per-image variation.
fn cifar100_records(n: usize, salt: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 3074);
    for k in 0..n {
        let class = (k * 7 + salt) % 100;
        out.push((class / 5) as u8);
        out.push(class as u8);
        for c in 0..3 {
            for y in 0..32 {
                for x in 0..32 {
                    let stripe = if (x + y * (class % 3 + 1)).is_multiple_of(class % 5 + 2) {
                        80
                    } else {
                        0
                    };
                    let v = (class * 37 * (c + 1) + stripe + (k * 13 + x * y) % 23) % 256;
                    out.push(v as u8);
                }
            }
        }
    }
    out
}

/// The records of a CIFAR-100 binary file as the pipeline normalises them (its
/// `normalize:`), written for `rolekd-run logits`; and their fine labels.
fn test_records_normalised(bin: &Path, dir: &Path) -> (std::path::PathBuf, Vec<i64>) {
    let bytes = std::fs::read(bin).unwrap();
    let (mean, std) = ([0.5071f32, 0.4867, 0.4408], [0.2675f32, 0.2565, 0.2761]);
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for rec in bytes.chunks_exact(3074) {
        labels.push(rec[1] as i64);
        for (k, &v) in rec[2..].iter().enumerate() {
            let c = k / 1024;
            pixels.push((v as f32 / 255.0 - mean[c]) / std[c]);
        }
    }
    let n = labels.len() as i64;
    let images = tch::Tensor::from_slice(&pixels).view([n, 3, 32, 32]);
    let path = dir.join("test-images.safetensors");
    tch::Tensor::write_safetensors(&[("images", &images)], &path).unwrap();
    (path, labels)
}

#[test]
fn cifar100_pipeline_runs_from_imported_teachers_on_a_synthetic_slice() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let data = dir.join("data/cifar-100-binary");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("train.bin"), cifar100_records(300, 0)).unwrap();
    std::fs::write(data.join("test.bin"), cifar100_records(100, 3)).unwrap();
    // The teachers, saved by PyTorch as RepDistiller saves its checkpoints.
    for (arch, sub) in [
        // Smaller stand-ins for the two teachers (the graph, not their size, is under
        // test): resnet8x4 for resnet32x4, resnet20 for resnet56 (`--set` below).
        ("resnet8x4", "resnet32x4_vanilla"),
        ("resnet20", "resnet56_vanilla"),
    ] {
        let t = dir.join("teachers").join(sub);
        std::fs::create_dir_all(&t).unwrap();
        torch_script(&["make", arch, "100", t.to_str().unwrap()]);
        std::fs::rename(t.join("wrapped.pth"), t.join("ckpt_epoch_240.pth")).unwrap();
    }
    let pipeline = repo().join("pipelines/cifar100-kd.yaml");
    let mut args: Vec<String> = vec![
        pipeline.to_str().unwrap().into(),
        "--run-dir".into(),
        "run".into(),
        "--set".into(),
        "device=cpu".into(),
        "--set".into(),
        "data.val_size=60".into(),
    ];
    let tiny = [
        "stages.resnet32x4.model={type: resnet8x4}",
        "stages.resnet56.model={type: resnet20}",
        "stages.resnet8x4_alone.epochs=1",
        "stages.resnet8x4_kd.epochs=1",
        "stages.resnet8x4_role_wise.epochs=2",
        "stages.resnet20_alone.epochs=1",
        "stages.resnet20_kd.epochs=1",
        "stages.resnet8x4_search.train_size=140",
        "stages.resnet8x4_search.val_size=60",
        "stages.resnet8x4_search.workers=1",
        "stages.resnet8x4_search.strategy.population=2",
        "stages.resnet8x4_search.strategy.interval=1",
        "stages.resnet8x4_search.trial.epochs=2",
    ];
    for s in tiny {
        args.push("--set".into());
        args.push(s.into());
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(dir, &argv);
    assert!(o.status.success(), "{}", stderr(&o));
    let run_dir = dir.join("run");
    // The imported teachers were evaluated on the test split: their accuracy is the share
    // of the 100 test records whose label is the argmax of the checkpoint's logits, as
    // `rolekd-run logits` computes them on the records normalised by hand.
    let test = test_records_normalised(&data.join("test.bin"), dir);
    for t in ["resnet32x4", "resnet56"] {
        let s = stage_summary(&run_dir.join(t));
        let acc = s["final_test_acc"].as_f64().unwrap();
        let ck = format!("run/{t}/checkpoint");
        let out = format!("{t}-logits.safetensors");
        let o = run(
            dir,
            &[
                "logits",
                &ck,
                "--input",
                test.0.to_str().unwrap(),
                "-o",
                &out,
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let logits = tch::Tensor::read_safetensors(dir.join(&out)).unwrap();
        let pred = logits[0].1.argmax(-1, false);
        let hits = pred
            .eq_tensor(&tch::Tensor::from_slice(&test.1))
            .sum(tch::Kind::Int64);
        let by_hand = hits.int64_value(&[]) as f64 / test.1.len() as f64;
        assert!(
            (acc - by_hand).abs() < 1e-12,
            "{t}: stage {acc}, by hand {by_hand}"
        );
    }
    for st in [
        "resnet8x4_alone",
        "resnet8x4_kd",
        "resnet8x4_role_wise",
        "resnet20_alone",
        "resnet20_kd",
    ] {
        let m = metrics(&run_dir.join(st));
        assert!(!m.is_empty(), "{st}");
        let last = m.last().unwrap();
        assert!(
            last["loss"]["total"].as_f64().unwrap().is_finite(),
            "{st}: {last}"
        );
        assert!(last["test_top5"].as_f64().unwrap() >= last["test_acc"].as_f64().unwrap());
    }
    // The distilled students used their teachers: a KD term and agreement figures.
    for st in ["resnet8x4_kd", "resnet20_kd", "resnet8x4_role_wise"] {
        let last = metrics(&run_dir.join(st)).pop().unwrap();
        assert!(last["loss"]["kd"].as_f64().unwrap() > 0.0, "{st}: {last}");
        assert!(last["test_agreement"].is_number(), "{st}: {last}");
    }
    assert!(run_dir.join("resnet8x4_search/schedule.json").is_file());
    // A student exports for PyTorch with 100 classes.
    let o = run(
        dir,
        &[
            "export",
            "run/resnet20_kd/checkpoint",
            "-o",
            "resnet20.safetensors",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // The file holds PyTorch's names and shapes for 100 classes (resnet20: 64 features).
    let sd = tch::Tensor::read_safetensors(dir.join("resnet20.safetensors")).unwrap();
    let fc = sd
        .iter()
        .find(|(k, _)| k == "fc.weight")
        .map(|(_, v)| v.size());
    assert_eq!(fc, Some(vec![100, 64]));
    assert!(sd.iter().any(|(k, _)| k == "layer3.2.bn2.running_var"));
}
