//! Dynamic plugins: `cdylib` crates loaded at run time with `libloading`.
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
//! The host reads the declaration (data, no code) and checks the magic number, then the
//! ABI version, then the fingerprint (rustc, rolekd-core, tch, target triple, debug
//! assertions), and refuses a mismatch naming both sides and how to rebuild. Only then
//! does it call the registration entry point. The entries then cross the boundary as
//! Rust values (`&StaticPlugin`, trait objects, `Result<_, Error>`), which is sound
//! because the fingerprint guarantees one compiler and one rolekd-core on both sides.
//! Loading a library runs its static initialisers (that is how `inventory` collects),
//! nothing else. Loaded libraries are never unloaded.
//!
//! The host also hands over its own registry, and the library's copy of the core uses it
//! from then on: a library plugin that looks another plugin up by name
//! (`registry::augment_policy("standard")`, ...) sees the host's built-ins.

use crate::config::Params;
use crate::error::{Error, Result};
use crate::pipeline::Pipeline;
use crate::registry::{Factory, PluginEntry, PluginKind, PluginSource, Registry, StaticPlugin};
use std::collections::BTreeSet;
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, RwLock};

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

/// A fingerprint or crate name longer than this is not believed.
const MAX_STRING: usize = 4096;

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

/// The host's registry, once a host has handed it to this (library) copy of the core.
static HOST_REGISTRY: OnceLock<&'static RwLock<Registry>> = OnceLock::new();

/// In a plugin library after registration: the host's registry. None in the host.
pub(crate) fn host_registry() -> Option<&'static RwLock<Registry>> {
    HOST_REGISTRY.get().copied()
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
            let _ = HOST_REGISTRY.set(host);
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

/// One plugin as a library handed it over.
#[derive(Clone)]
pub struct LibraryEntry {
    pub name: String,
    pub doc: String,
    /// The crate that registered it (inside the library).
    pub crate_name: String,
    pub factory: Factory,
}

/// Host side of [`Registrar::add`]: copies the entry into the `Vec<LibraryEntry>` at `ctx`.
unsafe extern "C" fn collect_entry(ctx: *mut c_void, plugin: *const c_void) {
    let (Some(out), Some(p)) = (
        unsafe { (ctx as *mut Vec<LibraryEntry>).as_mut() },
        unsafe { (plugin as *const StaticPlugin).as_ref() },
    ) else {
        return;
    };
    out.push(LibraryEntry {
        name: p.name.to_string(),
        doc: p.doc.to_string(),
        crate_name: p.crate_name.to_string(),
        factory: p.factory,
    });
}

/// A library that was loaded and registered.
#[derive(Clone, Debug)]
pub struct LoadedLibrary {
    /// The canonical path (also the plugins' [`PluginSource::Library`]).
    pub path: PathBuf,
    /// The crate the library was built from.
    pub crate_name: String,
    /// What it registered.
    pub plugins: Vec<(PluginKind, String)>,
}

/// Every library loaded by this process, in order.
static LOADED: Mutex<Vec<LoadedLibrary>> = Mutex::new(Vec::new());

/// The libraries this process has loaded so far.
pub fn loaded_libraries() -> Vec<LoadedLibrary> {
    LOADED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Loads a plugin library, checks its declaration and adds its plugins to
/// [`Registry::global()`] with source [`PluginSource::Library`] (the canonical path).
/// The error says what is wrong with the library; callers say which one and where it was
/// asked for ([`load_cli`], [`load_for_run`]).
pub fn load(path: &Path) -> std::result::Result<LoadedLibrary, String> {
    match path.try_exists() {
        Ok(true) => {}
        Ok(false) => {
            return Err(format!(
                "no such file (build the plugin crate first, e.g. `{}`)",
                build_command("<plugin crate>")
            ))
        }
        Err(e) => return Err(e.to_string()),
    }
    if path.is_dir() {
        return Err("is a directory, not a shared library".into());
    }
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let lib = open(&canonical).map_err(|e| format!("not a loadable shared library ({e})"))?;
    // Never unloaded: its code may be referenced from the registry for the whole run, and
    // even a refused library has run its initialisers.
    let lib: &'static libloading::Library = Box::leak(Box::new(lib));

    let decl: *const PluginDeclaration = unsafe {
        match lib.get::<*const PluginDeclaration>(symbol(DECLARATION_SYMBOL).as_bytes()) {
            Ok(sym) => *sym,
            Err(_) => {
                return Err(format!(
                    "not a rolekd plugin: it exports no `{DECLARATION_SYMBOL}` (a plugin crate \
                     has `crate-type = [\"cdylib\"]` and calls `rolekd_core::export_plugins!();` once)"
                ))
            }
        }
    };
    if decl.is_null() {
        return Err(format!(
            "not a rolekd plugin: `{DECLARATION_SYMBOL}` is null"
        ));
    }
    // Read field by field: the magic first, and nothing past a field that did not match.
    let magic = unsafe { std::ptr::addr_of!((*decl).magic).read_unaligned() };
    let abi = if magic == MAGIC {
        Some(unsafe { std::ptr::addr_of!((*decl).abi_version).read_unaligned() })
    } else {
        None
    };
    let (fingerprint, crate_name) = if abi == Some(ABI_VERSION) {
        let d = unsafe { std::ptr::read_unaligned(decl) };
        let fp = unsafe { read_str(d.fingerprint, d.fingerprint_len) };
        let krate = unsafe { read_str(d.crate_name, d.crate_name_len) };
        (fp.map(|fp| full_fingerprint(&fp, d.layout_digest)), krate)
    } else {
        (None, None)
    };
    check_declaration(magic, abi, fingerprint.as_deref(), crate_name.as_deref())?;
    let crate_name = crate_name.unwrap_or_default();

    let register: RegisterFn = unsafe {
        match lib.get::<RegisterFn>(symbol(REGISTER_SYMBOL).as_bytes()) {
            Ok(sym) => *sym,
            Err(_) => {
                return Err(format!(
                    "declares itself a rolekd plugin but exports no `{REGISTER_SYMBOL}` \
                     (use `rolekd_core::export_plugins!();` rather than a hand-written declaration)"
                ))
            }
        }
    };
    let mut entries: Vec<LibraryEntry> = Vec::new();
    let registrar = Registrar {
        abi_version: ABI_VERSION,
        host_registry: Registry::global() as *const RwLock<Registry> as *const c_void,
        ctx: &mut entries as *mut Vec<LibraryEntry> as *mut c_void,
        add: collect_entry,
    };
    let code = unsafe { register(&registrar) };
    match code {
        REGISTER_OK => {}
        REGISTER_PANICKED => {
            return Err(format!(
                "registering its plugins panicked (a bug in crate {crate_name})"
            ))
        }
        other => {
            return Err(format!(
                "its registration entry point refused the host (code {other})"
            ))
        }
    }

    let source = PluginSource::Library(canonical.display().to_string());
    let added = {
        let mut reg = Registry::global()
            .write()
            .unwrap_or_else(|e| e.into_inner());
        add_entries(&mut reg, &source, entries)?
    };
    let loaded = LoadedLibrary {
        path: canonical,
        crate_name,
        plugins: added,
    };
    LOADED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(loaded.clone());
    Ok(loaded)
}

fn symbol(name: &str) -> String {
    format!("{name}\0")
}

#[cfg(unix)]
fn open(path: &Path) -> std::result::Result<libloading::Library, libloading::Error> {
    use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
    // NOW: an unresolved symbol is an error here, not a crash later; LOCAL: the library's
    // symbols resolve nothing else.
    unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }.map(Into::into)
}

#[cfg(not(unix))]
fn open(path: &Path) -> std::result::Result<libloading::Library, libloading::Error> {
    unsafe { libloading::Library::new(path) }
}

/// A UTF-8 string a declaration points at (None when implausible).
unsafe fn read_str(ptr: *const u8, len: usize) -> Option<String> {
    if ptr.is_null() || len > MAX_STRING {
        return None;
    }
    let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
    Some(String::from_utf8_lossy(bytes).into_owned())
}

/// The command that rebuilds a plugin for this host's profile.
fn build_command(krate: &str) -> String {
    if cfg!(debug_assertions) {
        format!("cargo build -p {krate}")
    } else {
        format!("cargo build --release -p {krate}")
    }
}

fn rebuild_hint(krate: Option<&str>) -> String {
    format!(
        "rebuild the plugin against the same rolekd-core ({}) and toolchain ({}) as this \
         rolekd-run: `{}` in the workspace that builds rolekd-run",
        env!("CARGO_PKG_VERSION"),
        env!("ROLEKD_RUSTC_VERSION"),
        build_command(krate.unwrap_or("<plugin crate>"))
    )
}

/// The three checks, in order; nothing after a failed one is looked at.
fn check_declaration(
    magic: u64,
    abi: Option<u32>,
    fingerprint: Option<&str>,
    crate_name: Option<&str>,
) -> std::result::Result<(), String> {
    if magic != MAGIC {
        return Err(format!(
            "not a rolekd plugin: its `{DECLARATION_SYMBOL}` has magic number \
             {magic:#018x}, rolekd expects {MAGIC:#018x}; {}",
            rebuild_hint(None)
        ));
    }
    let abi = abi.unwrap_or_default();
    if abi != ABI_VERSION {
        return Err(format!(
            "built for rolekd plugin ABI version {abi}, this rolekd-run speaks \
             version {ABI_VERSION}; {}",
            rebuild_hint(None)
        ));
    }
    let Some(fp) = fingerprint else {
        return Err(format!(
            "its declaration has no readable build fingerprint; {}",
            rebuild_hint(crate_name)
        ));
    };
    let host = full_fingerprint(FINGERPRINT, LAYOUT_DIGEST);
    if fp != host {
        let krate = crate_name
            .map(|c| format!(" (crate {c})"))
            .unwrap_or_default();
        let same_versions = fp.split(";layout=").next() == Some(FINGERPRINT);
        let why = if same_versions {
            "\n  (same versions, but the types they exchange differ: the dependencies were \
             compiled with other cargo features. Build the plugin in the same cargo \
             invocation as rolekd-run, e.g. `cargo build --release -p rolekd -p <plugin crate>`)"
        } else {
            ""
        };
        return Err(format!(
            "built differently{krate} from this rolekd-run:\n{}{why}\n{}",
            fingerprint_diff(&host, fp),
            rebuild_hint(crate_name)
        ));
    }
    Ok(())
}

/// The fingerprint with the layout digest appended, as compared and shown.
pub fn full_fingerprint(fingerprint: &str, layout_digest: u64) -> String {
    format!("{fingerprint};layout={layout_digest:016x}")
}

fn fingerprint_fields(fp: &str) -> Vec<(&str, &str)> {
    fp.split(';')
        .map(|kv| kv.split_once('=').unwrap_or(("fingerprint", kv)))
        .collect()
}

/// One line per differing field: `  rustc: this rolekd-run has `..`, the library has `..``.
fn fingerprint_diff(host: &str, lib: &str) -> String {
    let h = fingerprint_fields(host);
    let l = fingerprint_fields(lib);
    let mut keys: Vec<&str> = h.iter().map(|(k, _)| *k).collect();
    for (k, _) in &l {
        if !keys.contains(k) {
            keys.push(k);
        }
    }
    let get = |fields: &[(&str, &str)], k: &str| -> String {
        fields
            .iter()
            .find(|(fk, _)| *fk == k)
            .map(|(_, v)| format!("`{v}`"))
            .unwrap_or_else(|| "nothing".into())
    };
    let lines: Vec<String> = keys
        .iter()
        .filter(|k| get(&h, k) != get(&l, k))
        .map(|k| {
            format!(
                "  {k}: this rolekd-run has {}, the library has {}",
                get(&h, k),
                get(&l, k)
            )
        })
        .collect();
    if lines.is_empty() {
        format!("  this rolekd-run: `{host}`\n  the library:     `{lib}`")
    } else {
        lines.join("\n")
    }
}

/// Adds a library's entries to `reg`, all or none. An entry from a crate the host links
/// itself under the same name (the library bundles a copy of it) is skipped; any other
/// taken name is a clash that names both sources.
pub fn add_entries(
    reg: &mut Registry,
    source: &PluginSource,
    entries: Vec<LibraryEntry>,
) -> std::result::Result<Vec<(PluginKind, String)>, String> {
    let mut seen = BTreeSet::new();
    let mut keep = Vec::new();
    for e in entries {
        let kind = e.factory.kind();
        if !seen.insert((kind, e.name.clone())) {
            return Err(format!(
                "it registers {kind} `{}` twice (crate {})",
                e.name, e.crate_name
            ));
        }
        if let Ok(existing) = reg.get(kind, &e.name) {
            if existing.source == PluginSource::Crate(e.crate_name.clone()) {
                continue;
            }
            let twice = if existing.source == *source {
                " (the same library is loaded twice: list it once, in `plugins:` or with --plugin)"
            } else {
                ""
            };
            return Err(format!(
                "{kind} `{}` is registered twice: by {} and by {source}{twice}",
                e.name, existing.source
            ));
        }
        keep.push(e);
    }
    let mut added = Vec::new();
    for e in keep {
        let kind = e.factory.kind();
        let entry = PluginEntry {
            name: e.name,
            doc: e.doc,
            source: source.clone(),
            factory: e.factory,
        };
        added.push((kind, entry.name.clone()));
        reg.add(entry).map_err(|clash| clash.to_string())?;
    }
    Ok(added)
}

/// Loads libraries named with `--plugin`; errors name the flag and the library.
pub fn load_cli(paths: &[PathBuf]) -> Result<Vec<LoadedLibrary>> {
    paths
        .iter()
        .map(|p| load(p).map_err(|m| Error::Invalid(format!("--plugin {}: {m}", p.display()))))
        .collect()
}

/// Loads what a run asks for: the `--plugin` libraries, then the pipeline's `plugins:`
/// entries (resolved against the pipeline file's directory) except those whose file name
/// a `--plugin` library has: `--plugin` overrides a `plugins:` entry of the same name.
/// Errors about `plugins:` entries are located in the YAML.
pub fn load_for_run(pipeline: &Pipeline, cli: &[PathBuf]) -> Result<Vec<LoadedLibrary>> {
    let mut loaded = load_cli(cli)?;
    let items: Vec<Params> = pipeline
        .root
        .get("plugins")
        .map(|p| p.items())
        .unwrap_or_default();
    for (i, path) in pipeline.plugins.iter().enumerate() {
        let overridden = cli
            .iter()
            .any(|c| c.file_name().is_some() && c.file_name() == path.file_name());
        if overridden {
            continue;
        }
        let lib = load(path).map_err(|m| {
            let m = format!("plugin library {}: {m}", path.display());
            match items.get(i) {
                Some(p) => Error::Config(p.error(m)),
                None => Error::Invalid(m),
            }
        })?;
        loaded.push(lib);
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::optim::{LrSchedule, TrainProgress};

    struct Flat;
    impl LrSchedule for Flat {
        fn lr(&self, base: f64, _: TrainProgress) -> f64 {
            base
        }
    }
    fn flat(_: &Params) -> Result<Box<dyn LrSchedule>> {
        Ok(Box::new(Flat))
    }
    fn lib_entry(name: &str, krate: &str) -> LibraryEntry {
        LibraryEntry {
            name: name.into(),
            doc: String::new(),
            crate_name: krate.into(),
            factory: Factory::LrSchedule(flat),
        }
    }
    fn host_with(name: &str, krate: &str) -> Registry {
        let mut reg = Registry::default();
        reg.add(PluginEntry {
            name: name.into(),
            doc: String::new(),
            source: PluginSource::Crate(krate.into()),
            factory: Factory::LrSchedule(flat),
        })
        .unwrap();
        reg
    }

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

    #[test]
    fn checks_in_order_and_name_both_sides() {
        let host = full_fingerprint(FINGERPRINT, LAYOUT_DIGEST);
        let ok = check_declaration(MAGIC, Some(ABI_VERSION), Some(&host), None);
        assert!(ok.is_ok());
        let e = check_declaration(7, None, None, None).unwrap_err();
        assert!(
            e.contains("0x0000000000000007") && e.contains("0x524f4c454b44504c"),
            "{e}"
        );
        assert!(e.contains("cargo build"), "{e}");
        let e = check_declaration(MAGIC, Some(9), None, None).unwrap_err();
        assert!(
            e.contains("version 9") && e.contains(&format!("version {ABI_VERSION}")),
            "{e}"
        );
        let other = host.replace("rustc=rustc ", "rustc=rustc 0.0.0-");
        let e = check_declaration(MAGIC, Some(ABI_VERSION), Some(&other), Some("my-plugin"))
            .unwrap_err();
        assert!(e.contains("rustc: this rolekd-run has `rustc "), "{e}");
        assert!(e.contains("the library has `rustc 0.0.0-"), "{e}");
        assert!(!e.contains("tch:"), "only differing fields: {e}");
        assert!(e.contains("-p my-plugin"), "{e}");
        let e = check_declaration(MAGIC, Some(ABI_VERSION), Some("garbage"), None).unwrap_err();
        assert!(e.contains("the library has `garbage`"), "{e}");
        let other = full_fingerprint(FINGERPRINT, LAYOUT_DIGEST ^ 1);
        let e = check_declaration(MAGIC, Some(ABI_VERSION), Some(&other), None).unwrap_err();
        assert!(
            e.contains("layout: this rolekd-run has") && e.contains("cargo features"),
            "{e}"
        );
    }

    #[test]
    fn clash_with_a_built_in_names_both_and_adds_nothing() {
        let mut reg = host_with("cosine", "rolekd-optim");
        let src = PluginSource::Library("/x/libp.so".into());
        let err = add_entries(
            &mut reg,
            &src,
            vec![lib_entry("fresh", "p"), lib_entry("cosine", "p")],
        )
        .unwrap_err();
        assert!(
            err.contains("built-in (rolekd-optim)") && err.contains("library /x/libp.so"),
            "{err}"
        );
        assert!(
            reg.get(PluginKind::LrSchedule, "fresh").is_err(),
            "all or none"
        );
    }

    #[test]
    fn a_bundled_copy_of_a_host_crate_is_skipped() {
        let mut reg = host_with("cosine", "rolekd-optim");
        let src = PluginSource::Library("/x/libp.so".into());
        let added = add_entries(
            &mut reg,
            &src,
            vec![lib_entry("cosine", "rolekd-optim"), lib_entry("fresh", "p")],
        )
        .unwrap();
        assert_eq!(added, vec![(PluginKind::LrSchedule, "fresh".to_string())]);
        assert_eq!(
            reg.get(PluginKind::LrSchedule, "fresh").unwrap().source,
            src
        );
        let again = add_entries(&mut reg, &src, vec![lib_entry("fresh", "p")]).unwrap_err();
        assert!(again.contains("loaded twice"), "{again}");
    }

    #[test]
    fn missing_and_non_library_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let e = load(&dir.path().join("libnope.so")).unwrap_err();
        assert!(e.contains("no such file"), "{e}");
        let text = dir.path().join("libtext.so");
        std::fs::write(&text, "not a library\n").unwrap();
        let e = load(&text).unwrap_err();
        assert!(e.contains("not a loadable shared library"), "{e}");
        let e = load(dir.path()).unwrap_err();
        assert!(e.contains("is a directory"), "{e}");
    }
}
