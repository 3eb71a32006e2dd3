//! Link-time settings for `rolekd-run` (and the root package's tests):
//! - link `torch_cuda` with `--no-as-needed`: nothing references it directly, so the
//!   linker would drop it and CUDA would silently stay unavailable on GPU hosts;
//! - a RUNPATH to the libtorch the binary was built against, so it runs without
//!   LD_LIBRARY_PATH here, while LD_LIBRARY_PATH still overrides it on another host;
//! - the git commit it was built from (`ROLEKD_GIT_COMMIT`, for `provenance.json`).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    git_commit();
    // torch-sys (links = "tch") publishes its libtorch directory to direct dependents.
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=DEP_TCH_LIBTORCH_LIB unset: no RUNPATH, no forced torch_cuda link");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,--enable-new-dtags,-rpath,{lib}");
    let has_cuda = std::path::Path::new(&lib).join("libtorch_cuda.so").exists();
    if has_cuda {
        println!("cargo:rustc-link-search=native={lib}");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}

/// `git rev-parse HEAD`, with `-dirty` when tracked files differ from it; nothing outside a
/// git checkout (a crates.io build). Reruns when HEAD moves.
fn git_commit() {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(commit) = git(&["rev-parse", "HEAD"]) else {
        return;
    };
    for f in [".git/HEAD", ".git/logs/HEAD", ".git/index"] {
        if std::path::Path::new(f).exists() {
            println!("cargo:rerun-if-changed={f}");
        }
    }
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    let suffix = if dirty { "-dirty" } else { "" };
    println!("cargo:rustc-env=ROLEKD_GIT_COMMIT={commit}{suffix}");
}
