//! `rolekd-static-example`: rolekd's runtime with the built-in plugins plus this crate's.
//!
//! ```sh
//! rolekd-static-example PIPELINE.yaml [--run-dir D] [--set a.b=v]... [--force STAGE]...
//!                       [--fresh] [--dry-run] [--quiet] [--plugin LIB.so]...
//! rolekd-static-example plugins
//! ```
//!
//! A custom binary needs only two calls to see every plugin: `rolekd::link_builtins()` and
//! one reference into each extra plugin crate (the linker drops crates nothing refers to,
//! and their registrations with them).

use rolekd_core::registry::{PluginKind, Registry};
use rolekd_core::Error;
use rolekd_engine::runtime::{self, RunOptions};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

fn main() -> ExitCode {
    rolekd::link_builtins();
    example_static_plugin::link();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match args.first().map(String::as_str) {
        Some("plugins") if args.len() == 1 => {
            list_plugins();
            Ok(())
        }
        Some(_) => parse(&args).and_then(|(file, opts)| run(&file, &opts)),
        None => Err(Failure::Usage("missing the pipeline file".into())),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("error: {m}\nusage: rolekd-static-example PIPELINE.yaml [--run-dir D] [--set PATH=VALUE]... [--force STAGE]... [--fresh] [--dry-run] [--quiet] [--plugin LIB]...\n       rolekd-static-example plugins");
            ExitCode::from(2)
        }
        Err(Failure::Run(e)) => {
            eprintln!("error: {e}");
            // Like rolekd-run: 2 for bad input, 1 for a failure while running.
            let code = match e {
                Error::Config(_) | Error::Graph(_) => 2,
                _ => 1,
            };
            ExitCode::from(code)
        }
    }
}

enum Failure {
    Usage(String),
    Run(Error),
}

fn parse(args: &[String]) -> Result<(PathBuf, RunOptions), Failure> {
    let mut file = None;
    let mut opts = RunOptions {
        summary: Some(rolekd_report::summary_markdown),
        ..RunOptions::default()
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| Failure::Usage(format!("{flag} needs a value")))
        };
        match a.as_str() {
            "--run-dir" => opts.run_dir = Some(value(a)?.into()),
            "--set" => opts.overrides.push(value(a)?),
            "--force" => opts.force.push(value(a)?),
            "--plugin" => opts.plugins.push(value(a)?.into()),
            "--fresh" => opts.fresh = true,
            "--dry-run" => opts.dry_run = true,
            "--quiet" | "-q" => opts.quiet = true,
            flag if flag.starts_with('-') => {
                return Err(Failure::Usage(format!("unknown option {flag}")))
            }
            path if file.is_none() => file = Some(PathBuf::from(path)),
            extra => return Err(Failure::Usage(format!("unexpected argument {extra}"))),
        }
    }
    let file = file.ok_or_else(|| Failure::Usage("missing the pipeline file".into()))?;
    Ok((file, opts))
}

fn run(file: &Path, opts: &RunOptions) -> Result<(), Failure> {
    let interrupted = AtomicBool::new(false);
    let report = runtime::run(file, opts, &interrupted).map_err(Failure::Run)?;
    if !opts.dry_run {
        print!(
            "{}",
            rolekd_report::summary_markdown(&file.display().to_string(), &report)
        );
        println!("\nrun directory: {}", report.run_dir.display());
    }
    Ok(())
}

fn list_plugins() {
    let reg = Registry::global().read().unwrap_or_else(|e| e.into_inner());
    for kind in PluginKind::ALL {
        println!("{kind}");
        for e in reg.entries().filter(|e| e.kind() == kind) {
            println!("  {:24} {:28} {}", e.name, e.source.to_string(), e.doc);
        }
    }
}
