//! One table of plugins for every kind. Static plugins arrive through `inventory` (see
//! [`crate::register_plugin!`]); dynamic ones are added at run time through
//! [`Registry::add`], so both look the same to YAML, to `rolekd-run plugins` and to errors.

use crate::plugin::augment::{AugmentOpFactory, AugmentPolicyFactory};
use crate::plugin::data::DatasetFactory;
use crate::plugin::loss::LossFactory;
use crate::plugin::model::ModelFactory;
use crate::plugin::optim::{LrScheduleFactory, OptimizerFactory};
use crate::plugin::search::SearchStrategyFactory;
use crate::plugin::stage::StageFactory;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{OnceLock, RwLock};

/// The kinds of plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PluginKind {
    Dataset,
    Model,
    AugmentOp,
    AugmentPolicy,
    Loss,
    SearchStrategy,
    Optimizer,
    LrSchedule,
    Stage,
}

impl PluginKind {
    pub const ALL: [PluginKind; 9] = [
        PluginKind::Dataset,
        PluginKind::Model,
        PluginKind::AugmentOp,
        PluginKind::AugmentPolicy,
        PluginKind::Loss,
        PluginKind::SearchStrategy,
        PluginKind::Optimizer,
        PluginKind::LrSchedule,
        PluginKind::Stage,
    ];

    /// The name users see.
    pub fn label(self) -> &'static str {
        match self {
            PluginKind::Dataset => "dataset",
            PluginKind::Model => "model",
            PluginKind::AugmentOp => "augmentation op",
            PluginKind::AugmentPolicy => "augmentation policy",
            PluginKind::Loss => "loss",
            PluginKind::SearchStrategy => "search strategy",
            PluginKind::Optimizer => "optimizer",
            PluginKind::LrSchedule => "lr schedule",
            PluginKind::Stage => "stage kind",
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A plugin's constructor; the variant fixes the plugin's kind.
#[derive(Clone, Copy)]
pub enum Factory {
    Dataset(DatasetFactory),
    Model(ModelFactory),
    AugmentOp(AugmentOpFactory),
    AugmentPolicy(AugmentPolicyFactory),
    Loss(LossFactory),
    SearchStrategy(SearchStrategyFactory),
    Optimizer(OptimizerFactory),
    LrSchedule(LrScheduleFactory),
    Stage(StageFactory),
}

impl Factory {
    pub fn kind(&self) -> PluginKind {
        match self {
            Factory::Dataset(_) => PluginKind::Dataset,
            Factory::Model(_) => PluginKind::Model,
            Factory::AugmentOp(_) => PluginKind::AugmentOp,
            Factory::AugmentPolicy(_) => PluginKind::AugmentPolicy,
            Factory::Loss(_) => PluginKind::Loss,
            Factory::SearchStrategy(_) => PluginKind::SearchStrategy,
            Factory::Optimizer(_) => PluginKind::Optimizer,
            Factory::LrSchedule(_) => PluginKind::LrSchedule,
            Factory::Stage(_) => PluginKind::Stage,
        }
    }
}

/// A statically linked plugin, as `register_plugin!` submits it.
pub struct StaticPlugin {
    pub name: &'static str,
    pub doc: &'static str,
    pub crate_name: &'static str,
    pub factory: Factory,
}

inventory::collect!(StaticPlugin);

/// Where a plugin came from, for listings and name-clash errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginSource {
    /// Linked into this binary (the crate's name).
    Crate(String),
    /// Loaded from a shared library at run time.
    Library(String),
}

impl fmt::Display for PluginSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginSource::Crate(c) if c.starts_with("rolekd-") => write!(f, "built-in ({c})"),
            PluginSource::Crate(c) => write!(f, "crate {c}"),
            PluginSource::Library(p) => write!(f, "library {p}"),
        }
    }
}

/// One registered plugin.
#[derive(Clone)]
pub struct PluginEntry {
    pub name: String,
    pub doc: String,
    pub source: PluginSource,
    pub factory: Factory,
}

impl PluginEntry {
    pub fn kind(&self) -> PluginKind {
        self.factory.kind()
    }
}

/// A failed lookup: lists what exists and suggests the closest name.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown {kind} `{name}`{}; known: {}", suggestion(.closest), .known.join(", "))]
pub struct UnknownPlugin {
    pub kind: PluginKind,
    pub name: String,
    pub known: Vec<String>,
    pub closest: Option<String>,
}

fn suggestion(closest: &Option<String>) -> String {
    crate::config::hint(closest.as_deref())
}

/// Two plugins of one kind under one name.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind} `{name}` is registered twice: by {first} and by {second}")]
pub struct NameClash {
    pub kind: PluginKind,
    pub name: String,
    pub first: PluginSource,
    pub second: PluginSource,
}

/// The plugin tables.
#[derive(Default)]
pub struct Registry {
    tables: BTreeMap<PluginKind, BTreeMap<String, PluginEntry>>,
}

static GLOBAL: OnceLock<RwLock<Registry>> = OnceLock::new();

/// The host's registry, once a host has handed it to this (library) copy of the core.
static HOST: OnceLock<&'static RwLock<Registry>> = OnceLock::new();

/// In a plugin library, during registration: use the host's registry from now on (see
/// [`crate::dynamic::export_entries`]).
pub(crate) fn adopt_host(host: &'static RwLock<Registry>) {
    let _ = HOST.set(host);
}

impl Registry {
    /// The process-wide registry, filled from the statically linked plugins on first use.
    /// A clash between two linked crates is a build mistake and is reported on first use.
    /// In a dynamic plugin library, this is the host's registry (see [`crate::dynamic`]).
    pub fn global() -> &'static RwLock<Registry> {
        if let Some(host) = HOST.get() {
            return host;
        }
        GLOBAL.get_or_init(|| {
            let mut reg = Registry::default();
            for p in inventory::iter::<StaticPlugin> {
                let entry = PluginEntry {
                    name: p.name.to_string(),
                    doc: p.doc.to_string(),
                    source: PluginSource::Crate(p.crate_name.to_string()),
                    factory: p.factory,
                };
                if let Err(clash) = reg.add(entry) {
                    eprintln!("warning: {clash}");
                }
            }
            RwLock::new(reg)
        })
    }

    /// Adds a plugin; a name already taken for that kind is refused.
    pub fn add(&mut self, entry: PluginEntry) -> Result<(), NameClash> {
        let table = self.tables.entry(entry.kind()).or_default();
        if let Some(existing) = table.get(&entry.name) {
            return Err(NameClash {
                kind: entry.kind(),
                name: entry.name.clone(),
                first: existing.source.clone(),
                second: entry.source,
            });
        }
        table.insert(entry.name.clone(), entry);
        Ok(())
    }

    /// Looks a plugin up by kind and name.
    pub fn get(&self, kind: PluginKind, name: &str) -> Result<&PluginEntry, UnknownPlugin> {
        let table = self.tables.get(&kind);
        if let Some(e) = table.and_then(|t| t.get(name)) {
            return Ok(e);
        }
        let known: Vec<String> = table
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default();
        Err(UnknownPlugin {
            kind,
            name: name.to_string(),
            closest: crate::config::closest_name(name, &known),
            known,
        })
    }

    /// Every plugin, by kind then name.
    pub fn entries(&self) -> impl Iterator<Item = &PluginEntry> {
        self.tables.values().flat_map(|t| t.values())
    }
}

/// The constructor of the plugin `entry`'s `type:` names, found with `lookup` (one of this
/// module's typed look-ups, e.g. [`model`]): an unknown name is a located error at that key,
/// with the closest valid name.
pub fn of_entry<T>(
    entry: &crate::config::Params,
    lookup: fn(&str) -> Result<T, UnknownPlugin>,
) -> Result<T, crate::config::ConfigError> {
    let name = entry.type_name()?;
    lookup(&name).map_err(|e| entry.type_error(e.to_string()))
}

macro_rules! typed_lookup {
    ($fn_name:ident, $variant:ident, $ty:ty) => {
        /// Looks up a plugin of this kind and returns its constructor.
        pub fn $fn_name(name: &str) -> Result<$ty, UnknownPlugin> {
            let reg = Registry::global().read().unwrap_or_else(|e| e.into_inner());
            match reg.get(PluginKind::$variant, name)?.factory {
                Factory::$variant(f) => Ok(f),
                _ => unreachable!("registry tables are keyed by the factory's kind"),
            }
        }
    };
}

typed_lookup!(dataset, Dataset, DatasetFactory);
typed_lookup!(model, Model, ModelFactory);
typed_lookup!(augment_op, AugmentOp, AugmentOpFactory);
typed_lookup!(augment_policy, AugmentPolicy, AugmentPolicyFactory);
typed_lookup!(loss, Loss, LossFactory);
typed_lookup!(search_strategy, SearchStrategy, SearchStrategyFactory);
typed_lookup!(optimizer, Optimizer, OptimizerFactory);
typed_lookup!(lr_schedule, LrSchedule, LrScheduleFactory);
typed_lookup!(stage, Stage, StageFactory);

/// Registers a statically linked plugin: the one ritual for every kind.
///
/// ```ignore
/// rolekd_core::register_plugin!(Loss, "kd", "Hinton KD: KL between softened logits", build_kd);
/// ```
#[macro_export]
macro_rules! register_plugin {
    ($kind:ident, $name:expr, $doc:expr, $factory:expr) => {
        $crate::inventory::submit! {
            $crate::registry::StaticPlugin {
                name: $name,
                doc: $doc,
                crate_name: env!("CARGO_PKG_NAME"),
                factory: $crate::registry::Factory::$kind($factory),
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Params;
    use crate::plugin::optim::LrSchedule;

    struct Flat;
    impl LrSchedule for Flat {
        fn lr(&self, base: f64, _: crate::plugin::optim::TrainProgress) -> f64 {
            base
        }
    }
    fn flat(_: &Params) -> crate::Result<Box<dyn LrSchedule>> {
        Ok(Box::new(Flat))
    }
    fn entry(name: &str, src: &str) -> PluginEntry {
        PluginEntry {
            name: name.into(),
            doc: String::new(),
            source: PluginSource::Library(src.into()),
            factory: Factory::LrSchedule(flat),
        }
    }

    #[test]
    fn unknown_name_suggests_the_closest() {
        let mut reg = Registry::default();
        reg.add(entry("cosine", "a")).unwrap();
        reg.add(entry("multistep", "a")).unwrap();
        let err = reg.get(PluginKind::LrSchedule, "cosin").err().unwrap();
        assert_eq!(err.closest.as_deref(), Some("cosine"));
        assert!(err.to_string().contains("did you mean `cosine`"));
        let err = reg.get(PluginKind::LrSchedule, "zzzzzzzzzz").err().unwrap();
        assert_eq!(err.closest, None);
        assert_eq!(err.known, vec!["cosine", "multistep"]);
    }

    #[test]
    fn clash_names_both_sources() {
        let mut reg = Registry::default();
        reg.add(entry("cosine", "liba.so")).unwrap();
        let clash = reg.add(entry("cosine", "libb.so")).unwrap_err();
        let msg = clash.to_string();
        assert!(msg.contains("liba.so") && msg.contains("libb.so"), "{msg}");
    }
}
