//! `rolekd-run launch slurm|k8s`: the generated script and manifest, byte for byte against
//! tests/goldens/, on CPU and with GPUs (`ROLEKD_UPDATE_GOLDENS=1 cargo test --test launch`
//! rewrites them); the scripts checked by `bash -n` and `shellcheck`, the manifests parsed.

mod common;

use common::{repo, run, stderr, stdout, write};

const PIPELINE: &str = "name: cluster-demo
seed: 1
device: cpu
data: {type: fashion-mnist, train_size: 1000, test_size: 500}
stages:
  search:
    kind: search
    role: teacher
    workers: 0
    store: postgres://rolekd@db.example:5432/rolekd
    run: demo-search
    strategy: {type: pba, population: 8, interval: 2}
    trial:
      model: {type: small-cnn, channels: [4, 8]}
      epochs: 4
";

fn golden(name: &str, actual: &str) {
    let path = repo().join("tests/goldens").join(name);
    if std::env::var_os("ROLEKD_UPDATE_GOLDENS").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (ROLEKD_UPDATE_GOLDENS=1 writes it)",
            path.display()
        )
    });
    assert_eq!(actual, expected, "{} differs", path.display());
}

#[test]
fn slurm_script_matches_the_golden() {
    golden("launch-slurm.sh", &generate("slurm", "cpu", &[]));
}

#[test]
fn k8s_manifest_matches_the_golden() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "p.yaml", PIPELINE);
    let out = d.path().join("job.yaml");
    let o = run(
        d.path(),
        &[
            "launch",
            "k8s",
            p.to_str().unwrap(),
            "--stage",
            "search",
            "--workers",
            "3",
            "--image",
            "registry.example/rolekd:0.1",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    golden("launch-k8s.yaml", &std::fs::read_to_string(&out).unwrap());
}

/// `launch slurm|k8s` of the pipeline on `device` (its `device:` line replaced), with
/// `extra` arguments; returns the script or manifest.
fn generate(kind: &str, device: &str, extra: &[&str]) -> String {
    let d = tempfile::tempdir().unwrap();
    let text = PIPELINE.replace("device: cpu\n", &format!("device: {device}\n"));
    assert!(text.contains(&format!("device: {device}\n")), "{text}");
    let p = write(d.path(), "p.yaml", &text);
    let mut args = vec![
        "launch",
        kind,
        p.to_str().unwrap(),
        "--stage",
        "search",
        "--workers",
        "4",
    ];
    if kind == "k8s" {
        args.extend(["--image", "registry.example/rolekd:0.1"]);
    }
    args.extend(extra);
    let o = run(d.path(), &args);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

#[test]
fn slurm_workers_of_a_cuda_pipeline_request_a_gpu() {
    let script = generate("slurm", "cuda", &[]);
    golden("launch-slurm-gpu.sh", &script);
    // An explicit index is the pipeline's; a task uses the GPU Slurm gives it.
    assert_eq!(generate("slurm", "cuda:3", &[]), script);
    assert_eq!(
        generate("slurm", "cpu", &["--gpus-per-worker", "1"]),
        script
    );
    // `auto` requests none unless asked, and 0 turns a CUDA pipeline's request off.
    let cpu = std::fs::read_to_string(repo().join("tests/goldens/launch-slurm.sh")).unwrap();
    assert_eq!(generate("slurm", "auto", &[]), cpu);
    assert_eq!(generate("slurm", "cuda", &["--gpus-per-worker", "0"]), cpu);
    let two = generate("slurm", "cuda", &["--gpus-per-worker", "2"]);
    assert!(two.contains("#SBATCH --gres=gpu:2\n"), "{two}");
}

#[test]
fn k8s_workers_of_a_cuda_pipeline_request_a_gpu() {
    let job = generate("k8s", "cuda", &[]);
    golden("launch-k8s-gpu.yaml", &job);
    assert_eq!(generate("k8s", "cpu", &["--gpus-per-worker", "1"]), job);
    let cpu = generate("k8s", "cpu", &[]);
    assert!(
        !cpu.contains("nvidia.com/gpu") && !cpu.contains("--device"),
        "{cpu}"
    );
    assert_eq!(generate("k8s", "cuda", &["--gpus-per-worker", "0"]), cpu);
}

#[test]
fn a_bad_gpu_list_is_named_before_anything_runs() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "p.yaml", PIPELINE);
    for (gpus, says) in [
        ("0,,1", "entry 2 is empty"),
        ("0,x", "`x` is not a GPU id"),
        ("", "no GPU ids"),
    ] {
        let o = run(
            d.path(),
            &[
                "launch",
                "local",
                p.to_str().unwrap(),
                "--stage",
                "search",
                "--workers",
                "2",
                "--gpus",
                gpus,
            ],
        );
        assert_eq!(o.status.code(), Some(2), "--gpus {gpus:?}: {}", stderr(&o));
        let e = stderr(&o);
        assert!(
            e.contains("--gpus") && e.contains(says),
            "--gpus {gpus:?}: {e}"
        );
        assert!(!e.contains("panicked"), "{e}");
    }
}

#[test]
fn launch_checks_the_stage() {
    let d = tempfile::tempdir().unwrap();
    let p = write(d.path(), "p.yaml", PIPELINE);
    let o = run(
        d.path(),
        &[
            "launch",
            "slurm",
            p.to_str().unwrap(),
            "--stage",
            "nope",
            "--workers",
            "2",
        ],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no stage `nope`"), "{}", stderr(&o));
}

#[test]
fn a_bad_store_url_is_located_before_anything_runs() {
    let d = tempfile::tempdir().unwrap();
    let p = write(
        d.path(),
        "p.yaml",
        &PIPELINE.replace(
            "postgres://rolekd@db.example:5432/rolekd",
            "ftp://db.example/x",
        ),
    );
    let o = run(d.path(), &[p.to_str().unwrap(), "--dry-run"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("stages.search.store") && e.contains("not a population store"),
        "{e}"
    );
}

#[test]
fn a_bad_checkpoint_url_is_located_before_anything_runs() {
    let d = tempfile::tempdir().unwrap();
    let text = PIPELINE.replace(
        "    store: postgres://rolekd@db.example:5432/rolekd\n",
        "    store: postgres://rolekd@db.example:5432/rolekd\n    checkpoints: gs://bucket/x\n",
    );
    assert!(text.contains("gs://"), "the pipeline changed: {text}");
    let p = write(d.path(), "p.yaml", &text);
    let o = run(d.path(), &[p.to_str().unwrap(), "--dry-run"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("stages.search.checkpoints")
            && e.contains("not a checkpoint store")
            && e.contains("s3://BUCKET/PREFIX"),
        "{e}"
    );
}

/// Runs `program args... file` and fails with its output unless it exits 0.
fn check_with(program: &str, args: &[&str], file: &std::path::Path) {
    let o = std::process::Command::new(program)
        .args(args)
        .arg(file)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {program} ({e}); scripts/test.sh installs it (Debian: {program})")
        });
    assert!(
        o.status.success(),
        "{program} {args:?} {}:\n{}{}",
        file.display(),
        stdout(&o),
        stderr(&o)
    );
}

#[test]
fn slurm_scripts_pass_bash_n_and_shellcheck() {
    let d = tempfile::tempdir().unwrap();
    for (name, device) in [("cpu.sh", "cpu"), ("gpu.sh", "cuda")] {
        let f = write(d.path(), name, &generate("slurm", device, &[]));
        check_with("bash", &["-n"], &f);
        check_with("shellcheck", &["--shell=bash", "--severity=style"], &f);
    }
}

#[test]
fn k8s_manifests_parse_as_an_indexed_job_of_workers() {
    use serde::Deserialize;
    use serde_yaml_ng::Value;
    for (device, gpus) in [("cpu", None), ("cuda", Some(1))] {
        let text = generate("k8s", device, &[]);
        let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
            .map(|doc| Value::deserialize(doc).unwrap())
            .collect();
        assert_eq!(docs.len(), 1, "{text}");
        let job = &docs[0];
        assert_eq!(job["apiVersion"], "batch/v1");
        assert_eq!(job["kind"], "Job");
        let spec = &job["spec"];
        assert_eq!(spec["completionMode"], "Indexed");
        assert_eq!(spec["completions"], 4);
        assert_eq!(spec["parallelism"], 4);
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        let containers = pod["containers"].as_sequence().unwrap();
        assert_eq!(containers.len(), 1);
        let c = &containers[0];
        assert_eq!(c["image"], "registry.example/rolekd:0.1");
        let command: Vec<&str> = c["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            &command[..4],
            ["rolekd-run", "worker", "--run", "demo-search"]
        );
        let env: Vec<&str> = c["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap())
            .collect();
        assert!(env.contains(&"ROLEKD_STORE"), "{env:?}");
        match gpus {
            Some(n) => {
                assert_eq!(c["resources"]["limits"]["nvidia.com/gpu"], n);
                assert!(command.ends_with(&["--device", "cuda"]), "{command:?}");
            }
            None => assert!(c["resources"]["limits"]["nvidia.com/gpu"].is_null()),
        }
    }
}
