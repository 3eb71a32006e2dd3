//! A search trained by worker processes (`rolekd-run worker`) on loopback, on SQLite and on
//! PostgreSQL: the pipeline's search stage has `workers: 0` (it initialises the population,
//! waits, writes the outputs), four workers train the members, one is SIGKILLed while it
//! trains and another gets SIGTERM (it must stop cleanly, exit 130). The killed worker's
//! member must be reclaimed once the lease (3 s) expired and resumed from its last saved
//! epoch, the search must finish, every exploit's donor must have been in the
//! top quantile when it was chosen, and every checkpoint the store references must exist.
//! The search is `sync`, so its schedule must also equal the one the same pipeline finds
//! with two threads in one process.

mod common;

use common::{bin, write, TINY_DATA};
use rolekd_search::store::{self, pg_server, transact, Status};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The two scenarios share two cores: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const POPULATION: usize = 4;
const EPOCHS: usize = 3;
const WORKERS: usize = 4;

fn pipeline(store_line: &str) -> String {
    format!(
        "name: scale-out\nseed: 5\ndevice: cpu\n{TINY_DATA}stages:
  search:
    kind: search
    role: teacher
    train_size: 400
    val_size: 300
    workers: 0
    lease_seconds: 3
    keep_states: true
{store_line}    strategy: {{type: pba, population: {POPULATION}, interval: 1, quantile: 0.25}}
    trial:
      model: {{type: small-cnn, channels: [48, 96]}}
      epochs: {EPOCHS}
      batch_size: 20
      optimizer: {{type: sgd, lr: 0.05, momentum: 0.9}}
"
    )
}

/// A child process killed if the test fails before it ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cwd: &Path, args: &[&str], log: &Path) -> Proc {
    let f = std::fs::File::create(log).unwrap();
    Proc(
        Command::new(bin())
            .args(args)
            .current_dir(cwd)
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn claims(log: &Path) -> usize {
    read(log).matches("first training step").count()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs the whole scenario on the store `url` (None: the stage's SQLite file).
fn scenario(label: &str, url: Option<String>) {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = tempfile::tempdir().unwrap();
    let store_line = url
        .as_ref()
        .map(|u| format!("    store: {u}\n    run: scale-{label}\n"))
        .unwrap_or_default();
    let p = write(d.path(), "p.yaml", &pipeline(&store_line));
    let stage_dir = d.path().join("r/search");
    let url = url.unwrap_or_else(|| stage_dir.join("population.sqlite").display().to_string());
    let run = if store_line.is_empty() {
        "search".to_string()
    } else {
        format!("scale-{label}")
    };
    let t0 = Instant::now();
    let coord_log = d.path().join("coordinator.log");
    let mut coordinator = spawn(
        d.path(),
        &[p.to_str().unwrap(), "--run-dir", "r"],
        &coord_log,
    );
    wait_for("the population", Duration::from_secs(120), || {
        stage_dir.join("population.json").exists()
    });
    let logs: Vec<PathBuf> = (0..WORKERS)
        .map(|w| d.path().join(format!("worker-{w}.log")))
        .collect();
    let mut workers: Vec<Proc> = logs
        .iter()
        .map(|log| {
            spawn(
                d.path(),
                &[
                    "worker",
                    "--store",
                    &url,
                    "--run",
                    &run,
                    "--any",
                    "--threads",
                    "1",
                ],
                log,
            )
        })
        .collect();

    // SIGKILL the first worker to start training its second claim (so its member has
    // saved epochs), while it trains.
    let mut victim = None;
    wait_for("a worker's second claim", Duration::from_secs(300), || {
        victim = (0..WORKERS).find(|&w| claims(&logs[w]) >= 2);
        victim.is_some()
    });
    // An epoch takes about a second even on an idle machine (the trial net is sized for
    // it), so killing at once lands inside the claim's training.
    let victim = victim.unwrap();
    workers[victim].0.kill().unwrap(); // SIGKILL
    workers[victim].0.wait().unwrap();
    let killed_log = read(&logs[victim]);
    let claim = killed_log
        .lines()
        .rfind(|l| l.contains("first training step"))
        .unwrap();
    let member: usize = claim
        .split("search/m")
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // It died in training: nothing of that claim was reported.
    let after = &killed_log[killed_log.rfind("first training step").unwrap()..];
    assert!(
        !after.contains("reported epoch"),
        "worker {victim} was killed after its report, not in training:\n{killed_log}"
    );
    // SIGTERM another one: it saves, gives its member back and exits 130 (or had already
    // found nothing left and exited 0).
    let termed = (victim + 1) % WORKERS;
    let pid = workers[termed].0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = workers[termed].0.wait().unwrap();
    let termed_log = read(&logs[termed]);
    match status.code() {
        Some(130) => assert!(termed_log.contains("stopping"), "{termed_log}"),
        Some(0) => assert!(termed_log.contains("nothing left"), "{termed_log}"),
        other => panic!("worker {termed} after SIGTERM: {other:?}\n{termed_log}"),
    }

    for (w, c) in workers.iter_mut().enumerate() {
        if w == victim || w == termed {
            continue;
        }
        let s = c.0.wait().unwrap();
        assert!(s.success(), "worker {w} failed: {}", read(&logs[w]));
    }
    let s = coordinator.0.wait().unwrap();
    assert!(s.success(), "the pipeline failed: {}", read(&coord_log));
    let wall = t0.elapsed().as_secs_f64();

    // The killed member was taken over by another worker, which resumed its saved state.
    let survivors: String = (0..WORKERS)
        .filter(|&w| w != victim)
        .map(|w| read(&logs[w]))
        .collect();
    assert!(
        survivors.contains(&format!("search/m{member}: resuming after epoch")),
        "member {member} was not resumed by another worker:\n{survivors}"
    );

    let store = store::open(&url, &run).unwrap();
    let (members, results, events, ckpts) = transact(store.as_ref(), |tx| {
        Ok((
            tx.members()?,
            tx.results()?,
            tx.events()?,
            tx.checkpoints()?,
        ))
    })
    .unwrap();
    assert_eq!(members.len(), POPULATION);
    assert!(members
        .iter()
        .all(|m| m.status == Status::Done && m.lease.is_none()));
    for m in 0..POPULATION {
        for e in 1..=EPOCHS {
            assert!(
                results.iter().any(|r| r.member == m && r.epoch == e),
                "member {m} has no reward for epoch {e}"
            );
        }
    }
    // Sync PBA, quantile 0.25 of 4: one exploit per decision (epochs 1 and 2), each donor
    // the best member at that epoch, each target the worst.
    assert_eq!(events.len(), EPOCHS - 1, "{events:?}");
    let reward = |m: usize, e: usize| {
        results
            .iter()
            .rev()
            .find(|r| r.member == m && r.epoch == e)
            .unwrap()
            .reward
    };
    let top = (POPULATION as f64 * 0.25).ceil() as usize;
    for ev in &events {
        let better = (0..POPULATION)
            .filter(|&m| reward(m, ev.epoch) > reward(ev.donor, ev.epoch))
            .count();
        assert!(
            better < top,
            "donor {} not in the top quantile: {ev:?}",
            ev.donor
        );
        assert_eq!(ev.donor_reward, reward(ev.donor, ev.epoch));
    }
    assert!(!ckpts.is_empty());
    for c in &ckpts {
        assert!(
            stage_dir.join(&c.path).is_dir(),
            "missing checkpoint {}",
            c.path
        );
    }
    assert!(stage_dir.join("result.json").exists());

    // The same search in one process, two threads, its own SQLite file.
    let threads = pipeline("").replace("workers: 0", "workers: 2");
    let q = write(d.path(), "threads.yaml", &threads);
    let o = common::run(d.path(), &[q.to_str().unwrap(), "--run-dir", "t"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert_eq!(
        read(&stage_dir.join("schedule.json")),
        read(&d.path().join("t/search/schedule.json")),
        "the workers found another schedule than the threads"
    );
    eprintln!(
        "scale-out [{label}]: {POPULATION} members x {EPOCHS} epochs, {WORKERS} worker processes (1 SIGKILLed in member {member}, 1 SIGTERMed: exit {:?}), {:.1}s wall, {} exploit events, {} result rows",
        status.code(),
        wall,
        events.len(),
        results.len()
    );
}

#[test]
fn workers_finish_a_search_on_sqlite_despite_a_kill() {
    scenario("sqlite", None);
}

#[test]
fn workers_finish_a_search_on_postgres_despite_a_kill() {
    let Some(server) = pg_server::start_or_skip("workers_finish_a_search_on_postgres") else {
        return;
    };
    scenario("postgres", Some(server.url()));
}

/// A worker stopped (SIGSTOP) while it trains, past its lease: another worker takes its
/// member over; revived (SIGCONT), the zombie must not get anything into the store (its
/// heartbeat finds the lease gone and stops the training, or its report is refused) and
/// goes on as a normal worker. Every (member, epoch) is reported exactly once.
#[test]
fn a_revived_zombie_worker_commits_nothing() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = tempfile::tempdir().unwrap();
    let text = pipeline("")
        .replace(&format!("population: {POPULATION}"), "population: 2")
        .replace("channels: [16, 32]", "channels: [32, 64]");
    let p = write(d.path(), "p.yaml", &text);
    let stage_dir = d.path().join("r/search");
    let url = stage_dir.join("population.sqlite").display().to_string();
    let coord_log = d.path().join("coordinator.log");
    let mut coordinator = spawn(
        d.path(),
        &[p.to_str().unwrap(), "--run-dir", "r"],
        &coord_log,
    );
    wait_for("the population", Duration::from_secs(120), || {
        stage_dir.join("population.json").exists()
    });
    let (za, zb) = (d.path().join("zombie.log"), d.path().join("other.log"));
    let args = [
        "worker",
        "--store",
        &url,
        "--run",
        "search",
        "--any",
        "--threads",
        "1",
    ];
    let mut zombie = spawn(d.path(), &args, &za);
    let pid = zombie.0.id().to_string();
    let signal = |sig: &str| {
        assert!(Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success())
    };
    // Stop it while it trains: right after a claim starts training, retried at the next
    // claim when that one was reported before the signal landed.
    let mut member = None;
    for n in 1..=4 {
        wait_for("a zombie claim", Duration::from_secs(120), || {
            claims(&za) >= n || read(&za).contains("nothing left")
        });
        signal("-STOP");
        let log = read(&za);
        let Some(at) = log.rfind("first training step") else {
            panic!("{log}")
        };
        if !log[at..].contains("reported epoch") {
            let claim = &log[..at];
            let m = claim[claim.rfind("search/m").unwrap() + 8..]
                .split(':')
                .next()
                .unwrap();
            member = Some(m.parse::<usize>().unwrap());
            break;
        }
        signal("-CONT");
    }
    let member = member.expect("never stopped in training");
    // The other worker reclaims the member once the lease (3 s) expired.
    let mut other = spawn(d.path(), &args, &zb);
    let taken = format!("search/m{member}: first training step");
    wait_for("the takeover", Duration::from_secs(120), || {
        read(&zb).contains(&taken)
    });
    signal("-CONT");
    assert!(zombie.0.wait().unwrap().success(), "{}", read(&za));
    assert!(other.0.wait().unwrap().success(), "{}", read(&zb));
    assert!(
        coordinator.0.wait().unwrap().success(),
        "{}",
        read(&coord_log)
    );
    let zlog = read(&za);
    assert!(
        zlog.contains(&format!("member {member}: lease lost while training")),
        "{zlog}"
    );
    let store = store::open(&url, "search").unwrap();
    let results = transact(store.as_ref(), |tx| tx.results()).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for r in &results {
        assert!(seen.insert((r.member, r.epoch)), "reported twice: {r:?}");
    }
    assert_eq!(seen.len(), 2 * EPOCHS);
}

/// Two pipelines naming the same `run` in one database: the second is refused (its
/// population would be somebody else's); the first, redone from scratch (`--fresh`),
/// clears its own stale population and runs again.
#[test]
fn a_run_name_belongs_to_one_stage_directory() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(server) = pg_server::start_or_skip("a_run_name_belongs_to_one_stage_directory") else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let text = pipeline(&format!("    store: {}\n    run: shared\n", server.url()))
        .replace("workers: 0", "workers: 1")
        .replace(&format!("population: {POPULATION}"), "population: 2")
        .replace(&format!("epochs: {EPOCHS}"), "epochs: 1");
    let p = write(d.path(), "p.yaml", &text);
    let p = p.to_str().unwrap();
    let o = common::run(d.path(), &[p, "--run-dir", "a"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let o = common::run(d.path(), &[p, "--run-dir", "b"]);
    assert!(!o.status.success());
    let e = common::stderr(&o);
    assert!(e.contains("already holds a search named `shared`"), "{e}");
    let o = common::run(d.path(), &[p, "--run-dir", "a", "--fresh"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let store = store::open(&server.url(), "shared").unwrap();
    let results = transact(store.as_ref(), |tx| tx.results()).unwrap();
    assert_eq!(results.len(), 2, "{results:?}");
}

/// `launch local` started before the pipeline: its workers wait for the population, train
/// it all, and exit 0; the pipeline (`workers: 0`) then writes the stage's outputs.
#[test]
fn launch_local_workers_started_first_finish_the_search() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = tempfile::tempdir().unwrap();
    let text = pipeline("")
        .replace(&format!("population: {POPULATION}"), "population: 2")
        .replace(&format!("epochs: {EPOCHS}"), "epochs: 2");
    let p = write(d.path(), "p.yaml", &text);
    let p = p.to_str().unwrap();
    let launch_log = d.path().join("launch.log");
    let mut launch = spawn(
        d.path(),
        &[
            "launch",
            "local",
            p,
            "--stage",
            "search",
            "--workers",
            "2",
            "--run-dir",
            "r",
        ],
        &launch_log,
    );
    std::thread::sleep(Duration::from_millis(500));
    let o = common::run(d.path(), &[p, "--run-dir", "r"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    assert!(launch.0.wait().unwrap().success(), "{}", read(&launch_log));
    let log = read(&launch_log);
    assert_eq!(
        log.matches("nothing left in run `search`").count(),
        2,
        "{log}"
    );
    assert!(d.path().join("r/search/schedule.json").exists());
}
