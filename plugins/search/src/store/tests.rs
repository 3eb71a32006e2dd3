//! The stores through [`super::open`]: the URL picks the backend, and a store holds one run.

#[test]
fn a_file_belongs_to_one_run() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("p.sqlite");
    let url = format!("sqlite://{}", f.display());
    crate::store::open(&url, "one").unwrap();
    crate::store::open(f.to_str().unwrap(), "one").unwrap();
    let e = crate::store::open(&url, "two").err().unwrap();
    assert!(e.to_string().contains("run `one`, not `two`"), "{e}");
}

/// With a PostgreSQL server (skipped where none can be started).
#[cfg(feature = "cluster")]
mod postgres {
    use crate::lineage::Lineage;
    use crate::store::{open, transact, Member, Status};
    use rolekd_test_servers::pg as pg_server;

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

    /// Two searches in one database see only their own rows; a failed transaction leaves
    /// nothing; `clear` empties one run only; the server's clock is the Unix clock.
    #[test]
    fn runs_share_a_database_without_seeing_each_other() {
        let Some(server) = pg_server::start_or_skip("runs_share_a_database") else {
            return;
        };
        let a = open(&server.url(), "a").unwrap();
        let b = open(&server.url(), "b").unwrap();
        transact(a.as_ref(), |tx| {
            tx.put_member(&member(0))?;
            tx.put_member(&member(1))?;
            tx.set_meta("k", "a")
        })
        .unwrap();
        transact(b.as_ref(), |tx| tx.put_member(&member(0))).unwrap();
        let failed: rolekd_core::Result<()> = transact(b.as_ref(), |tx| {
            tx.put_member(&member(5))?;
            Err(rolekd_core::Error::Invalid("boom".into()))
        });
        assert!(failed.is_err());
        transact(b.as_ref(), |tx| {
            assert_eq!(tx.members()?.len(), 1);
            assert_eq!(tx.meta("k")?, None);
            let now = tx.now_ms()?;
            let mine = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            assert!((now - mine).abs() < 5_000, "{now} vs {mine}");
            tx.clear()
        })
        .unwrap();
        transact(a.as_ref(), |tx| {
            assert_eq!(tx.members()?.len(), 2);
            assert_eq!(tx.meta("k")?.as_deref(), Some("a"));
            Ok(())
        })
        .unwrap();
    }
}
