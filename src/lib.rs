//! The rolekd facade: the core and the engine plus the built-in plugins, as the
//! `rolekd-run` binary links them, and the binary's whole command line ([`cli::main`]). A
//! custom binary with extra static plugins calls its crates' `link()` and then
//! [`cli::main`], and is rolekd-run with those plugins.

pub mod cli;

pub use rolekd_core as core;
pub use rolekd_engine as engine;

/// Makes sure the linker keeps every built-in plugin's registrations.
pub fn link_builtins() {
    rolekd_data::link();
    rolekd_models::link();
    rolekd_augment::link();
    rolekd_kd::link();
    rolekd_optim::link();
    rolekd_train_stages::link();
    rolekd_search::link();
    rolekd_interop::link();
}

#[cfg(test)]
mod tests;
