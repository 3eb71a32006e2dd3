//! The population store on embedded SQLite (`<stage dir>/population.sqlite`).
//!
//! Each transaction takes a connection from a small pool (one per concurrent caller) and
//! runs as `BEGIN IMMEDIATE`, so writers are serialised by SQLite's own lock: threads of one
//! process and processes sharing the file coordinate the same way. The journal is WAL with
//! `synchronous = FULL`: a committed transaction survives `kill -9`.

use super::api::{
    CheckpointRef, Event, Lease, Member, Pending, PopulationStore, ResultRow, Status, StoreTx,
};
use rolekd_core::{Error, Result};
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS members (
    id INTEGER PRIMARY KEY,
    genes TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    status TEXT NOT NULL,
    lease_owner TEXT,
    lease_expires_ms INTEGER,
    pending_donor INTEGER,
    pending_donor_epoch INTEGER,
    pending_own_epoch INTEGER,
    lineage TEXT NOT NULL,
    log TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    member INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    reward REAL NOT NULL,
    train_acc REAL NOT NULL,
    loss REAL NOT NULL,
    seconds REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    member INTEGER NOT NULL,
    donor INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    donor_epoch INTEGER NOT NULL,
    old_genes TEXT NOT NULL,
    donor_genes TEXT NOT NULL,
    new_genes TEXT NOT NULL,
    reward REAL NOT NULL,
    donor_reward REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    member INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (member, epoch)
);
";

/// A population in an SQLite file.
pub struct SqliteStore {
    path: PathBuf,
    pool: Mutex<Vec<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let store = SqliteStore {
            path: path.to_path_buf(),
            pool: Mutex::new(Vec::new()),
        };
        let conn = store.connect()?;
        conn.execute_batch(SCHEMA).map_err(|e| store.err(e))?;
        store.put_back(conn);
        Ok(store)
    }

    /// The file behind the store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Data(format!("{}: {e}", self.path.display()))
    }

    fn connect(&self) -> Result<Connection> {
        let conn = Connection::open(&self.path).map_err(|e| self.err(e))?;
        conn.busy_timeout(Duration::from_secs(120))
            .map_err(|e| self.err(e))?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
            .map_err(|e| self.err(e))?;
        Ok(conn)
    }

    fn take(&self) -> Result<Connection> {
        let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match pooled {
            Some(c) => Ok(c),
            None => self.connect(),
        }
    }

    fn put_back(&self, conn: Connection) {
        self.pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
    }
}

impl PopulationStore for SqliteStore {
    fn transaction(&self, f: &mut dyn FnMut(&mut dyn StoreTx) -> Result<()>) -> Result<()> {
        let mut conn = self.take()?;
        let result = (|| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| self.err(e))?;
            let mut stx = SqliteTx {
                tx: &tx,
                path: &self.path,
            };
            f(&mut stx)?;
            tx.commit().map_err(|e| self.err(e))
        })();
        // A transaction that failed is rolled back when dropped; the connection is reusable.
        self.put_back(conn);
        result
    }
}

struct SqliteTx<'a> {
    tx: &'a rusqlite::Transaction<'a>,
    path: &'a Path,
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("store values serialise")
}

fn from_json<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> rusqlite::Result<T> {
    serde_json::from_str(s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("{what}: {e}").into(),
        )
    })
}

fn member_of(row: &Row<'_>) -> rusqlite::Result<Member> {
    let status: String = row.get("status")?;
    let owner: Option<String> = row.get("lease_owner")?;
    let expires: Option<i64> = row.get("lease_expires_ms")?;
    let donor: Option<i64> = row.get("pending_donor")?;
    let donor_epoch: Option<i64> = row.get("pending_donor_epoch")?;
    let own_epoch: Option<i64> = row.get("pending_own_epoch")?;
    Ok(Member {
        id: row.get::<_, i64>("id")? as usize,
        genes: from_json(&row.get::<_, String>("genes")?, "genes")?,
        epoch: row.get::<_, i64>("epoch")? as usize,
        status: Status::from_label(&status).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                0,
                rusqlite::types::Type::Text,
                format!("unknown status `{status}`").into(),
            )
        })?,
        lease: match (owner, expires) {
            (Some(owner), Some(expires_ms)) => Some(Lease { owner, expires_ms }),
            _ => None,
        },
        pending: match (donor, donor_epoch, own_epoch) {
            (Some(d), Some(de), Some(oe)) => Some(Pending {
                donor: d as usize,
                donor_epoch: de as usize,
                own_epoch: oe as usize,
            }),
            _ => None,
        },
        lineage: from_json(&row.get::<_, String>("lineage")?, "lineage")?,
        log: from_json(&row.get::<_, String>("log")?, "log")?,
    })
}

impl SqliteTx<'_> {
    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Data(format!("{}: {e}", self.path.display()))
    }
}

impl StoreTx for SqliteTx<'_> {
    /// The machine's clock: every process sharing an SQLite file runs on this machine.
    fn now_ms(&mut self) -> Result<i64> {
        Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0))
    }

    fn meta(&mut self, key: &str) -> Result<Option<String>> {
        self.tx
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    fn set_meta(&mut self, key: &str, value: &str) -> Result<()> {
        self.tx
            .execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                [key, value],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn members(&mut self) -> Result<Vec<Member>> {
        let mut st = self
            .tx
            .prepare("SELECT * FROM members ORDER BY id")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], member_of)
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e));
        rows
    }

    fn member(&mut self, id: usize) -> Result<Member> {
        self.tx
            .query_row(
                "SELECT * FROM members WHERE id = ?1",
                [id as i64],
                member_of,
            )
            .map_err(|e| self.err(format!("member {id}: {e}")))
    }

    fn put_member(&mut self, m: &Member) -> Result<()> {
        self.tx
            .execute(
                "INSERT OR REPLACE INTO members (id, genes, epoch, status, lease_owner,
                 lease_expires_ms, pending_donor, pending_donor_epoch, pending_own_epoch,
                 lineage, log) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    m.id as i64,
                    to_json(&m.genes),
                    m.epoch as i64,
                    m.status.label(),
                    m.lease.as_ref().map(|l| l.owner.clone()),
                    m.lease.as_ref().map(|l| l.expires_ms),
                    m.pending.map(|p| p.donor as i64),
                    m.pending.map(|p| p.donor_epoch as i64),
                    m.pending.map(|p| p.own_epoch as i64),
                    to_json(&m.lineage),
                    to_json(&m.log),
                ],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn add_result(&mut self, r: &ResultRow) -> Result<()> {
        self.tx
            .execute(
                "INSERT INTO results (member, epoch, reward, train_acc, loss, seconds)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    r.member as i64,
                    r.epoch as i64,
                    r.reward,
                    r.train_acc,
                    r.loss,
                    r.seconds
                ],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn results(&mut self) -> Result<Vec<ResultRow>> {
        let mut st = self
            .tx
            .prepare(
                "SELECT member, epoch, reward, train_acc, loss, seconds FROM results ORDER BY seq",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok(ResultRow {
                    member: r.get::<_, i64>(0)? as usize,
                    epoch: r.get::<_, i64>(1)? as usize,
                    reward: r.get(2)?,
                    train_acc: r.get(3)?,
                    loss: r.get(4)?,
                    seconds: r.get(5)?,
                })
            })
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e));
        rows
    }

    fn add_event(&mut self, e: &Event) -> Result<()> {
        self.tx
            .execute(
                "INSERT INTO events (member, donor, epoch, donor_epoch, old_genes, donor_genes,
                 new_genes, reward, donor_reward) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    e.member as i64,
                    e.donor as i64,
                    e.epoch as i64,
                    e.donor_epoch as i64,
                    to_json(&e.old_genes),
                    to_json(&e.donor_genes),
                    to_json(&e.new_genes),
                    e.reward,
                    e.donor_reward
                ],
            )
            .map(|_| ())
            .map_err(|err| self.err(err))
    }

    fn events(&mut self) -> Result<Vec<Event>> {
        let mut st = self
            .tx
            .prepare(
                "SELECT seq, member, donor, epoch, donor_epoch, old_genes, donor_genes, new_genes,
                 reward, donor_reward FROM events ORDER BY seq",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok(Event {
                    seq: r.get(0)?,
                    member: r.get::<_, i64>(1)? as usize,
                    donor: r.get::<_, i64>(2)? as usize,
                    epoch: r.get::<_, i64>(3)? as usize,
                    donor_epoch: r.get::<_, i64>(4)? as usize,
                    old_genes: from_json(&r.get::<_, String>(5)?, "old_genes")?,
                    donor_genes: from_json(&r.get::<_, String>(6)?, "donor_genes")?,
                    new_genes: from_json(&r.get::<_, String>(7)?, "new_genes")?,
                    reward: r.get(8)?,
                    donor_reward: r.get(9)?,
                })
            })
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e));
        rows
    }

    fn put_checkpoint(&mut self, c: &CheckpointRef) -> Result<()> {
        self.tx
            .execute(
                "INSERT OR REPLACE INTO checkpoints (member, epoch, path) VALUES (?1, ?2, ?3)",
                params![c.member as i64, c.epoch as i64, c.path],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn checkpoints(&mut self) -> Result<Vec<CheckpointRef>> {
        let mut st = self
            .tx
            .prepare("SELECT member, epoch, path FROM checkpoints ORDER BY member, epoch")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| {
                Ok(CheckpointRef {
                    member: r.get::<_, i64>(0)? as usize,
                    epoch: r.get::<_, i64>(1)? as usize,
                    path: r.get(2)?,
                })
            })
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e));
        rows
    }

    fn delete_checkpoint(&mut self, member: usize, epoch: usize) -> Result<()> {
        self.tx
            .execute(
                "DELETE FROM checkpoints WHERE member = ?1 AND epoch = ?2",
                [member as i64, epoch as i64],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn clear(&mut self) -> Result<()> {
        self.tx
            .execute_batch(
                "DELETE FROM meta; DELETE FROM members; DELETE FROM results;
                 DELETE FROM events; DELETE FROM checkpoints;",
            )
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::Lineage;
    use crate::store::api::transact;

    fn member(id: usize) -> Member {
        Member {
            id,
            genes: vec![1, 2, 3],
            epoch: 0,
            status: Status::Ready,
            lease: None,
            pending: None,
            lineage: Lineage::new(vec![1, 2, 3]),
            log: Vec::new(),
        }
    }

    #[test]
    fn round_trips_and_rolls_back() {
        let d = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&d.path().join("p.sqlite")).unwrap();
        transact(&s, |tx| {
            let mut m = member(0);
            m.lease = Some(Lease {
                owner: "w".into(),
                expires_ms: 5,
            });
            m.pending = Some(Pending {
                donor: 1,
                donor_epoch: 3,
                own_epoch: 3,
            });
            tx.put_member(&m)?;
            tx.put_member(&member(1))?;
            tx.set_meta("k", "v")?;
            tx.add_result(&ResultRow {
                member: 0,
                epoch: 1,
                reward: 0.5,
                train_acc: 0.4,
                loss: 1.0,
                seconds: 2.0,
            })?;
            tx.put_checkpoint(&CheckpointRef {
                member: 0,
                epoch: 1,
                path: "c/0/epoch-1".into(),
            })
        })
        .unwrap();
        // A failing transaction leaves nothing behind.
        let r: Result<()> = transact(&s, |tx| {
            tx.put_member(&member(2))?;
            tx.set_meta("k", "changed")?;
            Err(Error::Invalid("boom".into()))
        });
        assert!(r.is_err());
        // A second handle on the same file sees the committed state only.
        let s2 = SqliteStore::open(s.path()).unwrap();
        transact(&s2, |tx| {
            let ms = tx.members()?;
            assert_eq!(ms.len(), 2);
            assert_eq!(ms[0].lease.as_ref().unwrap().owner, "w");
            assert_eq!(ms[0].pending.unwrap().donor_epoch, 3);
            assert_eq!(ms[0].lineage, Lineage::new(vec![1, 2, 3]));
            assert_eq!(tx.meta("k")?.as_deref(), Some("v"));
            assert_eq!(tx.results()?[0].reward, 0.5);
            assert_eq!(tx.checkpoints()?.len(), 1);
            tx.delete_checkpoint(0, 1)?;
            assert!(tx.checkpoints()?.is_empty());
            Ok(())
        })
        .unwrap();
    }
}
