//! Command-line parsing and dispatch.

mod plugins;
mod run;

use clap::{Parser, Subcommand};
use rolekd_core::Error;

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
}

pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Plugins { plugin }) => plugins::list(&plugin),
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
