//! - The bf16 autocast shim (`csrc/autocast.cpp`, see `src/autocast.rs`), compiled against
//!   the headers of the libtorch that torch-sys links.
//! - The version of that libtorch and its CUDA, for `provenance.json` (torch's `version.py`
//!   beside its `lib` directory; `unknown` where there is none).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    autocast_shim();
    libtorch_version();
}

/// Compiles `csrc/autocast.cpp`. torch-sys (links = "tch") publishes its libtorch `lib`
/// directory; the headers are beside it. Without it (a platform torch-sys does not describe)
/// the shim is left out and `precision: bf16` is refused at run time.
fn autocast_shim() {
    println!("cargo:rerun-if-changed=csrc/autocast.cpp");
    println!("cargo:rustc-check-cfg=cfg(rolekd_autocast)");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:warning=DEP_TCH_LIBTORCH_LIB unset: built without bf16 autocast");
        return;
    };
    let include = std::path::Path::new(&lib).join("..").join("include");
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .std("c++17")
        .include(&include)
        .warnings(false)
        .file("csrc/autocast.cpp")
        .compile("rolekd_autocast");
    println!("cargo:rustc-cfg=rolekd_autocast");
}

/// Reads `__version__` and `cuda` from torch's `version.py` (PyPI torch); a bare libtorch
/// download has `build-version` instead.
fn libtorch_version() {
    let lib = std::env::var("DEP_TCH_LIBTORCH_LIB").unwrap_or_default();
    let root = std::path::Path::new(&lib).join("..");
    let py = root.join("version.py");
    let text = std::fs::read_to_string(&py).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| k.split(':').next().unwrap_or("").trim() == name)
            .map(|(_, v)| v.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
    };
    let version = field("__version__")
        .or_else(|| {
            std::fs::read_to_string(root.join("build-version"))
                .ok()
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cuda = match field("cuda") {
        Some(v) if v != "None" => v,
        Some(_) => "none".into(),
        None => "unknown".into(),
    };
    if py.exists() {
        println!("cargo:rerun-if-changed={}", py.display());
    }
    println!("cargo:rustc-env=ROLEKD_LIBTORCH_VERSION={version}");
    println!("cargo:rustc-env=ROLEKD_LIBTORCH_CUDA={cuda}");
}
