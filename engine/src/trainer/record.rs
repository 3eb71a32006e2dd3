//! A trainer role as a stage reports it ([`RoleRecord`], a core type that stage plugins
//! return and tools read).

use super::roles::ModelSource;
use super::spec::{RoleSpec, View};
use rolekd_core::artifact::placeholder_reference;
use rolekd_core::role::RoleRecord;

impl RoleSpec {
    /// This role as a stage reports it.
    pub fn record(&self) -> RoleRecord {
        let spec = self;
        let (model, from) = match &spec.model {
            ModelSource::Config(p) => (
                p.type_name().unwrap_or_else(|_| "?".into()),
                spec.init.as_ref().map(|i| i.display().to_string()),
            ),
            ModelSource::Checkpoint(path) => {
                ("checkpoint".into(), Some(path.display().to_string()))
            }
        };
        let augment = match (&spec.view, &spec.augment) {
            (View::Same | View::Of(_), _) => "-".into(),
            (View::Own, None) => "none".into(),
            (View::Own, Some(a)) => a.type_name().unwrap_or_else(|_| "?".into()),
        };
        RoleRecord {
            name: spec.name.clone(),
            trained: spec.trainable,
            model,
            view: match &spec.view {
                View::Own => "own".into(),
                View::Same => "same".into(),
                View::Of(name) => name.clone(),
            },
            augment,
            from: from.map(|f| describe_source(&f)),
        }
    }
}

/// A reference placeholder (during checking) reads as the reference the user wrote.
fn describe_source(s: &str) -> String {
    placeholder_reference(s).unwrap_or_else(|| s.to_string())
}
