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
    /// A run the health check found stalled, with `on_stall: stop`.
    #[error("{stage}: training stalled: {message}")]
    Stalled { stage: String, message: String },
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// An I/O error that names the file it happened on.
    pub fn io(path: impl Into<PathBuf>, err: std::io::Error) -> Self {
        // ENOSPC (28) and EFBIG (27).
        let full = matches!(err.raw_os_error(), Some(27) | Some(28));
        Self::write_failed(path, err.to_string(), full)
    }

    /// A failed write that a library reported as text (safetensors): recognises a full disk
    /// or a file-size limit in the message.
    pub fn write_failed_text(path: impl Into<PathBuf>, message: String) -> Self {
        let full = ["os error 27", "os error 28", "code: 27,", "code: 28,"]
            .iter()
            .any(|n| message.contains(n));
        Self::write_failed(path, message, full)
    }

    fn write_failed(path: impl Into<PathBuf>, message: String, full: bool) -> Self {
        // Say what to do, and that nothing finished is lost.
        let message = if full {
            format!(
                "{message}: the disk is full or a file-size limit was hit; free space and \
                 rerun, the run resumes from its last saved epoch"
            )
        } else {
            message
        };
        Error::Io {
            path: path.into(),
            message,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
