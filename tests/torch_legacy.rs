//! Legacy (pre-1.6) torch.save files, the format of RepDistiller's released teachers, read
//! without Python: PyTorch 2.11 writes them here (`_use_new_zipfile_serialization=False`)
//! with the values they hold beside them, and rolekd must read exactly those values.

mod common;
use common::*;
use rolekd_interop::torch_file::read_torch_file;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use tch::Tensor;

/// Runs tests/python/torch_legacy.py with the project's torch venv; returns its stdout.
fn torch_script(args: &[&str]) -> String {
    let o = Command::new(pyvenv::torch_python())
        .arg(repo().join("tests/python/torch_legacy.py"))
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

fn by_name(tensors: Vec<(String, Tensor)>) -> BTreeMap<String, Tensor> {
    tensors.into_iter().collect()
}

/// Every tensor of `want` is in `got` under `prefix` + its name, with the same element
/// type, shape and bits.
fn assert_same(got: &BTreeMap<String, Tensor>, want: &BTreeMap<String, Tensor>, prefix: &str) {
    for (name, w) in want {
        let g = got
            .get(&format!("{prefix}{name}"))
            .unwrap_or_else(|| panic!("{prefix}{name} missing"));
        assert_eq!((g.kind(), g.size()), (w.kind(), w.size()), "{name}");
        assert!(g.equal(w), "{name}: {g:?} != {w:?}");
    }
}

#[test]
fn legacy_files_hold_exactly_what_pytorch_wrote() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let out = torch_script(&["tensors", dir.to_str().unwrap()]);
    let storages = serde_json::from_str::<serde_json::Value>(out.trim()).unwrap()["storages"]
        .as_u64()
        .unwrap();
    let got = by_name(read_torch_file(&dir.join("tensors.pth")).unwrap());
    let want = by_name(Tensor::read_safetensors(dir.join("tensors.safetensors")).unwrap());
    assert_eq!(got.len(), want.len(), "{:?}", got.keys());
    assert_same(&got, &want, "");
    // The slice, the transpose and the column are views of the float tensor's storage,
    // whose record the file holds once.
    let bytes = std::fs::read(dir.join("tensors.pth")).unwrap();
    let legacy = rolekd_interop::legacy::read_legacy(&bytes).unwrap();
    assert_eq!(legacy.storages.len() as u64, storages);
}

/// `make` for resnet8: plain/wrapped/legacy files of one state_dict, inputs, logits.
fn make_resnet8(dir: &Path) {
    torch_script(&["model", "resnet8", "10", dir.to_str().unwrap()]);
}

#[test]
fn repdistiller_legacy_checkpoint_imports_through_the_binary() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    make_resnet8(dir);
    // Every tensor of the state_dict, under RepDistiller's `model` key.
    let got = by_name(read_torch_file(&dir.join("legacy.pth")).unwrap());
    let want = by_name(Tensor::read_safetensors(dir.join("sd.safetensors")).unwrap());
    assert_same(&got, &want, "model.");
    let model = "{type: resnet8}";
    let o = run(
        dir,
        &[
            "import",
            "legacy.pth",
            "--from",
            "repdistiller",
            "--model",
            model,
            "-o",
            "ck",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("(under `model`)"), "{}", stdout(&o));
    let o = run(
        dir,
        &[
            "logits",
            "ck",
            "--input",
            "inputs.safetensors",
            "-o",
            "rolekd.safetensors",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let logits = |f: &str| {
        let mut t = Tensor::read_safetensors(dir.join(f)).unwrap();
        t.retain(|(n, _)| n == "logits");
        t.pop().unwrap().1
    };
    let diff = (logits("rolekd.safetensors") - logits("expected.safetensors"))
        .abs()
        .max()
        .double_value(&[]);
    assert!(diff < 1e-5, "logits differ by {diff}");
}

#[test]
fn truncated_legacy_files_get_located_errors() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    make_resnet8(dir);
    let bytes = std::fs::read(dir.join("legacy.pth")).unwrap();
    let import = |file: &str| {
        let o = run(
            dir,
            &["import", file, "--model", "{type: resnet8}", "-o", "ck"],
        );
        assert!(!o.status.success(), "{file} imported");
        let e = stderr(&o);
        assert!(
            !e.contains("internal error") && !e.contains("panicked"),
            "{e}"
        );
        assert!(
            e.contains(file) && e.contains("a legacy (pre-1.6) torch.save file"),
            "{e}"
        );
        e
    };
    // Half the file: inside the storages, after the pickles.
    std::fs::write(dir.join("half.pth"), &bytes[..bytes.len() / 2]).unwrap();
    let e = import("half.pth");
    assert!(
        e.contains("storage record") && e.contains("truncated"),
        "{e}"
    );
    // 300 bytes: inside the pickled object.
    std::fs::write(dir.join("head.pth"), &bytes[..300]).unwrap();
    let e = import("head.pth");
    assert!(
        e.contains("the saved object: pickle byte") && e.contains("truncated"),
        "{e}"
    );
    assert!(!dir.join("ck/model.json").exists());
}
