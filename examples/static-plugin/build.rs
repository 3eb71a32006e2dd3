//! The same link settings as rolekd-run's (see the root build.rs): force-link
//! `torch_cuda` (else CUDA silently stays unavailable, tch-rs issue 980) and set a
//! RUNPATH to the libtorch this was built against.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    println!("cargo:rustc-link-arg-bins=-Wl,--enable-new-dtags,-rpath,{lib}");
    if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-search=native={lib}");
        println!("cargo:rustc-link-arg-bins=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
