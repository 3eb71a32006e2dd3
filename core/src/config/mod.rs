//! Pipeline YAML: loading, composition, overrides, and located errors.

mod load;
mod location;
mod params;

pub use load::{apply_override, deep_merge, load_pipeline, parse_yaml, LoadedYaml};
pub use location::{join_index, join_key, parent_path, Location, SourceMap};
pub use params::{ConfigError, Params};
