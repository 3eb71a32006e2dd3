//! A search worker in its own process (`rolekd-run worker`), on this machine or another:
//! it joins a search through the population store alone.
//!
//! The `search` stage records a [`WorkerSpec`] in the store's meta when it initialises the
//! population (its resolved params, the pipeline's data entry and seeds, the stage
//! directory), so a worker needs only the store's URL and the run's name: it rebuilds the
//! stage and the search's data split exactly as the stage did, then claims members and
//! trains them through the same protocol as the stage's own threads
//! ([`crate::population`]): a lease renewed while training, one report transaction that
//! checks the lease, exploit decisions in the store.

use crate::population::work::work;
use crate::population::Population;
use crate::stage;
use crate::store::{self, transact, PopulationStore};
use crate::worker_spec::{WorkerSpec, SPEC_KEY};
use rolekd_core::config::Params;
use rolekd_core::progress::Progress;
use rolekd_core::rng::Seed;
use rolekd_core::{registry, Error, Result};
use rolekd_engine::pipeline::DeviceSpec;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How to run a worker.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// The population store's URL (`postgres://...`, or an SQLite file).
    pub store: String,
    /// The search's run name in the store.
    pub run: String,
    /// Where published states are: an object store URL (`file:///...`, `s3://...`) or the
    /// stage directory as this machine mounts it (default: the stage's `checkpoints:`, else
    /// its recorded directory).
    pub checkpoints: Option<String>,
    /// The local folder members train in when states go to an object store (default: the
    /// stage's recorded directory, created here if missing).
    pub dir: Option<PathBuf>,
    /// Train this member only (exit when it is done); default: any runnable member.
    pub member: Option<usize>,
    /// Override the recorded device.
    pub device: Option<DeviceSpec>,
    /// libtorch intra-op threads (default: libtorch's).
    pub threads: Option<usize>,
    /// How long to wait for the stage to initialise the population.
    pub wait_init: Duration,
    /// How often to look for runnable members while none is.
    pub poll: Duration,
}

/// What a worker did.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerReport {
    /// Training steps (claim, train to a perturbation point, report) it completed.
    pub steps: usize,
    pub owner: String,
}

/// A worker's lease owner: host, process and start time, so a restarted process on the
/// same host never mistakes an earlier incarnation's lease for its own.
fn owner_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "host".into());
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("{host}-{}-{t}", std::process::id())
}

/// Sleeps `d`, waking early when `flag` is set.
fn nap(d: Duration, flag: &AtomicBool) {
    let end = Instant::now() + d;
    while Instant::now() < end && !flag.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50).min(end - Instant::now()));
    }
}

/// Reads the spec, waiting up to `opts.wait_init` for the stage to record it.
fn wait_spec(
    store: &dyn PopulationStore,
    opts: &WorkerOptions,
    interrupted: &AtomicBool,
) -> Result<WorkerSpec> {
    let t0 = Instant::now();
    loop {
        if let Some(text) = transact(store, |tx| tx.meta(SPEC_KEY))? {
            return serde_json::from_str(&text)
                .map_err(|e| Error::Data(format!("run `{}`: worker spec: {e}", opts.run)));
        }
        if interrupted.load(Ordering::SeqCst) {
            return Err(Error::Interrupted);
        }
        if t0.elapsed() >= opts.wait_init {
            return Err(Error::Invalid(format!(
                "run `{}`: no search was initialised in the store after {}s (start the pipeline with the search stage first)",
                opts.run,
                opts.wait_init.as_secs()
            )));
        }
        nap(opts.poll, interrupted);
    }
}

/// Joins the search and trains until nothing is left (or `interrupted`: the member being
/// trained is saved and its lease given back, then `Error::Interrupted`).
pub fn run_worker(
    opts: &WorkerOptions,
    progress: &Progress,
    interrupted: &AtomicBool,
) -> Result<WorkerReport> {
    let store = store::open(&opts.store, &opts.run)?;
    let spec = wait_spec(store.as_ref(), opts, interrupted)?;
    let params = Params::from_yaml(&spec.params)?;
    let stage = stage::parse(&params)?;
    let data_params = Params::from_yaml(&spec.data)?;
    let factory =
        registry::dataset(&data_params.type_name()?).map_err(|e| Error::Invalid(e.to_string()))?;
    let data = factory(&data_params, Seed(spec.data_seed))?;
    let search_seed = Seed(spec.seed).child("search");
    let sdata = Arc::new(stage.split(&data, search_seed.child("split"))?);
    let device = match opts.device {
        Some(d) => d,
        None => DeviceSpec::parse(&spec.device).map_err(Error::Invalid)?,
    }
    .resolve()?;
    if let Some(t) = opts.threads {
        tch::set_num_threads(t.max(1) as i32);
    }
    let mut pop = Population::new(
        store.as_ref(),
        stage.strategy.as_ref(),
        stage.space.as_ref(),
        stage.search_config(search_seed),
    );
    // Checks the population is the one this spec describes; never drops leases: the
    // other workers are alive.
    pop.init(false)?;
    let checkpoints =
        stage.checkpoint_store_at(opts.checkpoints.as_deref(), &spec.dir, &opts.run)?;
    let dir = match checkpoints.stage_dir() {
        Some(shared) => shared.to_path_buf(),
        None => opts.dir.clone().unwrap_or(spec.dir.clone()),
    };
    progress.log(&format!(
        "{}: members train in {}, states published to {}",
        spec.stage,
        dir.display(),
        checkpoints.describe()
    ));
    let mut trials = stage.trials(
        &dir,
        search_seed,
        (device, spec.precision),
        sdata,
        progress,
        &spec.stage,
    )?;
    trials.checkpoints = checkpoints;
    let owner = owner_name();
    progress.log(&format!(
        "{}: worker {owner} joined run `{}` ({})",
        spec.stage,
        opts.run,
        match opts.member {
            Some(m) => format!("member {m}"),
            None => "any member".into(),
        }
    ));
    let steps = work(&pop, &trials, &owner, opts.member, interrupted, opts.poll)?;
    Ok(WorkerReport { steps, owner })
}
