//! What a stage says about its roles: the participants of its training (the trained
//! student or model, frozen teachers), recorded in the stage's result and shown by
//! `--dry-run`, so tools read them instead of guessing from paths and field names. The
//! engine's trainer fills them in from its role specs.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One role of a stage, as the user wrote it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoleRecord {
    /// `student`, `teacher`, `model`, ... (what the losses call it).
    pub name: String,
    /// Trained by the stage (true) or frozen (false).
    pub trained: bool,
    /// The model: its `type` when built from YAML, `checkpoint` when loaded from one.
    pub model: String,
    /// `own`: its own augmentation of the sampled images; `same`: the first trained
    /// role's; otherwise the name of the role whose view it shares.
    pub view: String,
    /// The augmentation policy's `type` for an own view (`none` without one).
    pub augment: String,
    /// The checkpoint or reference it is loaded or initialised from, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

impl fmt::Display for RoleRecord {
    /// `student (trained, small-cnn, own view: pba-schedule)`,
    /// `teacher (frozen, checkpoint ${teacher.checkpoint}, same view)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.trained { "trained" } else { "frozen" };
        write!(f, "{} ({state}, {}", self.name, self.model)?;
        if let Some(src) = &self.from {
            let how = if self.trained { " from" } else { "" };
            write!(f, "{how} {src}")?;
        }
        match self.view.as_str() {
            "same" => write!(f, ", same view)"),
            "own" => write!(f, ", own view: {})", self.augment),
            other => write!(f, ", {other}'s view)"),
        }
    }
}
