//! The population store on a PostgreSQL server, for workers on several machines.
//!
//! Several searches may share one database: every table is keyed by the search's run name
//! (`run` column), and `rolekd_runs` holds one row per run. Each transaction starts with
//! `SELECT ... FROM rolekd_runs WHERE run = $1 FOR UPDATE`: that row lock serialises the
//! transactions of one run exactly as SQLite's `BEGIN IMMEDIATE` does (the protocol in
//! [`crate::population`] reads, decides and writes in one transaction and relies on nobody
//! interleaving), while different runs never wait for each other. Under the default READ
//! COMMITTED isolation every statement after the lock sees everything committed before it.
//!
//! Leases are measured with the server's clock ([`StoreTx::now_ms`]): workers' clocks may
//! disagree, the database's is the only one they share. It is `clock_timestamp()`, not
//! `now()`: `now()` is frozen when the transaction starts, before it waited for the lock.

use super::api::{
    CheckpointRef, Event, Lease, Member, Pending, PopulationStore, ResultRow, Status, StoreTx,
};
use super::url::redact;
use postgres::{Client, NoTls, Row, Transaction};
use rolekd_core::{Error, Result};
use std::sync::Mutex;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rolekd_runs (
    run TEXT PRIMARY KEY
);
CREATE TABLE IF NOT EXISTS rolekd_meta (
    run TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run, key)
);
CREATE TABLE IF NOT EXISTS rolekd_members (
    run TEXT NOT NULL,
    id BIGINT NOT NULL,
    genes TEXT NOT NULL,
    epoch BIGINT NOT NULL,
    status TEXT NOT NULL,
    lease_owner TEXT,
    lease_expires_ms BIGINT,
    pending_donor BIGINT,
    pending_donor_epoch BIGINT,
    pending_own_epoch BIGINT,
    lineage TEXT NOT NULL,
    log TEXT NOT NULL,
    PRIMARY KEY (run, id)
);
CREATE TABLE IF NOT EXISTS rolekd_results (
    seq BIGSERIAL PRIMARY KEY,
    run TEXT NOT NULL,
    member BIGINT NOT NULL,
    epoch BIGINT NOT NULL,
    reward DOUBLE PRECISION NOT NULL,
    train_acc DOUBLE PRECISION NOT NULL,
    loss DOUBLE PRECISION NOT NULL,
    seconds DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS rolekd_results_run ON rolekd_results (run, seq);
CREATE TABLE IF NOT EXISTS rolekd_events (
    seq BIGSERIAL PRIMARY KEY,
    run TEXT NOT NULL,
    member BIGINT NOT NULL,
    donor BIGINT NOT NULL,
    epoch BIGINT NOT NULL,
    donor_epoch BIGINT NOT NULL,
    old_genes TEXT NOT NULL,
    donor_genes TEXT NOT NULL,
    new_genes TEXT NOT NULL,
    reward DOUBLE PRECISION NOT NULL,
    donor_reward DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS rolekd_events_run ON rolekd_events (run, seq);
CREATE TABLE IF NOT EXISTS rolekd_checkpoints (
    run TEXT NOT NULL,
    member BIGINT NOT NULL,
    epoch BIGINT NOT NULL,
    path TEXT NOT NULL,
    PRIMARY KEY (run, member, epoch)
);
";

/// Serialises schema creation between processes (`CREATE TABLE IF NOT EXISTS` races with
/// itself); an arbitrary constant.
const SCHEMA_LOCK: i64 = 0x726f_6c65_6b64;

/// One population (`run`) in a PostgreSQL database.
pub struct PostgresStore {
    url: String,
    run: String,
    pool: Mutex<Vec<Client>>,
}

impl PostgresStore {
    /// Connects to `url`, creates the tables if needed, and registers `run`.
    pub fn open(url: &str, run: &str) -> Result<PostgresStore> {
        let store = PostgresStore {
            url: url.to_string(),
            run: run.to_string(),
            pool: Mutex::new(Vec::new()),
        };
        let mut c = store.connect()?;
        let mut tx = c.transaction().map_err(|e| store.err(e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
            .map_err(|e| store.err(e))?;
        tx.batch_execute(SCHEMA).map_err(|e| store.err(e))?;
        tx.execute(
            "INSERT INTO rolekd_runs (run) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&store.run],
        )
        .map_err(|e| store.err(e))?;
        tx.commit().map_err(|e| store.err(e))?;
        store.put_back(c);
        Ok(store)
    }

    /// The run (population) this handle works on.
    pub fn run(&self) -> &str {
        &self.run
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Data(format!("{} (run `{}`): {e}", redact(&self.url), self.run))
    }

    fn connect(&self) -> Result<Client> {
        Client::connect(&self.url, NoTls).map_err(|e| self.err(e))
    }

    fn take(&self) -> Result<Client> {
        let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match pooled {
            Some(c) if !c.is_closed() => Ok(c),
            _ => self.connect(),
        }
    }

    fn put_back(&self, c: Client) {
        if !c.is_closed() {
            self.pool.lock().unwrap_or_else(|e| e.into_inner()).push(c);
        }
    }
}

impl PopulationStore for PostgresStore {
    fn transaction(&self, f: &mut dyn FnMut(&mut dyn StoreTx) -> Result<()>) -> Result<()> {
        let mut c = self.take()?;
        let result = (|| {
            let mut tx = c.transaction().map_err(|e| self.err(e))?;
            let locked = tx
                .query_opt(
                    "SELECT run FROM rolekd_runs WHERE run = $1 FOR UPDATE",
                    &[&self.run],
                )
                .map_err(|e| self.err(e))?;
            if locked.is_none() {
                return Err(self.err("the run was deleted from the database"));
            }
            let mut ptx = PgTx { tx, store: self };
            f(&mut ptx)?;
            ptx.tx.commit().map_err(|e| self.err(e))
        })();
        // A failed transaction rolled back when dropped; the connection is reusable unless
        // it broke.
        self.put_back(c);
        result
    }
}

struct PgTx<'a> {
    tx: Transaction<'a>,
    store: &'a PostgresStore,
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("store values serialise")
}

fn json<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| Error::Data(format!("population store: {what}: {e}")))
}

fn member_of(row: &Row) -> Result<Member> {
    let status: String = row.get("status");
    let owner: Option<String> = row.get("lease_owner");
    let expires: Option<i64> = row.get("lease_expires_ms");
    let donor: Option<i64> = row.get("pending_donor");
    let donor_epoch: Option<i64> = row.get("pending_donor_epoch");
    let own_epoch: Option<i64> = row.get("pending_own_epoch");
    Ok(Member {
        id: row.get::<_, i64>("id") as usize,
        genes: json(row.get("genes"), "genes")?,
        epoch: row.get::<_, i64>("epoch") as usize,
        status: Status::from_label(&status)
            .ok_or_else(|| Error::Data(format!("population store: unknown status `{status}`")))?,
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
        lineage: json(row.get("lineage"), "lineage")?,
        log: json(row.get("log"), "log")?,
    })
}

impl PgTx<'_> {
    fn err(&self, e: impl std::fmt::Display) -> Error {
        self.store.err(e)
    }

    fn run(&self) -> &str {
        &self.store.run
    }
}

const MEMBER_COLUMNS: &str = "id, genes, epoch, status, lease_owner, lease_expires_ms, \
     pending_donor, pending_donor_epoch, pending_own_epoch, lineage, log";

impl StoreTx for PgTx<'_> {
    fn now_ms(&mut self) -> Result<i64> {
        let row = self
            .tx
            .query_one(
                "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT",
                &[],
            )
            .map_err(|e| self.err(e))?;
        Ok(row.get(0))
    }

    fn meta(&mut self, key: &str) -> Result<Option<String>> {
        let run = self.run().to_string();
        let row = self
            .tx
            .query_opt(
                "SELECT value FROM rolekd_meta WHERE run = $1 AND key = $2",
                &[&run, &key],
            )
            .map_err(|e| self.err(e))?;
        Ok(row.map(|r| r.get(0)))
    }

    fn set_meta(&mut self, key: &str, value: &str) -> Result<()> {
        let run = self.run().to_string();
        self.tx
            .execute(
                "INSERT INTO rolekd_meta (run, key, value) VALUES ($1, $2, $3)
                 ON CONFLICT (run, key) DO UPDATE SET value = EXCLUDED.value",
                &[&run, &key, &value],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn members(&mut self) -> Result<Vec<Member>> {
        let run = self.run().to_string();
        let rows = self
            .tx
            .query(
                &format!("SELECT {MEMBER_COLUMNS} FROM rolekd_members WHERE run = $1 ORDER BY id"),
                &[&run],
            )
            .map_err(|e| self.err(e))?;
        rows.iter().map(member_of).collect()
    }

    fn member(&mut self, id: usize) -> Result<Member> {
        let run = self.run().to_string();
        let row = self
            .tx
            .query_opt(
                &format!("SELECT {MEMBER_COLUMNS} FROM rolekd_members WHERE run = $1 AND id = $2"),
                &[&run, &(id as i64)],
            )
            .map_err(|e| self.err(e))?
            .ok_or_else(|| self.err(format!("member {id}: no such member")))?;
        member_of(&row)
    }

    fn put_member(&mut self, m: &Member) -> Result<()> {
        let run = self.run().to_string();
        self.tx
            .execute(
                "INSERT INTO rolekd_members (run, id, genes, epoch, status, lease_owner,
                 lease_expires_ms, pending_donor, pending_donor_epoch, pending_own_epoch,
                 lineage, log) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 ON CONFLICT (run, id) DO UPDATE SET genes = EXCLUDED.genes,
                 epoch = EXCLUDED.epoch, status = EXCLUDED.status,
                 lease_owner = EXCLUDED.lease_owner,
                 lease_expires_ms = EXCLUDED.lease_expires_ms,
                 pending_donor = EXCLUDED.pending_donor,
                 pending_donor_epoch = EXCLUDED.pending_donor_epoch,
                 pending_own_epoch = EXCLUDED.pending_own_epoch,
                 lineage = EXCLUDED.lineage, log = EXCLUDED.log",
                &[
                    &run,
                    &(m.id as i64),
                    &to_json(&m.genes),
                    &(m.epoch as i64),
                    &m.status.label(),
                    &m.lease.as_ref().map(|l| l.owner.clone()),
                    &m.lease.as_ref().map(|l| l.expires_ms),
                    &m.pending.map(|p| p.donor as i64),
                    &m.pending.map(|p| p.donor_epoch as i64),
                    &m.pending.map(|p| p.own_epoch as i64),
                    &to_json(&m.lineage),
                    &to_json(&m.log),
                ],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn add_result(&mut self, r: &ResultRow) -> Result<()> {
        let run = self.run().to_string();
        self.tx
            .execute(
                "INSERT INTO rolekd_results (run, member, epoch, reward, train_acc, loss, seconds)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &run,
                    &(r.member as i64),
                    &(r.epoch as i64),
                    &r.reward,
                    &r.train_acc,
                    &r.loss,
                    &r.seconds,
                ],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn results(&mut self) -> Result<Vec<ResultRow>> {
        let run = self.run().to_string();
        let rows = self
            .tx
            .query(
                "SELECT member, epoch, reward, train_acc, loss, seconds FROM rolekd_results
                 WHERE run = $1 ORDER BY seq",
                &[&run],
            )
            .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| ResultRow {
                member: r.get::<_, i64>(0) as usize,
                epoch: r.get::<_, i64>(1) as usize,
                reward: r.get(2),
                train_acc: r.get(3),
                loss: r.get(4),
                seconds: r.get(5),
            })
            .collect())
    }

    fn add_event(&mut self, e: &Event) -> Result<()> {
        let run = self.run().to_string();
        self.tx
            .execute(
                "INSERT INTO rolekd_events (run, member, donor, epoch, donor_epoch, old_genes,
                 donor_genes, new_genes, reward, donor_reward)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &run,
                    &(e.member as i64),
                    &(e.donor as i64),
                    &(e.epoch as i64),
                    &(e.donor_epoch as i64),
                    &to_json(&e.old_genes),
                    &to_json(&e.donor_genes),
                    &to_json(&e.new_genes),
                    &e.reward,
                    &e.donor_reward,
                ],
            )
            .map(|_| ())
            .map_err(|err| self.err(err))
    }

    fn events(&mut self) -> Result<Vec<Event>> {
        let run = self.run().to_string();
        let rows = self
            .tx
            .query(
                "SELECT seq, member, donor, epoch, donor_epoch, old_genes, donor_genes,
                 new_genes, reward, donor_reward FROM rolekd_events WHERE run = $1 ORDER BY seq",
                &[&run],
            )
            .map_err(|e| self.err(e))?;
        rows.iter()
            .map(|r| {
                Ok(Event {
                    seq: r.get(0),
                    member: r.get::<_, i64>(1) as usize,
                    donor: r.get::<_, i64>(2) as usize,
                    epoch: r.get::<_, i64>(3) as usize,
                    donor_epoch: r.get::<_, i64>(4) as usize,
                    old_genes: json(r.get(5), "old_genes")?,
                    donor_genes: json(r.get(6), "donor_genes")?,
                    new_genes: json(r.get(7), "new_genes")?,
                    reward: r.get(8),
                    donor_reward: r.get(9),
                })
            })
            .collect()
    }

    fn put_checkpoint(&mut self, c: &CheckpointRef) -> Result<()> {
        let run = self.run().to_string();
        self.tx
            .execute(
                "INSERT INTO rolekd_checkpoints (run, member, epoch, path) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (run, member, epoch) DO UPDATE SET path = EXCLUDED.path",
                &[&run, &(c.member as i64), &(c.epoch as i64), &c.path],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn checkpoints(&mut self) -> Result<Vec<CheckpointRef>> {
        let run = self.run().to_string();
        let rows = self
            .tx
            .query(
                "SELECT member, epoch, path FROM rolekd_checkpoints WHERE run = $1
                 ORDER BY member, epoch",
                &[&run],
            )
            .map_err(|e| self.err(e))?;
        Ok(rows
            .iter()
            .map(|r| CheckpointRef {
                member: r.get::<_, i64>(0) as usize,
                epoch: r.get::<_, i64>(1) as usize,
                path: r.get(2),
            })
            .collect())
    }

    fn delete_checkpoint(&mut self, member: usize, epoch: usize) -> Result<()> {
        let run = self.run().to_string();
        self.tx
            .execute(
                "DELETE FROM rolekd_checkpoints WHERE run = $1 AND member = $2 AND epoch = $3",
                &[&run, &(member as i64), &(epoch as i64)],
            )
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    fn clear(&mut self) -> Result<()> {
        let run = self.run().to_string();
        for table in [
            "rolekd_meta",
            "rolekd_members",
            "rolekd_results",
            "rolekd_events",
            "rolekd_checkpoints",
        ] {
            self.tx
                .execute(&format!("DELETE FROM {table} WHERE run = $1"), &[&run])
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::url::redact;

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            redact("postgres://u:secret@h:5/db"),
            "postgres://u:***@h:5/db"
        );
        assert_eq!(redact("postgres://u@h:5/db"), "postgres://u@h:5/db");
    }
}
