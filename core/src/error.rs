//! The core's one error type. Plugins return it too, so the binary can print any failure
//! as one located message.

use crate::config::ConfigError;
use std::path::PathBuf;

/// Everything that can go wrong in a pipeline, from YAML to training.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("torch: {0}")]
    Torch(#[from] tch::TchError),
    #[error("data: {0}")]
    Data(String),
    #[error("graph: {0}")]
    Graph(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{stage}: non-finite loss `{term}` at epoch {epoch}, step {step}")]
    NonFinite {
        stage: String,
        term: String,
        epoch: usize,
        step: usize,
    },
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// An I/O error that names the file it happened on.
    pub fn io(path: impl Into<PathBuf>, err: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            message: err.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
