//! `rolekd-run`: runs a pipeline YAML, and the tools around it (plugin listing, ...).
//! Every failure ends as one clear message and a non-zero exit, never a panic trace.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    cli::quiet_panics();
    // Past a file-size limit (`ulimit -f`) the kernel would kill us with SIGXFSZ mid-write;
    // ignored, the write fails with EFBIG and is reported like a full disk.
    // SAFETY: setting a signal's disposition to SIG_IGN before any thread starts.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    rolekd::link_builtins();
    let args = cli::Cli::parse();
    match cli::dispatch(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = cli::exit_code(&e);
            eprintln!("error: {}", cli::describe(&e));
            ExitCode::from(code)
        }
    }
}
