//! Dynamic plugins through the real `rolekd-run`: the example cdylib loads, lists and
//! trains; libraries with a wrong magic number, ABI version, fingerprint or layout are
//! refused before any of their code is called; missing files, non-libraries and name
//! clashes are clear errors. The static example's binary runs its pipeline.
//!
//! The example crates are built by this test (`cargo build -p ...`, a no-op when they are
//! fresh); the refused libraries are tiny C libraries compiled with `cc`.

mod common;

use common::{bin, repo, run, stderr, stdout, write};
use rolekd_core::dynamic::{full_fingerprint, ABI_VERSION, FINGERPRINT, LAYOUT_DIGEST, MAGIC};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const LIB_FILE: &str = "libexample_dynamic_plugin.so";

/// Where cargo puts this profile's artifacts (next to `rolekd-run`).
fn profile_dir() -> PathBuf {
    bin().parent().unwrap().to_path_buf()
}

/// Builds both example crates once per test process, in one cargo invocation (so they
/// share one feature resolution), for the profile `rolekd-run` was built with.
fn build_examples() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
        let dir = profile_dir();
        let mut cmd = Command::new(cargo);
        cmd.current_dir(repo()).args([
            "build",
            "--quiet",
            "-p",
            "example-dynamic-plugin",
            "-p",
            "example-static-plugin",
        ]);
        if dir.file_name().and_then(|n| n.to_str()) == Some("release") {
            cmd.arg("--release");
        }
        if let Some(target_dir) = dir.parent() {
            cmd.arg("--target-dir").arg(target_dir);
        }
        let out = cmd.output().expect("cargo starts");
        assert!(
            out.status.success(),
            "building the examples failed:\n{}",
            stderr(&out)
        );
    });
}

fn example_lib() -> PathBuf {
    build_examples();
    let lib = profile_dir().join(LIB_FILE);
    assert!(lib.exists(), "{} was not built", lib.display());
    lib
}

fn run_ok(cwd: &Path, args: &[&str]) -> Output {
    let out = run(cwd, args);
    assert!(
        out.status.success(),
        "rolekd-run {args:?} failed:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

/// Exit code 1 (or 2 when `config`), one clear message, no crash and no panic.
fn refused(out: &Output, code: i32) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "stderr:\n{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(
        !err.contains("internal error") && !err.contains("panicked"),
        "{err}"
    );
    err
}

#[test]
fn dynamic_example_loads_lists_and_trains() {
    let lib = example_lib();
    let canonical = lib.canonicalize().unwrap();
    let tmp = tempfile::tempdir().unwrap();

    let out = run_ok(tmp.path(), &["plugins", "--plugin", lib.to_str().unwrap()]);
    let listing = stdout(&out);
    for name in ["mlp", "cosine-kd", "gaussian-noise", "noisy"] {
        let line = listing
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("`{name}` not listed:\n{listing}"));
        assert!(
            line.contains(&format!("library {}", canonical.display())),
            "{line}"
        );
    }
    assert!(listing.contains("built-in (rolekd-kd)"), "{listing}");

    // The example pipeline itself; --plugin replaces its `plugins:` entry (same file
    // name), so this works for any profile and target directory.
    let pipeline = repo().join("examples/dynamic-plugin/pipeline.yaml");
    let run_dir = tmp.path().join("run");
    let out = run_ok(
        tmp.path(),
        &[
            pipeline.to_str().unwrap(),
            "--plugin",
            lib.to_str().unwrap(),
            "--run-dir",
            run_dir.to_str().unwrap(),
            "--set",
            "device=cpu",
            "-q",
        ],
    );
    let summary = stdout(&out);
    assert!(summary.contains("| student | distill |"), "{summary}");
    let metrics = std::fs::read_to_string(run_dir.join("student/metrics.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(metrics.lines().last().unwrap()).unwrap();
    let acc = last["test_acc"].as_f64().unwrap();
    assert!(acc > 0.2, "the mlp student learned nothing: {last}");
    assert!(run_dir.join("student/checkpoint/model.json").exists());
}

#[test]
fn plugins_entries_resolve_against_the_pipeline_file() {
    let lib = example_lib();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("libs")).unwrap();
    std::fs::create_dir_all(tmp.path().join("pipelines")).unwrap();
    std::os::unix::fs::symlink(&lib, tmp.path().join("libs").join(LIB_FILE)).unwrap();
    let yaml = format!(
        "name: rel\ndevice: cpu\nplugins: [../libs/{LIB_FILE}]\n{}stages:
  s:
    kind: train
    model: {{type: mlp, hidden: [16]}}
    augment: {{type: noisy, level: 1}}
    epochs: 1
",
        common::TINY_DATA
    );
    let file = write(&tmp.path().join("pipelines"), "rel.yaml", &yaml);
    // Run from elsewhere: the entry is relative to the YAML file, not the working dir.
    let out = run_ok(
        &repo(),
        &[
            file.to_str().unwrap(),
            "--dry-run",
            "--run-dir",
            tmp.path().join("run").to_str().unwrap(),
        ],
    );
    assert!(
        stdout(&out).contains("s (train): will run"),
        "{}",
        stdout(&out)
    );

    // A missing entry is located in the YAML (exit 2, bad input).
    let yaml = yaml.replace("../libs/", "../nowhere/");
    let file = write(&tmp.path().join("pipelines"), "missing.yaml", &yaml);
    let err = refused(&run(tmp.path(), &[file.to_str().unwrap(), "--dry-run"]), 2);
    assert!(err.contains("missing.yaml:3:"), "{err}");
    assert!(err.contains("at `plugins[0]`"), "{err}");
    assert!(err.contains("no such file"), "{err}");
}

/// A C library exporting a declaration with the given values, whose registration entry
/// point aborts the process: the host must refuse it without ever calling it.
fn c_plugin(
    dir: &Path,
    name: &str,
    magic: u64,
    abi: u32,
    fingerprint: &str,
    digest: u64,
) -> PathBuf {
    let src = format!(
        r#"#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
struct decl {{
    uint64_t magic; uint32_t abi_version; uint32_t reserved;
    const char *fingerprint; size_t fingerprint_len;
    const char *crate_name; size_t crate_name_len;
    uint64_t layout_digest;
}};
static const char FP[] = "{fp}";
static const char CRATE[] = "hand-written";
const struct decl ROLEKD_PLUGIN_DECLARATION = {{
    {magic}ULL, {abi}u, 0u, FP, sizeof FP - 1, CRATE, sizeof CRATE - 1, {digest}ULL
}};
uint32_t rolekd_plugin_register(const void *registrar) {{ (void)registrar; abort(); }}
"#,
        fp = fingerprint.replace('\\', "\\\\").replace('"', "\\\"")
    );
    compile_c(dir, name, &src)
}

fn compile_c(dir: &Path, name: &str, src: &str) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, src).unwrap();
    let so = dir.join(format!("lib{name}.so"));
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&c)
        .output()
        .expect("a C compiler (cc)");
    assert!(out.status.success(), "cc failed:\n{}", stderr(&out));
    so
}

fn list_with(dir: &Path, lib: &Path) -> Output {
    run(dir, &["plugins", "--plugin", lib.to_str().unwrap()])
}

#[test]
fn mismatched_libraries_are_refused_before_any_call() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();

    let lib = c_plugin(
        d,
        "bad_magic",
        0xdead_beef,
        ABI_VERSION,
        FINGERPRINT,
        LAYOUT_DIGEST,
    );
    let err = refused(&list_with(d, &lib), 1);
    assert!(
        err.contains("--plugin") && err.contains("libbad_magic.so"),
        "{err}"
    );
    assert!(err.contains("not a rolekd plugin"), "{err}");
    assert!(err.contains("0x00000000deadbeef"), "library's magic: {err}");
    assert!(
        err.contains(&format!("{MAGIC:#018x}")),
        "host's magic: {err}"
    );
    assert!(err.contains("cargo build"), "how to rebuild: {err}");

    let lib = c_plugin(
        d,
        "bad_abi",
        MAGIC,
        ABI_VERSION + 41,
        FINGERPRINT,
        LAYOUT_DIGEST,
    );
    let err = refused(&list_with(d, &lib), 1);
    assert!(
        err.contains(&format!("ABI version {}", ABI_VERSION + 41)),
        "library's ABI: {err}"
    );
    assert!(
        err.contains(&format!("speaks version {ABI_VERSION}")),
        "host's ABI: {err}"
    );
    assert!(err.contains("cargo build"), "{err}");

    let other = FINGERPRINT
        .replace("rustc=rustc ", "rustc=rustc 1.0.0-old ")
        .replace("tch=", "tch=0.1.0-");
    let lib = c_plugin(
        d,
        "bad_fingerprint",
        MAGIC,
        ABI_VERSION,
        &other,
        LAYOUT_DIGEST,
    );
    let err = refused(&list_with(d, &lib), 1);
    assert!(
        err.contains("built differently (crate hand-written)"),
        "{err}"
    );
    let host_rustc = FINGERPRINT
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("rustc=");
    assert!(
        err.contains(&format!("rustc: this rolekd-run has `{host_rustc}`")),
        "{err}"
    );
    assert!(err.contains("the library has `rustc 1.0.0-old "), "{err}");
    assert!(
        err.contains("tch: this rolekd-run has `0.24.0`, the library has `0.1.0-0.24.0`"),
        "{err}"
    );
    assert!(
        !err.contains("target:"),
        "only the fields that differ: {err}"
    );
    assert!(err.contains("-p hand-written"), "how to rebuild: {err}");

    let lib = c_plugin(
        d,
        "bad_layout",
        MAGIC,
        ABI_VERSION,
        FINGERPRINT,
        LAYOUT_DIGEST ^ 0xff,
    );
    let err = refused(&list_with(d, &lib), 1);
    let host = full_fingerprint(FINGERPRINT, LAYOUT_DIGEST);
    assert!(err.contains(host.rsplit('=').next().unwrap()), "{err}");
    assert!(err.contains("cargo features"), "{err}");

    // A shared library that is not a plugin at all.
    let lib = compile_c(d, "plain", "int answer(void) { return 42; }\n");
    let err = refused(&list_with(d, &lib), 1);
    assert!(
        err.contains("exports no `ROLEKD_PLUGIN_DECLARATION`"),
        "{err}"
    );
    assert!(err.contains("export_plugins!"), "{err}");

    // From the YAML: the same refusal, located, exit 2.
    let lib = c_plugin(d, "bad_abi_yaml", MAGIC, 0, FINGERPRINT, LAYOUT_DIGEST);
    let yaml = format!(
        "name: y\nplugins:\n  - {}\n{}stages:\n  s: {{kind: train, model: small-cnn}}\n",
        lib.display(),
        common::TINY_DATA
    );
    let file = write(d, "bad.yaml", &yaml);
    let err = refused(&run(d, &[file.to_str().unwrap(), "--dry-run"]), 2);
    assert!(err.contains("bad.yaml:3:5: at `plugins[0]`"), "{err}");
    assert!(err.contains("ABI version 0"), "{err}");
}

#[test]
fn missing_files_and_non_libraries_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let err = refused(&run(d, &["plugins", "--plugin", "libnowhere.so"]), 1);
    assert!(
        err.contains("--plugin libnowhere.so: no such file"),
        "{err}"
    );
    let text = write(d, "libx.so", "this is not a shared library\n");
    let err = refused(&list_with(d, &text), 1);
    assert!(
        err.contains("libx.so: not a loadable shared library"),
        "{err}"
    );
    let err = refused(&run(d, &["plugins", "--plugin", d.to_str().unwrap()]), 1);
    assert!(err.contains("is a directory"), "{err}");
    // The same checks on a run, before anything is built.
    let file = write(
        d,
        "p.yaml",
        &format!(
            "name: p\n{}stages:\n  s: {{kind: train, model: small-cnn}}\n",
            common::TINY_DATA
        ),
    );
    let err = refused(
        &run(
            d,
            &[file.to_str().unwrap(), "--plugin", "libx.so", "--dry-run"],
        ),
        1,
    );
    assert!(err.contains("not a loadable shared library"), "{err}");
}

#[test]
fn name_clashes_name_both_sources() {
    let lib = example_lib();
    let canonical = lib.canonicalize().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let l = lib.to_str().unwrap();

    // The same library twice.
    let err = refused(&run(d, &["plugins", "--plugin", l, "--plugin", l]), 1);
    let src = format!("library {}", canonical.display());
    assert!(
        err.contains(&format!("is registered twice: by {src} and by {src}")),
        "{err}"
    );
    assert!(err.contains("loaded twice"), "{err}");

    // A second library registering the same names (a copy of the first).
    let copy = d.join("libexample_copy.so");
    std::fs::copy(&lib, &copy).unwrap();
    let err = refused(
        &run(
            d,
            &["plugins", "--plugin", l, "--plugin", copy.to_str().unwrap()],
        ),
        1,
    );
    assert!(
        err.contains(&format!(
            "is registered twice: by {src} and by library {}",
            copy.canonicalize().unwrap().display()
        )),
        "{err}"
    );
}

#[test]
fn static_example_binary_runs_its_pipeline() {
    build_examples();
    let exe = profile_dir().join("rolekd-static-example");
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(&exe)
        .arg("plugins")
        .output()
        .expect("the static example binary starts");
    let listing = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    for name in ["logit-mse", "salt-pepper", "op-list"] {
        assert!(
            listing
                .lines()
                .any(|l| l.split_whitespace().next() == Some(name)
                    && l.contains("crate example-static-plugin")),
            "`{name}` missing:\n{listing}"
        );
    }
    let run_dir = tmp.path().join("run");
    let out = Command::new(&exe)
        .arg(repo().join("examples/static-plugin/pipeline.yaml"))
        .args(["--set", "device=cpu", "-q", "--run-dir"])
        .arg(&run_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("| student | distill |"),
        "{}",
        stdout(&out)
    );
    assert!(run_dir.join("student/metrics.jsonl").exists());
    // It is rolekd-run with one more crate: the run writes the report, and every command
    // is there.
    assert!(run_dir.join("report.md").is_file(), "no report.md");
    for cmd in [
        "worker", "launch", "augment", "loss", "schedule", "report", "data", "import",
    ] {
        let out = Command::new(&exe).args([cmd, "--help"]).output().unwrap();
        assert!(out.status.success(), "`{cmd} --help`: {}", stderr(&out));
    }
    // SIGTERM saves and exits 130, as rolekd-run does (the stage's state is on disk).
    let term_dir = tmp.path().join("term");
    let mut child = Command::new(&exe)
        .arg(repo().join("examples/static-plugin/pipeline.yaml"))
        .args([
            "--set",
            "device=cpu",
            "--set",
            "stages.student.epochs=50",
            "-q",
            "--run-dir",
        ])
        .arg(&term_dir)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let state = term_dir.join("student/state/latest.json");
    let t0 = std::time::Instant::now();
    while !state.exists() && t0.elapsed() < std::time::Duration::from_secs(120) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: signalling a child process this test started and still owns.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(state.is_file());
}

/// A search whose trials use a library's model, trained by two `launch local` worker
/// processes: the workers load the pipeline's `plugins:` as the run does (before, they
/// failed with "unknown model `mlp`" while the same search ran in one process).
#[test]
fn launch_local_workers_load_the_pipelines_plugins() {
    build_examples();
    let d = tempfile::tempdir().unwrap();
    let lib = profile_dir().join(LIB_FILE);
    let text = format!(
        "name: plugin-search\nseed: 2\ndevice: cpu\nplugins: ['{}']\n{}stages:
  search:
    kind: search
    role: teacher
    train_size: 300
    val_size: 200
    workers: 0
    strategy: {{type: pba, population: 2, interval: 1, quantile: 0.5}}
    trial:
      model: {{type: mlp, hidden: [32]}}
      epochs: 2
      batch_size: 50
      optimizer: {{type: sgd, lr: 0.05, momentum: 0.9}}
",
        lib.display(),
        common::TINY_DATA
    );
    let p = write(d.path(), "p.yaml", &text);
    let p = p.to_str().unwrap();
    let launch_log = d.path().join("launch.log");
    let mut launch = Command::new(bin())
        .args([
            "launch",
            "local",
            p,
            "--stage",
            "search",
            "--workers",
            "2",
            "--run-dir",
            "r",
        ])
        .current_dir(d.path())
        .stdout(std::fs::File::create(&launch_log).unwrap())
        .stderr(std::fs::File::create(d.path().join("launch.err")).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let o = run(d.path(), &[p, "--run-dir", "r"]);
    if !o.status.success() {
        let _ = launch.kill(); // its workers would wait for a search that never starts
    }
    let launched = launch.wait().unwrap();
    let log = std::fs::read_to_string(&launch_log).unwrap_or_default()
        + &std::fs::read_to_string(d.path().join("launch.err")).unwrap_or_default();
    assert!(o.status.success(), "{}\n{log}", stderr(&o));
    assert!(launched.success(), "{log}");
    assert_eq!(
        log.matches("nothing left in run `search`").count(),
        2,
        "{log}"
    );
    assert!(d.path().join("r/search/schedule.json").exists());
}

/// The quick checks of a new op and a new loss take `--plugin`: `augment apply` runs the
/// library's op, `loss eval` its loss.
#[test]
fn augment_apply_and_loss_eval_load_a_library() {
    build_examples();
    let d = tempfile::tempdir().unwrap();
    let lib = profile_dir().join(LIB_FILE);
    let lib = lib.to_str().unwrap();
    let input = d.path().join("in.png");
    let img = image::RgbImage::from_fn(16, 16, |x, y| {
        image::Rgb([(x * 16) as u8, (y * 16) as u8, 128])
    });
    img.save(&input).unwrap();
    let out = d.path().join("out.png");
    let args = [
        "augment",
        "apply",
        "--plugin",
        lib,
        "--op",
        "gaussian-noise",
        "--level",
        "9",
    ];
    let o = run(
        d.path(),
        &[&args[..], &[input.to_str().unwrap(), out.to_str().unwrap()]].concat(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let noisy = image::open(&out).unwrap().to_rgb8();
    assert_ne!(noisy, img, "the library's op changed nothing");
    // Without the library, the op is unknown: the flag is what made it work.
    let o = run(
        d.path(),
        &[
            &args[..2],
            &args[4..],
            &[input.to_str().unwrap(), out.to_str().unwrap()],
        ]
        .concat(),
    );
    assert!(
        !o.status.success() && stderr(&o).contains("gaussian-noise"),
        "{}",
        stderr(&o)
    );

    let inputs = d.path().join("batch.safetensors");
    let s = tch::Tensor::from_slice(&[2.0f32, 0.5, -1.0, 0.1, 1.5, 0.3]).view([2, 3]);
    let t = tch::Tensor::from_slice(&[1.0f32, 1.0, -0.5, 0.0, 2.0, 0.0]).view([2, 3]);
    let labels = tch::Tensor::from_slice(&[0i64, 1]);
    tch::Tensor::write_safetensors(
        &[
            ("student.logits", &s),
            ("teacher.logits", &t),
            ("labels", &labels),
        ],
        &inputs,
    )
    .unwrap();
    let o = run(
        d.path(),
        &[
            "loss",
            "eval",
            "--plugin",
            lib,
            "--loss",
            "{type: cosine-kd, temperature: 4}",
            "--inputs",
            inputs.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("\"loss\""), "{}", stdout(&o));
}
