//! Python venvs for tests that check rolekd's files with the Python tools users read them
//! with (TensorBoard, PyTorch). Each lives in `$ROLEKD_CACHE/venv-<name>` (default cache
//! `~/.cache/rolekd`), made on first use with pinned packages; a venv that cannot be made
//! fails the test (these tools are PyPI packages, which CI reaches).

use std::path::PathBuf;
use std::process::{Command, Stdio};

fn cache() -> PathBuf {
    std::env::var_os("ROLEKD_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
                .join(".cache/rolekd")
        })
}

/// The python of venv `name`, with `requirements` installed (once; a marker file records
/// a finished install, so an interrupted one is redone).
pub fn python_with(name: &str, requirements: &[&str]) -> PathBuf {
    let venv = cache().join(format!("venv-{name}"));
    let python = venv.join("bin/python");
    let done = venv.join(".rolekd-installed");
    if done.is_file() {
        return python;
    }
    let _ = std::fs::remove_dir_all(&venv);
    let ok = |c: &mut Command| c.stdout(Stdio::null()).status().is_ok_and(|s| s.success());
    assert!(
        ok(Command::new("python3").arg("-m").arg("venv").arg(&venv)),
        "`python3 -m venv {}` failed",
        venv.display()
    );
    assert!(
        ok(Command::new(&python)
            .args(["-m", "pip", "install", "--quiet"])
            .args(requirements)),
        "`pip install {}` into {} failed (no PyPI?)",
        requirements.join(" "),
        venv.display()
    );
    std::fs::write(&done, requirements.join("\n")).unwrap();
    python
}

/// TensorBoard's reader.
pub fn tensorboard_python() -> PathBuf {
    python_with("tensorboard-2.21.0", &["tensorboard==2.21.0"])
}

/// The project's torch venv (`scripts/env.sh` installs it and exports `ROLEKD_VENV`).
pub fn torch_python() -> PathBuf {
    let venv = std::env::var_os("ROLEKD_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache().join("venv-torch-2.11.0"));
    let python = venv.join("bin/python");
    assert!(
        python.is_file(),
        "{} missing: run the tests through scripts/test.sh, which installs the torch venv",
        python.display()
    );
    python
}
