//! Dynamic plugins, the host side: `cdylib` plugin crates loaded at run time with
//! `libloading` (the library side, what such a crate exports, is `rolekd_core::dynamic`).
//!
//! The host reads the library's declaration (data, no code) and checks the magic number,
//! then the ABI version, then the fingerprint (rustc, rolekd-core, tch, target triple,
//! debug assertions, type layouts), and refuses a mismatch naming both sides and how to
//! rebuild. Only then does it call the registration entry point. The entries then cross
//! the boundary as Rust values (`&StaticPlugin`, trait objects, `Result<_, Error>`), which
//! is sound because the fingerprint guarantees one compiler and one rolekd-core on both
//! sides. Loading a library runs its static initialisers (that is how `inventory`
//! collects), nothing else. Loaded libraries are never unloaded.

use crate::pipeline::Pipeline;
use rolekd_core::config::Params;
use rolekd_core::dynamic::{
    fingerprint_fields, full_fingerprint, PluginDeclaration, RegisterFn, Registrar, ABI_VERSION,
    CORE_VERSION, DECLARATION_SYMBOL, FINGERPRINT, LAYOUT_DIGEST, MAGIC, REGISTER_OK,
    REGISTER_PANICKED, REGISTER_SYMBOL, RUSTC_VERSION,
};
use rolekd_core::registry::{
    Factory, PluginEntry, PluginKind, PluginSource, Registry, StaticPlugin,
};
use rolekd_core::{Error, Result};
use std::collections::BTreeSet;
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

/// A fingerprint or crate name longer than this is not believed.
const MAX_STRING: usize = 4096;

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
    let (canonical, lib) = open_library(path)?;
    let crate_name = read_declaration(lib)?;
    let entries = call_register(lib, &crate_name)?;
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

/// Opens the library at `path` (never unloaded: its code may be referenced from the
/// registry for the whole run, and even a refused library has run its initialisers).
fn open_library(
    path: &Path,
) -> std::result::Result<(PathBuf, &'static libloading::Library), String> {
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
    Ok((canonical, Box::leak(Box::new(lib))))
}

/// Reads and checks the library's [`PluginDeclaration`]; its crate's name.
fn read_declaration(lib: &libloading::Library) -> std::result::Result<String, String> {
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
    Ok(crate_name.unwrap_or_default())
}

/// Calls the library's registration entry point; the plugins it declares.
fn call_register(
    lib: &libloading::Library,
    crate_name: &str,
) -> std::result::Result<Vec<LibraryEntry>, String> {
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
    Ok(entries)
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
        CORE_VERSION,
        RUSTC_VERSION,
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
    use rolekd_core::plugin::optim::{LrSchedule, TrainProgress};

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
