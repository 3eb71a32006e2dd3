//! Pipeline YAML: loading, composition, overrides, and located errors.

mod load;
mod location;
mod params;

pub use load::{apply_override, deep_merge, load_pipeline, parse_yaml, LoadedYaml};
pub use location::{join_index, join_key, parent_path, Location, SourceMap};
pub use params::{ConfigError, Params};

/// The candidate nearest to `key`, for "did you mean" hints.
pub fn closest_key(key: &str, candidates: &[&str]) -> Option<String> {
    let owned: Vec<String> = candidates.iter().map(|s| s.to_string()).collect();
    crate::registry::closest_name(key, &owned)
}
