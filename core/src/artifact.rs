//! Stage outputs and the references to them (`${teacher.checkpoint}`).
//!
//! While the graph is checked, a reference is replaced by a typed placeholder string; typed
//! fields ([`CheckpointPath`], [`SchedulePath`]) refuse a placeholder of the wrong kind, so
//! a type mismatch is found before anything trains. When the stage runs, the reference is
//! replaced by the producing stage's real path.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// What a stage output is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactKind {
    /// A model checkpoint directory (`model.json` + `weights.safetensors`).
    Checkpoint,
    /// An augmentation schedule (`rolekd-schedule/1` JSON).
    Schedule,
    /// A `metrics.jsonl` file.
    Metrics,
    /// A report or plot.
    Report,
}

impl ArtifactKind {
    pub fn label(self) -> &'static str {
        match self {
            ArtifactKind::Checkpoint => "checkpoint",
            ArtifactKind::Schedule => "schedule",
            ArtifactKind::Metrics => "metrics",
            ArtifactKind::Report => "report",
        }
    }

    fn from_label(s: &str) -> Option<Self> {
        [
            ArtifactKind::Checkpoint,
            ArtifactKind::Schedule,
            ArtifactKind::Metrics,
            ArtifactKind::Report,
        ]
        .into_iter()
        .find(|k| k.label() == s)
    }
}

impl fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// `${stage.output}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    pub stage: String,
    pub output: String,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${{{}.{}}}", self.stage, self.output)
    }
}

/// Parses a YAML string that may be a reference. `None`: not a reference at all;
/// `Some(Err)`: it tries to be one but is malformed.
pub fn parse_reference(s: &str) -> Option<Result<Reference, String>> {
    if !s.contains("${") {
        return None;
    }
    let inner = s.strip_prefix("${").and_then(|r| r.strip_suffix('}'));
    let Some(inner) = inner else {
        return Some(Err(format!(
            "`{s}`: a reference must be the whole value, `${{stage.output}}`"
        )));
    };
    match inner.split_once('.') {
        Some((stage, output))
            if !stage.is_empty() && !output.is_empty() && !output.contains('.') =>
        {
            Some(Ok(Reference {
                stage: stage.to_string(),
                output: output.to_string(),
            }))
        }
        _ => Some(Err(format!("`{s}`: expected `${{stage.output}}`"))),
    }
}

const PLACEHOLDER: &str = "rolekd-ref://";

/// Whether a config value holds a reference placeholder anywhere (while the graph is
/// validated, an input another stage will write): such a plugin entry cannot be built yet.
pub fn holds_placeholder(v: &serde_yaml_ng::Value) -> bool {
    use serde_yaml_ng::Value;
    match v {
        Value::String(s) => s.starts_with(PLACEHOLDER),
        Value::Sequence(xs) => xs.iter().any(holds_placeholder),
        Value::Mapping(m) => m.values().any(holds_placeholder),
        Value::Tagged(t) => holds_placeholder(&t.value),
        _ => false,
    }
}

/// The placeholder standing for a reference while the graph is validated.
pub fn placeholder(kind: ArtifactKind, r: &Reference) -> String {
    format!("{PLACEHOLDER}{}/{}.{}", kind.label(), r.stage, r.output)
}

/// The reference (`${stage.output}`) a placeholder stands for; `None` for any other string.
pub fn placeholder_reference(s: &str) -> Option<String> {
    read_placeholder(s).map(|(_, r)| format!("${{{r}}}"))
}

fn read_placeholder(s: &str) -> Option<(ArtifactKind, String)> {
    let rest = s.strip_prefix(PLACEHOLDER)?;
    let (kind, reference) = rest.split_once('/')?;
    Some((ArtifactKind::from_label(kind)?, reference.to_string()))
}

macro_rules! artifact_path {
    ($name:ident, $kind:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Debug, PartialEq, Eq, Serialize)]
        pub struct $name(pub PathBuf);

        impl $name {
            /// True while the graph is being validated (the producer has not run yet).
            pub fn is_placeholder(&self) -> bool {
                self.0.to_string_lossy().starts_with(PLACEHOLDER)
            }

            pub fn path(&self) -> &Path {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                if let Some((kind, reference)) = read_placeholder(&s) {
                    if kind != $kind {
                        return Err(serde::de::Error::custom(format!(
                            "expected a {}, but `${{{reference}}}` is a {kind}",
                            $kind
                        )));
                    }
                }
                Ok($name(PathBuf::from(s)))
            }
        }
    };
}

artifact_path!(
    CheckpointPath,
    ArtifactKind::Checkpoint,
    "A checkpoint directory: a literal path or `${stage.checkpoint}`."
);
artifact_path!(
    SchedulePath,
    ArtifactKind::Schedule,
    "A schedule file: a literal path or `${stage.schedule}`."
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        assert_eq!(parse_reference("plain"), None);
        let r = parse_reference("${teacher.checkpoint}").unwrap().unwrap();
        assert_eq!(
            (r.stage.as_str(), r.output.as_str()),
            ("teacher", "checkpoint")
        );
        assert!(parse_reference("x/${teacher.checkpoint}").unwrap().is_err());
        assert!(parse_reference("${teacher}").unwrap().is_err());
    }

    #[test]
    fn typed_paths_refuse_the_wrong_kind() {
        let r = Reference {
            stage: "s".into(),
            output: "schedule".into(),
        };
        let ph = serde_yaml_ng::Value::String(placeholder(ArtifactKind::Schedule, &r));
        let err = serde_yaml_ng::from_value::<CheckpointPath>(ph.clone()).unwrap_err();
        assert!(err
            .to_string()
            .contains("expected a checkpoint, but `${s.schedule}` is a schedule"));
        let ok = serde_yaml_ng::from_value::<SchedulePath>(ph).unwrap();
        assert!(ok.is_placeholder());
        let lit = serde_yaml_ng::from_value::<CheckpointPath>("a/b".into()).unwrap();
        assert!(!lit.is_placeholder());
    }
}
