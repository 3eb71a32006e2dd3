//! The rolekd facade: the core and the engine plus the built-in plugins, as the
//! `rolekd-run` binary links them. A custom binary with extra static plugins calls
//! [`link_builtins`] and links its own plugin crates next to it.

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
