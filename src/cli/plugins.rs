//! `rolekd-run plugins`.

use rolekd_core::registry::{PluginKind, Registry};
use rolekd_engine::dynamic;
use std::path::PathBuf;

pub fn list(libraries: &[PathBuf]) -> anyhow::Result<()> {
    dynamic::load_cli(libraries)?;
    let reg = Registry::global().read().unwrap_or_else(|e| e.into_inner());
    let entries: Vec<_> = reg.entries().collect();
    let w_name = entries
        .iter()
        .map(|e| e.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let w_src = entries
        .iter()
        .map(|e| e.source.to_string().len())
        .max()
        .unwrap_or(6)
        .max(6);
    for kind in PluginKind::ALL {
        let of_kind: Vec<_> = entries.iter().filter(|e| e.kind() == kind).collect();
        println!("{} ({})", kind.label(), of_kind.len());
        for e in of_kind {
            println!(
                "  {:w_name$}  {:w_src$}  {}",
                e.name,
                e.source.to_string(),
                e.doc
            );
        }
    }
    Ok(())
}
