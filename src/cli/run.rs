//! Running a pipeline.

use clap::Args;
use rolekd_engine::runtime::{self, RunOptions};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The pipeline YAML to run.
    #[arg(required = true)]
    pipeline: Option<PathBuf>,
    /// Run directory (default: runs/<pipeline name>).
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Redo this stage (and what depends on it) even if its result is reusable.
    #[arg(long, value_name = "STAGE")]
    force: Vec<String>,
    /// Run only this stage and the stages it reads from; repeatable. A later run without
    /// it reuses their results.
    #[arg(long, value_name = "STAGE")]
    only: Vec<String>,
    /// Start the run directory over.
    #[arg(long)]
    fresh: bool,
    /// Print the plan (order, dependencies, what is reused) and stop.
    #[arg(long)]
    dry_run: bool,
    /// Override a field: --set stages.teacher.epochs=2 (the value is YAML).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    set: Vec<String>,
    /// Only errors and the summary.
    #[arg(long, short)]
    quiet: bool,
    /// Load a plugin library (a cdylib) before the graph is built; repeatable. Overrides a
    /// `plugins:` entry with the same file name.
    #[arg(long = "plugin", value_name = "PATH")]
    plugin: Vec<PathBuf>,
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let file = args.pipeline.expect("clap requires it");
    let opts = RunOptions {
        run_dir: args.run_dir,
        force: args.force,
        only: args.only,
        fresh: args.fresh,
        dry_run: args.dry_run,
        overrides: args.set,
        quiet: args.quiet,
        plugins: args.plugin,
        invoker: rolekd_engine::provenance::Invoker {
            tool: "rolekd-run".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            git_commit: option_env!("ROLEKD_GIT_COMMIT").map(String::from),
            command_line: std::env::args().collect(),
        },
        summary: Some(rolekd_report::summary_markdown),
    };
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("\nrolekd: second interrupt, exiting now");
            std::process::exit(130);
        }
        eprintln!("\nrolekd: interrupted; saving and stopping (rerun to resume, Ctrl-C again to quit now)");
    });
    let report = runtime::run(&file, &opts, &interrupted)?;
    if !opts.dry_run {
        print!(
            "{}",
            rolekd_report::summary_markdown(&file.display().to_string(), &report)
        );
        match rolekd_report::write_report(&report.run_dir) {
            Ok(files) => println!("\nreport: {}", files.markdown.display()),
            // The run's results are safe on disk; a failed report is worth a warning only.
            Err(e) => eprintln!("warning: no report written: {e}"),
        }
        println!("run directory: {}", report.run_dir.display());
    }
    Ok(())
}
