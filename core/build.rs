//! - Build facts for the dynamic-plugin fingerprint (see `src/dynamic.rs`): the compiler's
//!   `--version` line, the target triple and whether debug assertions are on. A plugin
//!   library compiled with different facts is refused before any of its code is called.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RUSTC");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(&rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| {
            println!("cargo:warning=`{rustc} --version` failed: the plugin fingerprint says `rustc unknown`");
            "rustc unknown".into()
        });
    println!("cargo:rustc-env=ROLEKD_RUSTC_VERSION={version}");
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=ROLEKD_TARGET={target}");
    // Set by cargo when the profile compiling this crate has debug assertions on; some
    // crates change their types' layout under `cfg(debug_assertions)`.
    let debug = std::env::var_os("CARGO_CFG_DEBUG_ASSERTIONS").is_some();
    println!(
        "cargo:rustc-env=ROLEKD_DEBUG_ASSERTIONS={}",
        if debug { "on" } else { "off" }
    );
}
