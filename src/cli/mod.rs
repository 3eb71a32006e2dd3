//! The command line of `rolekd-run`, as a library: [`main`] is the whole binary (every
//! command, the run report, signal handling, exit codes), so a custom binary with its own
//! plugin crates linked in is
//!
//! ```ignore
//! fn main() -> std::process::ExitCode {
//!     my_plugins::link(); // keeps the crate's registrations in the binary
//!     rolekd::cli::main()
//! }
//! ```
//!
//! (`examples/static-plugin`). This is the binary's edge: errors are `anyhow` here.

mod augment;
mod data;
mod interop;
mod launch;
mod loss_eval;
mod models;
mod plugins;
mod run;
mod schedule;
mod worker;

use clap::{Parser, Subcommand};
use rolekd_core::Error;
use std::process::ExitCode;

/// Training frees and reallocates the same activation buffers every step. glibc's defaults
/// hand freed memory back to the kernel (trimming the heap top, unmapping large blocks), so
/// the next step faults every page in again, zero-filled: about 5% of a ResNet-20 epoch on
/// CPU went to page faults. Keeping it in the heap (up to 1 GiB of free memory, blocks up
/// to 32 MiB) removes that; memory is still reused, only returned to the kernel later.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// Runs the command line of the process's arguments with every built-in plugin (and any
/// plugin crate the calling binary linked): parses, dispatches, reports an error as one
/// line, and returns the exit code (0, 1, 2 for bad input, 130 when interrupted).
pub fn main() -> ExitCode {
    quiet_panics();
    // Past a file-size limit (`ulimit -f`) the kernel would kill us with SIGXFSZ mid-write;
    // ignored, the write fails with EFBIG and is reported like a full disk.
    // SAFETY: setting a signal's disposition to SIG_IGN before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    keep_freed_memory();
    crate::link_builtins();
    let args = Cli::parse();
    match dispatch(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = exit_code(&e);
            eprintln!("error: {}", describe(&e));
            ExitCode::from(code)
        }
    }
}

/// Role-wise data augmentation for knowledge distillation.
#[derive(Parser, Debug)]
#[command(
    name = "rolekd-run",
    version,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: run::RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List every registered plugin: kind, name, source, one-line doc.
    Plugins {
        /// Load a plugin library (a cdylib) first, so its plugins are listed; repeatable.
        #[arg(long = "plugin", value_name = "PATH")]
        plugin: Vec<std::path::PathBuf>,
    },
    /// Augmentation schedules: import a PBA log, show, plot.
    #[command(subcommand)]
    Schedule(schedule::ScheduleCmd),
    /// Augmentation ops and policies: apply one op to a PNG, preview a role's policy.
    #[command(subcommand)]
    Augment(augment::AugmentCmd),
    /// Data tools: time the training loader over a pipeline's data.
    #[command(subcommand)]
    Data(data::DataCmd),
    /// Every registered model: parameters and multiply-accumulates per image.
    Models {
        /// Classes of the classifier.
        #[arg(long, default_value_t = 10)]
        classes: i64,
        /// One configured model entry as YAML; prints its params and MACs as JSON.
        #[arg(long)]
        model: Option<String>,
    },
    /// Loss tools.
    #[command(subcommand)]
    Loss(LossCmd),
    /// Write report.md (results, students ranked, searches) and PNG plots for a run
    /// directory; a pipeline run writes it too when it finishes.
    Report {
        /// The run directory (e.g. runs/role-wise-quick).
        run_dir: std::path::PathBuf,
        /// A plugin library to load first; repeatable.
        #[arg(long = "plugin", value_name = "LIB")]
        plugin: Vec<std::path::PathBuf>,
    },
    /// Join a search as a worker: claim its members through the population store and train
    /// them until none is left (SIGTERM: save, release, exit).
    Worker(worker::WorkerArgs),
    /// A PyTorch state_dict (RepDistiller, torchvision, .pth or .safetensors) as a rolekd
    /// checkpoint for `teacher:` or `init:`.
    Import(interop::ImportArgs),
    /// A checkpoint for PyTorch: a state_dict with PyTorch names, or TorchScript.
    Export(interop::ExportArgs),
    /// A checkpoint's logits on images from a safetensors file (inference mode).
    Logits(interop::LogitsArgs),
    /// Start a search's workers: a Slurm job array, a Kubernetes Indexed Job, or local
    /// processes.
    #[command(subcommand)]
    Launch(launch::LaunchCmd),
}

#[derive(Subcommand, Debug)]
enum LossCmd {
    /// Evaluate one loss entry on tensors from a safetensors file; prints {"loss": value}.
    Eval {
        /// The loss entry as YAML, e.g. '{type: kd, temperature: 4}'.
        #[arg(long)]
        loss: String,
        /// student.logits, teacher.logits [B, C], labels [B] (int64), and
        /// student.features.<stage> / teacher.features.<stage> [B, C, H, W] as needed.
        #[arg(long)]
        inputs: std::path::PathBuf,
        /// Seed for losses with trainable parts.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Training-set size for memory-bank losses (default: the batch size).
        #[arg(long)]
        train_size: Option<usize>,
        /// A plugin library to load first (its losses); repeatable.
        #[arg(long = "plugin", value_name = "LIB")]
        plugin: Vec<std::path::PathBuf>,
    },
}

pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Plugins { plugin }) => plugins::list(&plugin),
        Some(Command::Schedule(c)) => schedule::run(c),
        Some(Command::Augment(c)) => augment::run(c),
        Some(Command::Data(c)) => data::run(c),
        Some(Command::Models { classes, model }) => match model {
            Some(entry) => models::one(&entry, classes),
            None => models::list(classes),
        },
        Some(Command::Loss(LossCmd::Eval {
            loss,
            inputs,
            seed,
            train_size,
            plugin,
        })) => {
            rolekd_engine::dynamic::load_cli(&plugin)?;
            loss_eval::eval(&loss, &inputs, seed, train_size)
        }
        Some(Command::Report { run_dir, plugin }) => {
            rolekd_engine::dynamic::load_cli(&plugin)?;
            let files = rolekd_report::write_report(&run_dir)?;
            println!("{}", files.markdown.display());
            for p in files.pictures {
                println!("{}", p.display());
            }
            Ok(())
        }
        Some(Command::Worker(args)) => worker::run(args),
        Some(Command::Launch(c)) => launch::run(c),
        Some(Command::Import(a)) => interop::run_import(a),
        Some(Command::Export(a)) => interop::run_export(a),
        Some(Command::Logits(a)) => interop::run_logits(a),
        None => run::run(cli.run),
    }
}

/// 2 for bad input (config), 130 for an interrupted run, 1 otherwise.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    match e.downcast_ref::<Error>() {
        Some(Error::Config(_)) | Some(Error::Graph(_)) => 2,
        Some(Error::Interrupted) => 130,
        _ => 1,
    }
}

/// The message for an error: the core's own message, with context from the binary first.
pub fn describe(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    parts.dedup();
    parts.join(": ")
}

/// Replaces the panic trace with one line: a panic is a bug in rolekd, not the user's.
pub fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("error: internal error{at}: {msg} (please report this)");
    }));
}
