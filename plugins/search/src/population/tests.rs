//! The coordination on the real stores (SQLite, and PostgreSQL on a throwaway server) with
//! a fake trainer: a member's "weights" are one number in a JSON file per epoch, advanced by
//! a deterministic function of the member, the epoch and the policy in force, so whole
//! searches run in milliseconds. Crashes are panics at chosen points (the lease stays
//! behind, as after `kill -9`). Every scenario runs on both stores: one test per scenario
//! on SQLite, and `every_scenario_on_postgres` runs them all against one server.

use super::work::{run_workers, step, Trials};
use super::*;
use crate::space::PbaSearchSpace;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use rolekd_augment::schedule::import_pba_log;
use rolekd_core::config::Params;
use rolekd_core::registry;
use rolekd_test_servers::pg as pg_server;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Point {
    /// After the first trained epoch of a multi-epoch step was saved.
    MidTrain,
    /// Trained, not published.
    AfterTrain,
    /// Published, not reported.
    AfterPublish,
    /// An exploit copied, not marked applied.
    InExploit,
}

struct Fake {
    dir: PathBuf,
    crash: Option<(Point, usize)>,
    seen: Mutex<BTreeMap<String, usize>>,
    jitter: bool,
    trained_epochs: AtomicUsize,
    /// Every other step starts without the member's local state, as on a machine that
    /// never trained it (workers sharing only the stores).
    forget: bool,
    steps: AtomicUsize,
    published: AtomicUsize,
}

#[derive(serde::Serialize, serde::Deserialize, Clone)]
struct FakeState {
    epoch: usize,
    w: f64,
    history: Vec<(usize, f64)>,
}

fn reward_of(w: f64) -> f64 {
    (w / (1.0 + w) * 1e6).round() / 1e6
}

impl Fake {
    fn new(dir: &Path, crash: Option<(Point, usize)>, jitter: bool) -> Fake {
        Fake {
            dir: dir.to_path_buf(),
            crash,
            seen: Mutex::new(BTreeMap::new()),
            jitter,
            trained_epochs: AtomicUsize::new(0),
            forget: false,
            steps: AtomicUsize::new(0),
            published: AtomicUsize::new(0),
        }
    }

    fn forgetful(mut self) -> Fake {
        self.forget = true;
        self
    }

    fn at(&self, p: Point) {
        let n = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            let n = seen.entry(format!("{p:?}")).or_insert(0);
            *n += 1;
            *n
        };
        if self.crash == Some((p, n)) {
            panic!("simulated kill at {p:?} #{n}");
        }
    }

    fn sleep(&self) {
        if self.jitter {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .subsec_nanos();
            std::thread::sleep(Duration::from_micros((nanos % 3000) as u64));
        }
    }

    fn state_dir(&self, m: usize) -> PathBuf {
        self.dir.join(format!("m{m}"))
    }

    fn load(&self, dir: &Path) -> Option<FakeState> {
        let latest = std::fs::read_to_string(dir.join("latest")).ok()?;
        let text = std::fs::read_to_string(dir.join(format!("epoch-{}", latest.trim()))).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn save(&self, dir: &Path, s: &FakeState) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(
            dir.join(format!("epoch-{}", s.epoch)),
            serde_json::to_string(s).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.join("latest"), s.epoch.to_string()).unwrap();
    }
}

impl Trials for Fake {
    fn train(
        &self,
        member: &Member,
        from: Option<&CheckpointRef>,
        to: usize,
        _halt: &AtomicBool,
    ) -> Result<Vec<ResultRow>> {
        let dir = self.state_dir(member.id);
        if self.forget && self.steps.fetch_add(1, Ordering::SeqCst) % 2 == 1 {
            let _ = std::fs::remove_dir_all(&dir);
        }
        // As the real trials do: a local state that is not the published one it must
        // continue from is replaced by it.
        if let Some(from) = from {
            let text = std::fs::read_to_string(self.dir.join(&from.path)).unwrap();
            let published: FakeState = serde_json::from_str(&text).unwrap();
            let local = std::fs::read_to_string(dir.join(format!("epoch-{}", from.epoch))).ok();
            let latest = self.load(&dir).map(|l| l.epoch);
            if local.as_deref() != Some(text.as_str()) || latest < Some(from.epoch) {
                self.save(&dir, &published);
            }
        }
        let mut s = self.load(&dir).unwrap_or(FakeState {
            epoch: 0,
            w: 0.0,
            history: Vec::new(),
        });
        let epochs = 1000;
        let sched = member.lineage.schedule(epochs).unwrap();
        while s.epoch < to {
            let genes = sched.genes_at(s.epoch, epochs);
            let sum: i64 = genes.iter().sum();
            let inc = 0.05
                + ((sum * 31 + s.epoch as i64 * 7 + member.id as i64 * 13) % 17) as f64 / 100.0;
            s.w += inc;
            s.epoch += 1;
            s.history.push((s.epoch, reward_of(s.w)));
            self.save(&dir, &s);
            self.trained_epochs.fetch_add(1, Ordering::SeqCst);
            self.sleep();
            if s.epoch < to && s.epoch == member.epoch + 1 {
                self.at(Point::MidTrain);
            }
        }
        Ok(s.history
            .iter()
            .filter(|(e, _)| *e > member.epoch && *e <= to)
            .map(|&(epoch, reward)| ResultRow {
                member: member.id,
                epoch,
                reward,
                train_acc: 0.0,
                loss: 0.0,
                seconds: 0.0,
            })
            .collect())
    }

    fn publish(&self, member: usize, epoch: usize) -> Result<CheckpointRef> {
        self.at(Point::AfterTrain);
        let s = self.load(&self.state_dir(member)).unwrap();
        assert_eq!(s.epoch, epoch);
        let n = self.published.fetch_add(1, Ordering::SeqCst);
        // Unique across restarts too, as the real tags are.
        let path = format!("ckpt/{member}-{epoch}-{n}-{:08x}", rand::random::<u32>());
        std::fs::create_dir_all(self.dir.join("ckpt")).unwrap();
        std::fs::write(self.dir.join(&path), serde_json::to_string(&s).unwrap()).unwrap();
        self.sleep();
        self.at(Point::AfterPublish);
        Ok(CheckpointRef {
            member,
            epoch,
            path,
        })
    }

    fn exploit(
        &self,
        member: usize,
        donor: &CheckpointRef,
        own: Option<&CheckpointRef>,
        _plan: &SearchPlan,
    ) -> Result<()> {
        let d: FakeState =
            serde_json::from_str(&std::fs::read_to_string(self.dir.join(&donor.path)).unwrap())
                .unwrap();
        let mut s = d.clone();
        // The member keeps its own history, as the real one does.
        if let Some(own) = own {
            let o: FakeState =
                serde_json::from_str(&std::fs::read_to_string(self.dir.join(&own.path)).unwrap())
                    .unwrap();
            s.history = o.history;
            s.history.retain(|(e, _)| *e <= d.epoch);
        }
        self.save(&self.state_dir(member), &s);
        self.at(Point::InExploit);
        Ok(())
    }

    fn discard(&self, ckpt: &CheckpointRef) -> Result<()> {
        std::fs::remove_file(self.dir.join(&ckpt.path)).unwrap();
        Ok(())
    }

    fn log(&self, _line: &str) {}
}

fn pba(population: usize, interval: usize) -> Box<dyn SearchStrategy> {
    let p = Params::from_yaml(&format!(
        "{{type: pba, population: {population}, interval: {interval}, quantile: 0.25, init: random}}"
    ))
    .unwrap();
    registry::search_strategy("pba").unwrap()(&p).unwrap()
}

fn config(strategy: &dyn SearchStrategy, epochs: usize, sync: bool) -> SearchConfig {
    SearchConfig {
        epochs,
        plan: strategy.plan(),
        sync,
        slack: strategy.plan().interval,
        lease: Duration::from_secs(60),
        seed: Seed(42).child("search"),
        strategy_name: "pba".into(),
    }
}

/// What must not depend on workers, timing or kills: every event, every reward, every
/// lineage and log.
#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<(usize, usize, usize, usize, Vec<i64>)>,
    rewards: BTreeMap<(usize, usize), f64>,
    lineages: Vec<Lineage>,
    logs: Vec<Vec<PbaLogLine>>,
}

fn outcome(snap: &Snapshot) -> Outcome {
    let mut rewards = BTreeMap::new();
    for r in &snap.results {
        // A retrained epoch must reproduce the same reward.
        if let Some(old) = rewards.insert((r.member, r.epoch), r.reward) {
            assert_eq!(old, r.reward, "member {} epoch {}", r.member, r.epoch);
        }
    }
    Outcome {
        events: snap
            .events
            .iter()
            .map(|e| {
                (
                    e.member,
                    e.donor,
                    e.epoch,
                    e.donor_epoch,
                    e.new_genes.clone(),
                )
            })
            .collect(),
        rewards,
        lineages: snap.members.iter().map(|m| m.lineage.clone()).collect(),
        logs: snap.members.iter().map(|m| m.log.clone()).collect(),
    }
}

/// Which store a scenario runs on.
enum Backend {
    Sqlite,
    /// A server's URL; each scenario's run is named after its temporary directory.
    Postgres(String),
}

impl Backend {
    /// The store of the search in `dir` (the same population every time for one `dir`).
    fn open(&self, dir: &Path) -> Box<dyn PopulationStore> {
        match self {
            Backend::Sqlite => Box::new(SqliteStore::open(&dir.join("population.sqlite")).unwrap()),
            Backend::Postgres(url) => {
                let run = dir.file_name().unwrap().to_string_lossy();
                Box::new(PostgresStore::open(url, &run).unwrap())
            }
        }
    }
}

/// Runs a whole search in `dir` (resuming what the store there holds).
fn search(
    b: &Backend,
    dir: &Path,
    strategy: &dyn SearchStrategy,
    cfg: &SearchConfig,
    workers: usize,
    fake: &Fake,
) -> Result<Snapshot> {
    let store = b.open(dir);
    let store = store.as_ref();
    let mut pop = Population::new(store, strategy, &PbaSearchSpace, cfg.clone());
    pop.init(true)?;
    let never = AtomicBool::new(false);
    run_workers(&pop, &vec![fake as &dyn Trials; workers.max(1)], &never)?;
    pop.snapshot()
}

#[test]
fn sync_search_is_independent_of_workers_and_timing() {
    sync_search_is_independent_of_workers_and_timing_on(&Backend::Sqlite);
}

fn sync_search_is_independent_of_workers_and_timing_on(b: &Backend) {
    let s = pba(6, 3);
    let cfg = config(s.as_ref(), 9, true);
    let a = tempfile::tempdir().unwrap();
    let one = search(
        b,
        a.path(),
        s.as_ref(),
        &cfg,
        1,
        &Fake::new(a.path(), None, false),
    )
    .unwrap();
    let t = tempfile::tempdir().unwrap();
    let three = search(
        b,
        t.path(),
        s.as_ref(),
        &cfg,
        3,
        &Fake::new(t.path(), None, true),
    )
    .unwrap();
    assert_eq!(outcome(&one), outcome(&three));
    // Decisions at epochs 3 and 6: ceil(6 * 0.25) = 2 exploits each.
    let epochs: Vec<usize> = one.events.iter().map(|e| e.epoch).collect();
    assert_eq!(epochs, vec![3, 3, 6, 6]);
    assert!(one.members.iter().all(|m| m.status == Status::Done));
    // Every member reported every epoch exactly once.
    assert_eq!(one.results.len(), 6 * 9);
    // An exploited member continues from its donor: its next reward builds on the donor's.
    for e in &one.events {
        assert!(e.donor_reward >= e.reward, "{e:?}");
        let donor = &one.members[e.donor];
        assert_eq!(e.donor_genes.len(), 60);
        assert!(donor.lineage.0.iter().all(|p| p.genes.len() == 60));
    }
    // A different seed makes different decisions.
    let mut other = cfg.clone();
    other.seed = Seed(7).child("search");
    let c = tempfile::tempdir().unwrap();
    let seven = search(
        b,
        c.path(),
        s.as_ref(),
        &other,
        2,
        &Fake::new(c.path(), None, false),
    )
    .unwrap();
    assert_ne!(outcome(&one), outcome(&seven));
}

/// PBA with 5 members, 6 epochs, interval 2, and its outcome run without faults.
fn uninterrupted_5x6(b: &Backend) -> (Box<dyn SearchStrategy>, SearchConfig, Outcome) {
    let s = pba(5, 2);
    let cfg = config(s.as_ref(), 6, true);
    let r = tempfile::tempdir().unwrap();
    let fake = Fake::new(r.path(), None, false);
    let reference = outcome(&search(b, r.path(), s.as_ref(), &cfg, 2, &fake).unwrap());
    (s, cfg, reference)
}

#[test]
fn killed_search_resumes_to_the_same_result() {
    killed_search_resumes_to_the_same_result_on(&Backend::Sqlite);
}

fn killed_search_resumes_to_the_same_result_on(b: &Backend) {
    let (s, cfg, reference) = uninterrupted_5x6(b);
    assert!(!reference.events.is_empty());
    for crash in [
        (Point::MidTrain, 3),
        (Point::AfterTrain, 7),
        (Point::AfterPublish, 6),
        (Point::InExploit, 1),
        (Point::InExploit, 2),
    ] {
        let d = tempfile::tempdir().unwrap();
        let killed = Fake::new(d.path(), Some(crash), true);
        let err = search(b, d.path(), s.as_ref(), &cfg, 2, &killed).unwrap_err();
        assert!(err.to_string().contains("simulated kill"), "{err}");
        // The lease of the killed member is still in the store; a restart reclaims it.
        let resumed = Fake::new(d.path(), None, false);
        let snap = search(b, d.path(), s.as_ref(), &cfg, 2, &resumed).unwrap();
        assert_eq!(outcome(&snap), reference, "after a kill at {crash:?}");
        // The restart trained only what was lost, not the whole search again.
        let total = killed.trained_epochs.load(Ordering::SeqCst)
            + resumed.trained_epochs.load(Ordering::SeqCst);
        assert_eq!(total, 5 * 6, "{crash:?}: epochs trained");
    }
}

#[test]
fn workers_sharing_only_the_stores_reach_the_same_result() {
    workers_sharing_only_the_stores_reach_the_same_result_on(&Backend::Sqlite);
}

/// Members whose local state is lost between steps (trained by another machine last)
/// continue from their published state, or from the one their exploit published: the same
/// search, with no epoch trained twice.
fn workers_sharing_only_the_stores_reach_the_same_result_on(b: &Backend) {
    let (s, cfg, reference) = uninterrupted_5x6(b);
    let d = tempfile::tempdir().unwrap();
    let forgetful = Fake::new(d.path(), None, true).forgetful();
    let snap = search(b, d.path(), s.as_ref(), &cfg, 3, &forgetful).unwrap();
    assert!(!snap.events.is_empty());
    assert_eq!(outcome(&snap), reference);
    assert_eq!(forgetful.trained_epochs.load(Ordering::SeqCst), 5 * 6);
    // And after a kill inside an exploit, with the state lost too.
    let k = tempfile::tempdir().unwrap();
    let killed = Fake::new(k.path(), Some((Point::InExploit, 2)), true).forgetful();
    assert!(search(b, k.path(), s.as_ref(), &cfg, 2, &killed).is_err());
    let resumed = Fake::new(k.path(), None, false).forgetful();
    let snap = search(b, k.path(), s.as_ref(), &cfg, 2, &resumed).unwrap();
    assert_eq!(outcome(&snap), reference);
}

#[test]
fn async_search_finishes_and_logs_decode_to_lineages() {
    async_search_finishes_and_logs_decode_to_lineages_on(&Backend::Sqlite);
}

fn async_search_finishes_and_logs_decode_to_lineages_on(b: &Backend) {
    let s = pba(4, 2);
    let cfg = config(s.as_ref(), 8, false);
    let d = tempfile::tempdir().unwrap();
    let snap = search(
        b,
        d.path(),
        s.as_ref(),
        &cfg,
        2,
        &Fake::new(d.path(), None, true),
    )
    .unwrap();
    assert!(snap.members.iter().all(|m| m.status == Status::Done));
    assert!(!snap.events.is_empty());
    for m in &snap.members {
        let text = crate::lineage::log_text(&m.log);
        assert_eq!(
            import_pba_log(&text, 8).unwrap(),
            m.lineage.schedule(8).unwrap(),
            "member {}",
            m.id
        );
    }
}

#[test]
fn sync_logs_decode_and_only_needed_checkpoints_remain() {
    sync_logs_decode_and_only_needed_checkpoints_remain_on(&Backend::Sqlite);
}

fn sync_logs_decode_and_only_needed_checkpoints_remain_on(b: &Backend) {
    let s = pba(4, 2);
    let cfg = config(s.as_ref(), 6, true);
    let d = tempfile::tempdir().unwrap();
    let fake = Fake::new(d.path(), None, false);
    let snap = search(b, d.path(), s.as_ref(), &cfg, 2, &fake).unwrap();
    for m in &snap.members {
        let text = crate::lineage::log_text(&m.log);
        assert_eq!(
            import_pba_log(&text, 6).unwrap(),
            m.lineage.schedule(6).unwrap()
        );
        // A member's final genes are its lineage's last policy.
        assert_eq!(m.genes, m.lineage.current());
    }
    let store = b.open(d.path());
    let ckpts = transact(store.as_ref(), |tx| tx.checkpoints()).unwrap();
    assert_eq!(ckpts.len(), 4);
    assert!(ckpts.iter().all(|c| c.epoch == 6));
    let files = std::fs::read_dir(d.path().join("ckpt")).unwrap().count();
    assert_eq!(files, 4);
}

#[test]
fn leases_expire_and_a_stale_report_is_dropped() {
    leases_expire_and_a_stale_report_is_dropped_on(&Backend::Sqlite);
}

fn leases_expire_and_a_stale_report_is_dropped_on(b: &Backend) {
    let s = pba(2, 1);
    let mut cfg = config(s.as_ref(), 2, true);
    cfg.lease = Duration::from_millis(1000);
    let d = tempfile::tempdir().unwrap();
    let store = b.open(d.path());
    let store = store.as_ref();
    let mut pop = Population::new(store, s.as_ref(), &PbaSearchSpace, cfg);
    assert_eq!(pop.init(true).unwrap(), None);
    let Claim::Member(a) = pop.claim("A").unwrap() else {
        panic!()
    };
    let Claim::Member(b) = pop.claim("B").unwrap() else {
        panic!()
    };
    assert_ne!(a.id, b.id);
    assert_eq!(pop.claim("C").unwrap(), Claim::Wait);
    // B renews in time (a heartbeat); A's lease expires: C takes A's member over and A's
    // report is refused. (Margins of 200 ms and more, for a loaded machine.)
    std::thread::sleep(Duration::from_millis(600));
    assert!(pop.renew(b.id, "B").unwrap());
    assert!(!pop.renew(b.id, "A").unwrap());
    std::thread::sleep(Duration::from_millis(600));
    let Claim::Member(c) = pop.claim("C").unwrap() else {
        panic!()
    };
    assert_eq!(c.id, a.id);
    let row = ResultRow {
        member: a.id,
        epoch: 1,
        reward: 0.5,
        train_acc: 0.0,
        loss: 0.0,
        seconds: 0.0,
    };
    let ck = CheckpointRef {
        member: a.id,
        epoch: 1,
        path: "x".into(),
    };
    assert_eq!(
        pop.report(a.id, "A", std::slice::from_ref(&row), &ck)
            .unwrap(),
        Reported::LostLease
    );
    assert_eq!(
        pop.report(a.id, "C", &[row], &ck).unwrap(),
        Reported::Recorded { exploits: 0 }
    );
    // Sync: the reported member waits for the other before anything is claimable.
    assert_eq!(pop.claim("C").unwrap(), Claim::Wait);
    // A restart drops every lease.
    let mut again = Population::new(store, s.as_ref(), &PbaSearchSpace, pop.cfg.clone());
    let r = again.init(true).unwrap().unwrap();
    assert_eq!((r.results, r.leases_dropped), (1, 1));
    // A store made for another search is refused.
    let mut cfg3 = pop.cfg.clone();
    cfg3.epochs = 5;
    let mut wrong = Population::new(store, s.as_ref(), &PbaSearchSpace, cfg3);
    assert!(wrong
        .init(true)
        .unwrap_err()
        .to_string()
        .contains("made for a search"));
}

#[test]
fn an_expired_lease_never_publishes() {
    an_expired_lease_never_publishes_on(&Backend::Sqlite);
}

/// Fencing: a worker that stalled past its lease (a stopped process revived later) cannot
/// renew, apply an exploit or report, even though nobody took its member over meanwhile;
/// the member is claimable again and its next owner reports normally.
fn an_expired_lease_never_publishes_on(b: &Backend) {
    let s = pba(2, 1);
    let mut cfg = config(s.as_ref(), 2, false);
    cfg.lease = Duration::from_millis(300);
    let d = tempfile::tempdir().unwrap();
    let store = b.open(d.path());
    let mut pop = Population::new(store.as_ref(), s.as_ref(), &PbaSearchSpace, cfg);
    pop.init(true).unwrap();
    let Claim::Member(z) = pop.claim("zombie").unwrap() else {
        panic!()
    };
    assert!(pop.renew(z.id, "zombie").unwrap());
    std::thread::sleep(Duration::from_millis(450));
    let row = ResultRow {
        member: z.id,
        epoch: 1,
        reward: 0.5,
        train_acc: 0.0,
        loss: 0.0,
        seconds: 0.0,
    };
    let ck = CheckpointRef {
        member: z.id,
        epoch: 1,
        path: "zombie".into(),
    };
    assert!(!pop.renew(z.id, "zombie").unwrap());
    assert!(!pop.applied(z.id, "zombie", None).unwrap());
    assert_eq!(
        pop.report(z.id, "zombie", std::slice::from_ref(&row), &ck)
            .unwrap(),
        Reported::LostLease
    );
    let snap = pop.snapshot().unwrap();
    assert!(snap.results.is_empty());
    assert!(transact(store.as_ref(), |tx| tx.checkpoints())
        .unwrap()
        .is_empty());
    // The member is free again; its new owner's report is recorded.
    let Claim::Member(n) = pop.claim("next").unwrap() else {
        panic!()
    };
    assert_eq!(n.id, z.id);
    assert_eq!(
        pop.report(z.id, "next", &[row], &ck).unwrap(),
        Reported::Recorded { exploits: 0 }
    );
}

/// Trains until told to stop, then reports the interrupt (as the trainer does).
#[derive(Default)]
struct UntilStopped {
    stopped: AtomicBool,
}

impl Trials for UntilStopped {
    fn train(
        &self,
        _m: &Member,
        _from: Option<&CheckpointRef>,
        _to: usize,
        halt: &AtomicBool,
    ) -> Result<Vec<ResultRow>> {
        let t0 = Instant::now();
        while !halt.load(Ordering::SeqCst) {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "training never stopped"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stopped.store(true, Ordering::SeqCst);
        Err(Error::Interrupted)
    }

    fn publish(&self, _member: usize, _epoch: usize) -> Result<CheckpointRef> {
        panic!("published after losing the lease");
    }

    fn exploit(
        &self,
        _member: usize,
        _donor: &CheckpointRef,
        _own: Option<&CheckpointRef>,
        _plan: &SearchPlan,
    ) -> Result<()> {
        Ok(())
    }

    fn discard(&self, _ckpt: &CheckpointRef) -> Result<()> {
        Ok(())
    }

    fn log(&self, _line: &str) {}
}

#[test]
fn a_lost_lease_stops_training() {
    a_lost_lease_stops_training_on(&Backend::Sqlite);
}

/// The heartbeat finds the lease taken (as after a stall longer than the lease): the
/// training stops at once, nothing is published or reported, the step ends without error
/// and the new owner keeps the member.
fn a_lost_lease_stops_training_on(b: &Backend) {
    let s = pba(2, 1);
    let mut cfg = config(s.as_ref(), 2, true);
    cfg.lease = Duration::from_millis(300);
    let d = tempfile::tempdir().unwrap();
    let store = b.open(d.path());
    let mut pop = Population::new(store.as_ref(), s.as_ref(), &PbaSearchSpace, cfg);
    pop.init(true).unwrap();
    let Claim::Member(m) = pop.claim("stalled").unwrap() else {
        panic!()
    };
    let id = m.id;
    let trials = UntilStopped::default();
    let never = AtomicBool::new(false);
    let t0 = Instant::now();
    std::thread::scope(|sc| {
        let h = sc.spawn(|| step(&pop, &trials, "stalled", m, &never));
        std::thread::sleep(Duration::from_millis(150));
        transact(store.as_ref(), |tx| {
            let mut m = tx.member(id)?;
            m.lease = Some(Lease {
                owner: "thief".into(),
                expires_ms: tx.now_ms()? + 60_000,
            });
            tx.put_member(&m)
        })
        .unwrap();
        h.join().unwrap().unwrap();
    });
    assert!(trials.stopped.load(Ordering::SeqCst));
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let snap = pop.snapshot().unwrap();
    assert!(snap.results.is_empty());
    assert_eq!(snap.members[id].lease.as_ref().unwrap().owner, "thief");
}

#[test]
fn a_worker_for_one_member_claims_only_it() {
    let s = pba(3, 1);
    let cfg = config(s.as_ref(), 1, true);
    let d = tempfile::tempdir().unwrap();
    let store = Backend::Sqlite.open(d.path());
    let mut pop = Population::new(store.as_ref(), s.as_ref(), &PbaSearchSpace, cfg);
    pop.init(true).unwrap();
    let Claim::Member(m) = pop.claim_only("w", Some(2)).unwrap() else {
        panic!()
    };
    assert_eq!(m.id, 2);
    assert_eq!(pop.claim_only("v", Some(2)).unwrap(), Claim::Wait);
    assert!(pop.claim_only("v", Some(7)).is_err());
    let row = ResultRow {
        member: 2,
        epoch: 1,
        reward: 0.5,
        train_acc: 0.0,
        loss: 0.0,
        seconds: 0.0,
    };
    let ck = CheckpointRef {
        member: 2,
        epoch: 1,
        path: "c".into(),
    };
    pop.report(2, "w", &[row], &ck).unwrap();
    // Member 2 is done; the others are not, so `--any` would go on.
    assert_eq!(pop.claim_only("w", Some(2)).unwrap(), Claim::Finished);
    assert!(matches!(pop.claim("w").unwrap(), Claim::Member(m) if m.id == 0));
}

#[test]
fn every_scenario_on_postgres() {
    let Some(server) = pg_server::start_or_skip("every_scenario_on_postgres") else {
        return;
    };
    let b = Backend::Postgres(server.url());
    sync_search_is_independent_of_workers_and_timing_on(&b);
    killed_search_resumes_to_the_same_result_on(&b);
    async_search_finishes_and_logs_decode_to_lineages_on(&b);
    sync_logs_decode_and_only_needed_checkpoints_remain_on(&b);
    leases_expire_and_a_stale_report_is_dropped_on(&b);
    an_expired_lease_never_publishes_on(&b);
    a_lost_lease_stops_training_on(&b);
    workers_sharing_only_the_stores_reach_the_same_result_on(&b);
}

#[test]
fn windowed_rewards_average_the_last_epochs_of_a_member() {
    let row = |member, epoch, reward| ResultRow {
        member,
        epoch,
        reward,
        train_acc: 0.0,
        loss: 0.0,
        seconds: 0.0,
    };
    // Member 0's epoch 3 was reported twice (a resumed member): the latest row counts.
    let results = vec![
        row(0, 1, 0.2),
        row(0, 2, 0.6),
        row(0, 3, 0.1),
        row(1, 3, 0.9),
        row(0, 3, 0.4),
    ];
    assert_eq!(windowed_reward(&results, 0, 3, 1), Some(0.4));
    assert_eq!(windowed_reward(&results, 0, 3, 2), Some(0.5));
    assert!((windowed_reward(&results, 0, 3, 3).unwrap() - 0.4).abs() < 1e-12);
    // Missing epochs are skipped; no reward at the epoch itself: none.
    assert_eq!(windowed_reward(&results, 1, 3, 2), Some(0.9));
    assert_eq!(windowed_reward(&results, 1, 2, 2), None);
}
