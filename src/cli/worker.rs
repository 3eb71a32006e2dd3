//! `rolekd-run worker`: a search worker process (see rolekd_search::worker).

use clap::Args;
use rolekd_core::progress::Progress;
use rolekd_engine::pipeline::DeviceSpec;
use rolekd_search::worker::{run_worker, WorkerOptions};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// The population store: postgres://user@host:port/db, or the search's SQLite file.
    #[arg(long, env = "ROLEKD_STORE")]
    store: String,
    /// The search's run name in the store (the stage's `run`, default the stage's name).
    #[arg(long)]
    run: String,
    /// Where published states are: file:///PATH or s3://BUCKET/PREFIX (an object store),
    /// or the stage directory as this machine mounts it. Default: the stage's
    /// `checkpoints:`, else the stage directory it recorded.
    #[arg(long, env = "ROLEKD_CHECKPOINTS")]
    checkpoints: Option<String>,
    /// Local folder members train in, with an object-store `checkpoints` (default: the
    /// stage directory's path, created here).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Train this member only, and exit when it is done.
    #[arg(long, conflicts_with = "any")]
    member: Option<usize>,
    /// Train any runnable member until none is left (the default).
    #[arg(long)]
    any: bool,
    /// Override the pipeline's device (auto, cpu, cuda, cuda:N).
    #[arg(long, value_parser = DeviceSpec::parse)]
    device: Option<DeviceSpec>,
    /// libtorch intra-op threads.
    #[arg(long)]
    threads: Option<usize>,
    /// Seconds to wait for the pipeline to initialise the search.
    #[arg(long, default_value_t = 600)]
    wait_init: u64,
    /// Only errors and the final line.
    #[arg(long, short)]
    quiet: bool,
    /// A plugin library to load first (the pipeline's `plugins:`; `launch` passes them);
    /// repeatable.
    #[arg(long = "plugin", value_name = "LIB")]
    plugin: Vec<PathBuf>,
}

pub fn run(args: WorkerArgs) -> anyhow::Result<()> {
    rolekd_engine::dynamic::load_cli(&args.plugin)?;
    let opts = WorkerOptions {
        store: args.store,
        run: args.run,
        checkpoints: args.checkpoints,
        dir: args.dir,
        member: args.member,
        device: args.device,
        threads: args.threads,
        wait_init: Duration::from_secs(args.wait_init),
        poll: Duration::from_millis(500),
    };
    // SIGTERM (Slurm preemption, a Kubernetes pod's deletion) and Ctrl-C: the member in
    // training stops at the next step and its lease is given back; its next owner resumes it
    // from its last saved epoch (a member's state is not saved inside an epoch: the lease
    // may pass to a worker on another machine).
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("rolekd worker: stopping: releasing the member in training (its next owner resumes it from its last saved epoch)");
    });
    let progress = Progress::new(args.quiet);
    let report = run_worker(&opts, &progress, &interrupted)?;
    println!(
        "worker {}: {} step(s) trained, nothing left in run `{}`",
        report.owner, report.steps, opts.run
    );
    Ok(())
}
