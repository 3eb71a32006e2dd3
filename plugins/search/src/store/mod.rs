//! The population store: every fact a search shares between its workers (members, their
//! genes and leases, rewards, exploit events, checkpoint references) lives here, and
//! workers coordinate through it only.
//!
//! A backend implements [`PopulationStore::transaction`]: run a closure against a
//! [`StoreTx`] atomically and in isolation (all or nothing, one transaction at a time as
//! far as the closure can tell). The search's logic ([`crate::population`]) is written
//! against these two traits, so a server database can replace the embedded SQLite one
//! ([`sqlite::SqliteStore`]) without touching it: [`postgres::PostgresStore`] is one, for
//! workers on several machines. [`open`] picks the backend from a URL.

mod api;
#[cfg(feature = "cluster")]
pub mod postgres;
pub mod sqlite;
mod url;

pub use api::{
    transact, CheckpointRef, Event, Lease, Member, Pending, PopulationStore, ResultRow, Status,
    StoreTx,
};
pub use url::{is_store_url, redact};

use rolekd_core::Result;

/// Opens the store `url` names, for the population `run`: `postgres://...` (or
/// `postgresql://`) a server database shared by several populations, keyed by `run`;
/// `sqlite://PATH`, `file://PATH` or a plain path an SQLite file holding one population
/// (`run` is recorded there and checked, so a worker cannot join the wrong search).
pub fn open(url: &str, run: &str) -> Result<Box<dyn PopulationStore>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        #[cfg(feature = "cluster")]
        return Ok(Box::new(postgres::PostgresStore::open(url, run)?));
        #[cfg(not(feature = "cluster"))]
        return Err(rolekd_core::Error::Invalid(crate::without_cluster(
            &format!("population store `{}`", redact(url)),
        )));
    }
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("file://"))
        .unwrap_or(url);
    if path.contains("://") {
        return Err(rolekd_core::Error::Invalid(format!(
            "population store `{url}`: expected postgres://..., sqlite://PATH or a file path"
        )));
    }
    let store = sqlite::SqliteStore::open(std::path::Path::new(path))?;
    transact(&store, |tx| match tx.meta("run")? {
        Some(r) if r != run => Err(rolekd_core::Error::Data(format!(
            "{path} holds the population of run `{r}`, not `{run}`"
        ))),
        Some(_) => Ok(()),
        None => tx.set_meta("run", run),
    })?;
    Ok(Box::new(store))
}

#[cfg(test)]
mod tests;
