//! Link-time settings for `rolekd-run` (and the root package's tests):
//! - link `torch_cuda` with `--no-as-needed`: nothing references it directly, so the
//!   linker would drop it and CUDA would silently stay unavailable on GPU hosts;
//! - a RUNPATH to the libtorch the binary was built against, so it runs without
//!   LD_LIBRARY_PATH here, while LD_LIBRARY_PATH still overrides it on another host.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
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
