//! `rolekd-run`: runs a pipeline YAML, and the tools around it (plugin listing, ...).
//! The whole command line lives in the library ([`rolekd::cli::main`]), so a binary that
//! links extra plugin crates is the same two lines with one more call.

use std::process::ExitCode;

fn main() -> ExitCode {
    rolekd::cli::main()
}
