//! Dynamic plugins, the library side: what a `cdylib` plugin crate exports so a host
//! (rolekd-engine's `dynamic` module) can load it.
//!
//! A dynamic plugin crate is written exactly like a static one (`register_plugin!` lines)
//! plus one [`export_plugins!`](crate::export_plugins) line, and is built with
//! `crate-type = ["cdylib"]`. The library's `register_plugin!` calls land in the
//! library's own copy of the `inventory` registry, so the macro exports two C symbols
//! through which the host asks for them:
//!
//! - [`DECLARATION_SYMBOL`] (`ROLEKD_PLUGIN_DECLARATION`), a static
//!   [`PluginDeclaration`]: magic number, ABI version, build fingerprint, crate name.
//! - [`REGISTER_SYMBOL`] (`rolekd_plugin_register`), a [`RegisterFn`] that hands each of
//!   the library's entries (name, doc, crate, [`Factory`]) to a host callback.
//!
//! The fingerprint (rustc, rolekd-core, tch, target triple, debug assertions, and a digest
//! of the exchanged types' layouts) names what a plugin links: a plugin crate depends on
//! rolekd-core alone, whose types are all that cross the boundary. The host compares it
//! before it calls any of the library's code.
//!
//! The host also hands over its own registry, and the library's copy of the core uses it
//! from then on ([`crate::registry::Registry::global`]): a library plugin that looks another
//! plugin up by name (`registry::augment_policy("standard")`, ...) sees the host's built-ins.

use crate::config::Params;
use crate::error::{Error, Result};
use crate::registry::{Factory, PluginEntry, PluginSource, Registry, StaticPlugin};
use std::ffi::c_void;
use std::sync::RwLock;

/// The first field of every declaration: "ROLEKDPL" read as a big-endian u64.
pub const MAGIC: u64 = u64::from_be_bytes(*b"ROLEKDPL");

/// The version of the layout of [`PluginDeclaration`] (after its first two fields, which
/// never change), of [`Registrar`] and of [`RegisterFn`]. Bump it when any of them change.
pub const ABI_VERSION: u32 = 1;

/// The exported declaration static.
pub const DECLARATION_SYMBOL: &str = "ROLEKD_PLUGIN_DECLARATION";

/// The exported registration entry point.
pub const REGISTER_SYMBOL: &str = "rolekd_plugin_register";

macro_rules! tch_version {
    () => {
        "0.24.0"
    };
}

/// The tch version rolekd-core is built against (pinned with `=` in the workspace).
pub const TCH_VERSION: &str = tch_version!();

/// What two sides must share to exchange Rust values: `key=value` fields joined by `;`.
pub const FINGERPRINT: &str = concat!(
    "rustc=",
    env!("ROLEKD_RUSTC_VERSION"),
    ";rolekd-core=",
    env!("CARGO_PKG_VERSION"),
    ";tch=",
    tch_version!(),
    ";target=",
    env!("ROLEKD_TARGET"),
    ";debug-assertions=",
    env!("ROLEKD_DEBUG_ASSERTIONS"),
);

macro_rules! layouts {
    ($($t:ty),* $(,)?) => {
        [$(std::mem::size_of::<$t>() as u64, std::mem::align_of::<$t>() as u64),*]
    };
}

/// FNV-1a over the little-endian bytes of `values`.
const fn fnv1a(values: &[u64]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < values.len() {
        let bytes = values[i].to_le_bytes();
        let mut j = 0;
        while j < 8 {
            h ^= bytes[j] as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
            j += 1;
        }
        i += 1;
    }
    h
}

/// Sizes and alignments of the types that cross between host and library, hashed. The
/// versions in [`FINGERPRINT`] can agree while a dependency was compiled with other cargo
/// features (the host and the plugin built by separate cargo invocations); this catches
/// the cases where that changed a layout.
pub const LAYOUT_DIGEST: u64 = {
    use crate::plugin::{augment, data, image, loss, model, optim, stage};
    fnv1a(&layouts!(
        Params,
        crate::config::ConfigError,
        Error,
        Registry,
        RwLock<Registry>,
        PluginEntry,
        StaticPlugin,
        Factory,
        PluginSource,
        data::DataSplit,
        data::Dataset,
        image::Image,
        augment::AugmentCtx,
        augment::PolicyCtx,
        augment::MixBatch<'static>,
        loss::LossInputs<'static>,
        loss::LossCtx,
        model::ModelOutput,
        model::ModelSpec,
        optim::TrainableParam,
        optim::TrainProgress,
        stage::OutputDecl,
        stage::StageResult,
        stage::StageCtx<'static>,
        crate::rng::StreamRng,
        crate::yaml::Value,
        tch::Tensor,
        tch::nn::VarStore,
        tch::nn::Path<'static>,
        tch::Device,
        Box<dyn loss::Loss>,
        Result<Box<dyn model::Model>>,
        String,
        Vec<u8>,
    ))
};

/// The declaration a plugin library exports as `ROLEKD_PLUGIN_DECLARATION`.
///
/// Layout (C, 64-bit): `magic: u64` at 0, `abi_version: u32` at 8, `reserved: u32` at 12,
/// `fingerprint: *const u8` at 16, `fingerprint_len: usize` at 24, `crate_name: *const u8`
/// at 32, `crate_name_len: usize` at 40, `layout_digest: u64` at 48; 56 bytes. Strings are
/// UTF-8, not NUL-terminated. `magic` and `abi_version` keep their place in every future
/// version.
#[repr(C)]
#[derive(Debug)]
pub struct PluginDeclaration {
    pub magic: u64,
    pub abi_version: u32,
    pub reserved: u32,
    pub fingerprint: *const u8,
    pub fingerprint_len: usize,
    pub crate_name: *const u8,
    pub crate_name_len: usize,
    /// [`LAYOUT_DIGEST`], checked with the fingerprint.
    pub layout_digest: u64,
}

// The pointers point at `'static` string constants.
unsafe impl Sync for PluginDeclaration {}

impl PluginDeclaration {
    /// The declaration of a library built now, for the crate `crate_name`.
    pub const fn new(crate_name: &'static str) -> PluginDeclaration {
        PluginDeclaration {
            magic: MAGIC,
            abi_version: ABI_VERSION,
            reserved: 0,
            fingerprint: FINGERPRINT.as_ptr(),
            fingerprint_len: FINGERPRINT.len(),
            crate_name: crate_name.as_ptr(),
            crate_name_len: crate_name.len(),
            layout_digest: LAYOUT_DIGEST,
        }
    }
}

/// What the host passes to the registration entry point.
#[repr(C)]
pub struct Registrar {
    /// The host's [`ABI_VERSION`].
    pub abi_version: u32,
    /// The host's `&'static RwLock<Registry>`: the library's core uses it from then on.
    pub host_registry: *const c_void,
    /// The host's state for `add`.
    pub ctx: *mut c_void,
    /// Called once per plugin with a `*const StaticPlugin` valid during the call.
    pub add: unsafe extern "C" fn(ctx: *mut c_void, plugin: *const c_void),
}

/// `rolekd_plugin_register`: returns [`REGISTER_OK`] or one of the `REGISTER_*` codes.
pub type RegisterFn = unsafe extern "C" fn(registrar: *const Registrar) -> u32;

pub const REGISTER_OK: u32 = 0;
/// A plugin's registration panicked (caught inside the library).
pub const REGISTER_PANICKED: u32 = 1;
/// The registrar pointer was null.
pub const REGISTER_NO_REGISTRAR: u32 = 2;
/// The host's ABI version differs from the library's.
pub const REGISTER_ABI_MISMATCH: u32 = 3;

/// Exports this crate's plugins from a `cdylib`: invoke once at the crate root.
///
/// ```ignore
/// rolekd_core::register_plugin!(Loss, "my-loss", "what it does", build_my_loss);
/// rolekd_core::export_plugins!();
/// ```
#[macro_export]
macro_rules! export_plugins {
    () => {
        /// rolekd's plugin declaration: magic number, ABI version, build fingerprint.
        #[unsafe(no_mangle)]
        pub static ROLEKD_PLUGIN_DECLARATION: $crate::dynamic::PluginDeclaration =
            $crate::dynamic::PluginDeclaration::new(env!("CARGO_PKG_NAME"));

        /// Hands this library's plugins to the host, which calls it only after checking
        /// `ROLEKD_PLUGIN_DECLARATION`.
        ///
        /// # Safety
        /// `registrar` is null or points to a valid `Registrar` of a host whose
        /// fingerprint equals this library's.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn rolekd_plugin_register(
            registrar: *const $crate::dynamic::Registrar,
        ) -> u32 {
            unsafe { $crate::dynamic::export_entries(registrar) }
        }
    };
}

/// The body of `rolekd_plugin_register` (library side): adopts the host's registry and
/// passes every entry of this library's `inventory` to the host. Never unwinds.
///
/// # Safety
/// `registrar` is null or valid, from a host with this library's fingerprint.
#[doc(hidden)]
pub unsafe fn export_entries(registrar: *const Registrar) -> u32 {
    let Some(r) = (unsafe { registrar.as_ref() }) else {
        return REGISTER_NO_REGISTRAR;
    };
    if r.abi_version != ABI_VERSION {
        return REGISTER_ABI_MISMATCH;
    }
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if !r.host_registry.is_null() {
            // Same compiler, same core (the fingerprint): the same type on both sides.
            let host = unsafe { &*(r.host_registry as *const RwLock<Registry>) };
            crate::registry::adopt_host(host);
        }
        for plugin in inventory::iter::<StaticPlugin> {
            unsafe { (r.add)(r.ctx, plugin as *const StaticPlugin as *const c_void) };
        }
    }));
    match outcome {
        Ok(()) => REGISTER_OK,
        Err(_) => REGISTER_PANICKED,
    }
}

/// The fingerprint with the layout digest appended, as compared and shown.
pub fn full_fingerprint(fingerprint: &str, layout_digest: u64) -> String {
    format!("{fingerprint};layout={layout_digest:016x}")
}

/// A fingerprint's `key=value` fields, in order (a field without `=` is `fingerprint`).
pub fn fingerprint_fields(fp: &str) -> Vec<(&str, &str)> {
    fp.split(';')
        .map(|kv| kv.split_once('=').unwrap_or(("fingerprint", kv)))
        .collect()
}

/// The rolekd-core version in [`FINGERPRINT`], for the host's rebuild hints.
pub const CORE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The compiler in [`FINGERPRINT`] (its `--version` line), for the host's rebuild hints.
pub const RUSTC_VERSION: &str = env!("ROLEKD_RUSTC_VERSION");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_has_every_field() {
        let keys: Vec<&str> = fingerprint_fields(FINGERPRINT)
            .iter()
            .map(|(k, _)| *k)
            .collect();
        assert_eq!(
            keys,
            ["rustc", "rolekd-core", "tch", "target", "debug-assertions"]
        );
        assert!(FINGERPRINT.contains("rustc=rustc "), "{FINGERPRINT}");
        assert!(FINGERPRINT.contains(&format!("tch={TCH_VERSION}")));
    }

    #[test]
    fn tch_version_matches_the_lock_file() {
        let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"))
            .expect("the workspace lock file");
        let want = format!("name = \"tch\"\nversion = \"{TCH_VERSION}\"");
        assert!(
            lock.contains(&want),
            "Cargo.lock does not pin tch {TCH_VERSION}"
        );
    }

    #[test]
    fn declaration_layout_is_fixed() {
        assert_eq!(std::mem::offset_of!(PluginDeclaration, magic), 0);
        assert_eq!(std::mem::offset_of!(PluginDeclaration, abi_version), 8);
        if cfg!(target_pointer_width = "64") {
            assert_eq!(std::mem::offset_of!(PluginDeclaration, fingerprint), 16);
            assert_eq!(std::mem::offset_of!(PluginDeclaration, crate_name_len), 40);
            assert_eq!(std::mem::offset_of!(PluginDeclaration, layout_digest), 48);
            assert_eq!(std::mem::size_of::<PluginDeclaration>(), 56);
        }
        let d = PluginDeclaration::new("x");
        assert_eq!(d.magic.to_be_bytes(), *b"ROLEKDPL");
    }
}
