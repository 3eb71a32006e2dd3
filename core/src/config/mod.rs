//! Pipeline YAML: loading, composition, overrides, and located errors.

mod entries;
mod load;
mod location;
mod params;
mod ranges;

pub use entries::Key;
pub use load::{apply_override, deep_merge, load_pipeline, parse_yaml, LoadedYaml};
pub use location::{join_index, join_key, parent_path, Location, SourceMap};
pub use params::{ConfigError, Params};

/// The candidate nearest to `key`, for "did you mean" hints.
pub fn closest_key(key: &str, candidates: &[&str]) -> Option<String> {
    let owned: Vec<String> = candidates.iter().map(|s| s.to_string()).collect();
    closest_name(key, &owned)
}

/// The known name nearest to `name`, if any is near enough to be a likely typo.
pub fn closest_name(name: &str, known: &[String]) -> Option<String> {
    let lower = name.to_lowercase();
    known
        .iter()
        .map(|k| (strsim::damerau_levenshtein(&lower, &k.to_lowercase()), k))
        .filter(|(d, k)| *d <= (k.len().max(name.len()) / 2).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.clone())
}

/// ` (did you mean `x`?)` when a candidate is near `key`, else nothing: the one format of
/// every such hint.
pub fn did_you_mean<S: AsRef<str>>(key: &str, candidates: &[S]) -> String {
    let refs: Vec<&str> = candidates.iter().map(AsRef::as_ref).collect();
    hint(closest_key(key, &refs).as_deref())
}

/// The hint for an already found closest name.
pub fn hint(closest: Option<&str>) -> String {
    closest
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}
