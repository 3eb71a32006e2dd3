//! `rolekd-run worker`: a search worker process (see rolekd_search::worker).

use clap::Args;
use rolekd_core::pipeline::DeviceSpec;
use rolekd_core::progress::Progress;
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
    /// The stage directory as this machine mounts it (default: the one the stage recorded).
    #[arg(long, env = "ROLEKD_CHECKPOINTS")]
    checkpoints: Option<String>,
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
}

/// The stage directory from `--checkpoints`: a path or a `file://` URL (object stores are
/// not supported yet).
fn checkpoint_dir(url: &str) -> anyhow::Result<PathBuf> {
    let path = url.strip_prefix("file://").unwrap_or(url);
    anyhow::ensure!(
        !path.contains("://"),
        "--checkpoints {url}: only a directory or a file:// URL is supported"
    );
    Ok(PathBuf::from(path))
}

pub fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let opts = WorkerOptions {
        store: args.store,
        run: args.run,
        checkpoints: args
            .checkpoints
            .as_deref()
            .map(checkpoint_dir)
            .transpose()?,
        member: args.member,
        device: args.device,
        threads: args.threads,
        wait_init: Duration::from_secs(args.wait_init),
        poll: Duration::from_millis(500),
    };
    // SIGTERM (Slurm preemption, a Kubernetes pod's deletion) and Ctrl-C: the member in
    // training is saved at the next step boundary and its lease given back.
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("rolekd worker: stopping: saving the member in training and releasing it");
    });
    let progress = Progress::new(args.quiet);
    let report = run_worker(&opts, &progress, &interrupted)?;
    println!(
        "worker {}: {} step(s) trained, nothing left in run `{}`",
        report.owner, report.steps, opts.run
    );
    Ok(())
}
