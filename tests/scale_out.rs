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
use rolekd_search::checkpoints::{CheckpointStore, STATE_FILES};
use rolekd_search::store::{self, transact, Status};
use rolekd_test_servers::{pg as pg_server, s3 as s3_server};
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
    spawn_with(cwd, args, log, &[])
}

fn spawn_with(cwd: &Path, args: &[&str], log: &Path, env: &[(&str, String)]) -> Proc {
    let f = std::fs::File::create(log).unwrap();
    Proc(
        Command::new(bin())
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
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

/// The members a worker's log reports an epoch for.
fn reports(log: &Path) -> usize {
    read(log).matches(" reported epoch ").count()
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

/// Where the members' published states go.
enum Ckpts {
    /// The stage directory: workers share it (as on a shared file system).
    StageDir,
    /// An object store (with the variables processes need to reach it): every worker
    /// trains in a folder of its own, sharing nothing with the others but the stores.
    Url(String, Vec<(&'static str, String)>),
}

/// Runs the whole scenario on the store `url` (None: the stage's SQLite file).
fn scenario(label: &str, url: Option<String>, ckpts: Ckpts) {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = tempfile::tempdir().unwrap();
    let mut store_line = url
        .as_ref()
        .map(|u| format!("    store: {u}\n    run: scale-{label}\n"))
        .unwrap_or_default();
    let env = match &ckpts {
        Ckpts::StageDir => Vec::new(),
        Ckpts::Url(u, env) => {
            store_line += &format!("    checkpoints: {u}\n");
            env.clone()
        }
    };
    let p = write(d.path(), "p.yaml", &pipeline(&store_line));
    let stage_dir = d.path().join("r/search");
    let run = if url.is_none() {
        "search".to_string()
    } else {
        format!("scale-{label}")
    };
    let url = url.unwrap_or_else(|| stage_dir.join("population.sqlite").display().to_string());
    let t0 = Instant::now();
    let coord_log = d.path().join("coordinator.log");
    let mut coordinator = spawn_with(
        d.path(),
        &[p.to_str().unwrap(), "--run-dir", "r"],
        &coord_log,
        &env,
    );
    wait_for("the population", Duration::from_secs(120), || {
        stage_dir.join("population.json").exists()
    });
    let logs: Vec<PathBuf> = (0..WORKERS)
        .map(|w| d.path().join(format!("worker-{w}.log")))
        .collect();
    let mut workers: Vec<Proc> = logs
        .iter()
        .enumerate()
        .map(|(w, log)| {
            let own = d.path().join(format!("worker-{w}"));
            let mut args = vec![
                "worker",
                "--store",
                &url,
                "--run",
                &run,
                "--any",
                "--threads",
                "1",
            ];
            if matches!(ckpts, Ckpts::Url(..)) {
                args.extend(["--dir", own.to_str().unwrap()]);
            }
            spawn_with(d.path(), &args, log, &env)
        })
        .collect();

    // SIGKILL the first worker to start training its second claim (so its member has
    // saved epochs), while it trains.
    let mut victim = None;
    let waited = Instant::now();
    while victim.is_none() {
        victim = (0..WORKERS).find(|&w| claims(&logs[w]) >= 2);
        let all: String = logs.iter().chain([&coord_log]).map(|l| read(l)).collect();
        assert!(
            waited.elapsed() < Duration::from_secs(300) && !all.contains("error"),
            "no worker claimed a second member:\n{all}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
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
    // SIGTERM another worker while it trains a member: it stops, gives the member back and
    // exits 130. It cannot have run out of work: the killed worker's member is not done
    // before its lease expires, so an exit 0 ("nothing left") fails here.
    let mut termed = None;
    let waited = Instant::now();
    while termed.is_none() {
        termed = (0..WORKERS).find(|&w| w != victim && claims(&logs[w]) > reports(&logs[w]));
        assert!(
            waited.elapsed() < Duration::from_secs(120),
            "no other worker was training"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let termed = termed.unwrap();
    let pid = workers[termed].0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = workers[termed].0.wait().unwrap();
    let termed_log = read(&logs[termed]);
    assert_eq!(
        status.code(),
        Some(130),
        "worker {termed} after SIGTERM:\n{termed_log}"
    );
    assert!(
        termed_log.contains("stopping: releasing the member in training"),
        "{termed_log}"
    );

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
    let (members, results, events, refs) = transact(store.as_ref(), |tx| {
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
    assert!(!refs.is_empty());
    match &ckpts {
        Ckpts::StageDir => {
            for c in &refs {
                assert!(
                    stage_dir.join(&c.path).is_dir(),
                    "missing checkpoint {}",
                    c.path
                );
            }
        }
        Ckpts::Url(u, env) => {
            let objects = CheckpointStore::open_with(u, &run, env).unwrap();
            for c in &refs {
                assert!(
                    objects.holds(&c.path, &STATE_FILES).unwrap(),
                    "missing checkpoint {} in {u}",
                    c.path
                );
            }
            // Nothing was trained or published in the stage directory; the best member's
            // final checkpoint was fetched into it from the object store.
            assert!(!stage_dir.join("checkpoints").exists());
            for m in 0..POPULATION {
                assert!(!stage_dir.join(format!("trials/{m}/state")).exists());
            }
            let fetched: Vec<usize> = (0..POPULATION)
                .filter(|m| {
                    let c = stage_dir.join(format!("trials/{m}/checkpoint"));
                    c.join("model.json").is_file() && c.join("weights.safetensors").is_file()
                })
                .collect();
            assert_eq!(fetched.len(), 1, "{fetched:?}");
            assert!(read(&stage_dir.join("result.json"))
                .contains(&format!("trials/{}/checkpoint", fetched[0])));
        }
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
    scenario("sqlite", None, Ckpts::StageDir);
}

#[test]
fn workers_sharing_no_directory_finish_on_sqlite_with_file_checkpoints() {
    let shared = tempfile::tempdir().unwrap();
    let url = format!("file://{}", shared.path().join("ckpts").display());
    scenario("sqlite-file", None, Ckpts::Url(url, Vec::new()));
}

#[test]
fn workers_sharing_no_directory_finish_on_postgres_with_s3_checkpoints() {
    let Some(server) = pg_server::start_or_skip("workers_finish_a_search_on_postgres") else {
        return;
    };
    let Some(s3) = s3_server::start_or_skip("workers_finish_a_search_on_postgres_with_s3") else {
        return;
    };
    scenario(
        "postgres-s3",
        Some(server.url()),
        Ckpts::Url(s3.url("searches"), s3.env()),
    );
}

/// A worker stopped (SIGSTOP) while it trains, past its lease: another worker takes its
/// member over; revived (SIGCONT), the zombie must not get anything into the store (its
/// heartbeat finds the lease gone and stops the training, or its report is refused) and
/// goes on as a normal worker. Every (member, epoch) is reported exactly once.
#[test]
fn a_revived_zombie_worker_commits_nothing() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let d = tempfile::tempdir().unwrap();
    // The pipeline's small CNN [48, 96]: an epoch long enough to stop a worker inside it.
    let text = pipeline("").replace(&format!("population: {POPULATION}"), "population: 2");
    assert!(text.contains("channels: [48, 96]"));
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

/// The figures for docs/search.md and the issue (not part of the suite: a minute or two):
/// `cargo test --test scale_out -- --ignored --nocapture figures`. A 16-member
/// search on PostgreSQL with S3 checkpoints, trained by `launch local --workers 4`, against
/// the same search by 4 threads in one process.
#[test]
#[ignore]
fn figures_postgres_s3_launch_local() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (Some(pg), Some(s3)) = (
        pg_server::start_or_skip("figures"),
        s3_server::start_or_skip("figures"),
    ) else {
        panic!("the figures need PostgreSQL and the S3 server");
    };
    let (members, epochs, workers) = (16, 6, 4);
    let d = tempfile::tempdir().unwrap();
    let base = pipeline("")
        .replace(
            &format!("population: {POPULATION}"),
            &format!("population: {members}"),
        )
        .replace(&format!("epochs: {EPOCHS}"), &format!("epochs: {epochs}"))
        .replace("interval: 1", "interval: 2")
        .replace("channels: [48, 96]", "channels: [16, 32]")
        .replace("    keep_states: true\n", "");
    let text = base.replace(
        "    workers: 0\n",
        &format!(
            "    workers: 0\n    store: {}\n    run: figures\n    checkpoints: {}\n",
            pg.url(),
            s3.url("figures")
        ),
    );
    let p = write(d.path(), "p.yaml", &text);
    let p = p.to_str().unwrap();
    let env = s3.env();
    let t0 = Instant::now();
    let launch_log = d.path().join("launch.log");
    let mut launch = spawn_with(
        d.path(),
        &[
            "launch",
            "local",
            p,
            "--stage",
            "search",
            "--workers",
            &workers.to_string(),
            "--run-dir",
            "r",
        ],
        &launch_log,
        &env,
    );
    let coord_log = d.path().join("coordinator.log");
    let mut coordinator = spawn_with(d.path(), &[p, "--run-dir", "r"], &coord_log, &env);
    assert!(
        coordinator.0.wait().unwrap().success(),
        "{}",
        read(&coord_log)
    );
    assert!(launch.0.wait().unwrap().success(), "{}", read(&launch_log));
    let wall = t0.elapsed().as_secs_f64();
    let store = store::open(&pg.url(), "figures").unwrap();
    let (results, events) =
        transact(store.as_ref(), |tx| Ok((tx.results()?, tx.events()?))).unwrap();
    let threads = base.replace("workers: 0", &format!("workers: {workers}"));
    let q = write(d.path(), "threads.yaml", &threads);
    let t1 = Instant::now();
    let o = common::run(d.path(), &[q.to_str().unwrap(), "--run-dir", "t"]);
    assert!(o.status.success(), "{}", common::stderr(&o));
    let one_process = t1.elapsed().as_secs_f64();
    let same = read(&d.path().join("r/search/schedule.json"))
        == read(&d.path().join("t/search/schedule.json"));
    assert!(same, "the workers found another schedule than the threads");
    eprintln!(
        "figures: {members} members x {epochs} epochs (interval 2), PostgreSQL store, S3 (moto) checkpoints, launch local --workers {workers}: {wall:.1}s wall (pipeline + workers, each loading the data), {} reports, {} exploit events; one process with {workers} threads: {one_process:.1}s; schedules identical: {same}",
        results.len(),
        events.len()
    );
}
