//! `rolekd-static-example`: rolekd-run with this crate's plugins linked in. Every command
//! (`plugins`, `augment`, `loss eval`, `worker`, `report`, ...), the run report, SIGINT /
//! SIGTERM handling and the exit codes are rolekd-run's, through [`rolekd::cli::main`].
//!
//! The linker drops a crate nothing refers to, and its registrations with it: `link()` is
//! that reference.

use std::process::ExitCode;

fn main() -> ExitCode {
    example_static_plugin::link();
    rolekd::cli::main()
}
