//! A plugin's slice of the pipeline YAML, carrying its YAML path and the source map so
//! that any error while reading it is located.

use super::location::{join_index, join_key, Location, SourceMap};
use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;
use std::fmt;
use std::sync::Arc;

/// A configuration error: what is wrong, at which YAML path, and where in which file.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    pub path: String,
    pub location: Option<Location>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(loc) = &self.location {
            write!(f, "{loc}: ")?;
        }
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "at `{}`: {}", self.path, self.message)
        }
    }
}

/// A YAML value together with where it sits in the pipeline.
#[derive(Clone, Debug)]
pub struct Params {
    value: Value,
    path: String,
    sources: Arc<SourceMap>,
}

impl Params {
    pub fn new(value: Value, path: impl Into<String>, sources: Arc<SourceMap>) -> Self {
        Params {
            value,
            path: path.into(),
            sources,
        }
    }

    /// Params with no file behind them (built in code, or in tests).
    pub fn detached(value: Value) -> Self {
        Params::new(value, "", Arc::new(SourceMap::default()))
    }

    /// Params from a YAML snippet, for tests and the CLI.
    pub fn from_yaml(text: &str) -> Result<Self, ConfigError> {
        let value: Value = serde_yaml_ng::from_str(text).map_err(|e| ConfigError {
            path: String::new(),
            location: None,
            message: e.to_string(),
        })?;
        Ok(Params::detached(value))
    }

    pub fn value(&self) -> &Value {
        &self.value
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn sources(&self) -> &Arc<SourceMap> {
        &self.sources
    }

    /// A child mapping entry (None when missing or when this is not a mapping).
    pub fn get(&self, key: &str) -> Option<Params> {
        let v = self.value.as_mapping()?.get(key)?;
        Some(Params::new(
            v.clone(),
            join_key(&self.path, key),
            self.sources.clone(),
        ))
    }

    /// The items of a sequence (a single non-sequence value counts as a list of one).
    pub fn items(&self) -> Vec<Params> {
        match &self.value {
            Value::Sequence(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    Params::new(v.clone(), join_index(&self.path, i), self.sources.clone())
                })
                .collect(),
            Value::Null => Vec::new(),
            other => vec![Params::new(
                other.clone(),
                self.path.clone(),
                self.sources.clone(),
            )],
        }
    }

    /// The entries of a mapping, in file order.
    pub fn entries(&self) -> Result<Vec<(String, Params)>, ConfigError> {
        let map = self
            .value
            .as_mapping()
            .ok_or_else(|| self.error("expected a mapping"))?;
        map.iter()
            .map(|(k, v)| {
                let key = k
                    .as_str()
                    .ok_or_else(|| self.error("expected string keys"))?
                    .to_string();
                let path = join_key(&self.path, &key);
                Ok((key, Params::new(v.clone(), path, self.sources.clone())))
            })
            .collect()
    }

    /// These params without some keys (the ones the runtime consumes itself, like `type`).
    pub fn without(&self, keys: &[&str]) -> Params {
        let mut value = self.value.clone();
        if let Some(map) = value.as_mapping_mut() {
            for k in keys {
                map.remove(*k);
            }
        }
        Params::new(value, self.path.clone(), self.sources.clone())
    }

    /// An error about the plugin this entry names, located at its `type:` key (or at the
    /// entry itself when it is a bare name).
    pub fn type_error(&self, message: impl Into<String>) -> ConfigError {
        self.get("type")
            .unwrap_or_else(|| self.clone())
            .error(message)
    }

    /// The `type:` field every plugin entry carries.
    pub fn type_name(&self) -> Result<String, ConfigError> {
        match &self.value {
            Value::String(s) => Ok(s.clone()),
            Value::Mapping(m) => match m.get("type") {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(self.child_error("type", "expected a plugin name (a string)")),
                None => Err(self.error("missing field `type` (the plugin's name)")),
            },
            _ => Err(self.error("expected a mapping with a `type:` field, or a plugin name")),
        }
    }

    /// Deserializes into a plugin's params struct; errors carry the exact path and location.
    /// A bare string (`augment: standard`) stands for `{type: standard}`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        let value = match &self.value {
            Value::String(_) => Value::Mapping(Default::default()),
            Value::Null => Value::Mapping(Default::default()),
            v => v.clone(),
        };
        let mut value = value;
        if let Some(m) = value.as_mapping_mut() {
            m.remove("type");
        }
        serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
            let inner = e.path().to_string();
            let message = e.inner().to_string();
            let mut path = self.path.clone();
            if inner != "." {
                path = join_path(&path, &inner);
            }
            // serde reports an unknown field at its parent; point at the field itself.
            let field_path = unknown_field(&message)
                .filter(|f| !path.ends_with(&format!(".{f}")) && path != *f)
                .map(|f| join_key(&path, f));
            let location = field_path
                .as_deref()
                .and_then(|p| self.sources.locate(p))
                .or_else(|| self.sources.locate(&path));
            ConfigError {
                path: field_path.unwrap_or(path),
                location,
                message: strip_serde_location(&message),
            }
        })
    }

    /// Deserializes this value itself (a scalar or list), without treating it as a plugin.
    pub fn parse_value<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        serde_path_to_error::deserialize::<_, T>(self.value.clone()).map_err(|e| {
            let inner = e.path().to_string();
            let path = if inner == "." {
                self.path.clone()
            } else {
                join_path(&self.path, &inner)
            };
            ConfigError {
                location: self.sources.locate(&path),
                path,
                message: strip_serde_location(&e.inner().to_string()),
            }
        })
    }

    /// A located error about this value.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError {
            path: self.path.clone(),
            location: self.sources.locate(&self.path),
            message: message.into(),
        }
    }

    /// A located error about one of this mapping's fields.
    pub fn child_error(&self, key: &str, message: impl Into<String>) -> ConfigError {
        let path = join_key(&self.path, key);
        ConfigError {
            location: self.sources.locate(&path),
            path,
            message: message.into(),
        }
    }
}

fn join_path(base: &str, inner: &str) -> String {
    if base.is_empty() {
        inner.to_string()
    } else if inner.starts_with('[') {
        format!("{base}{inner}")
    } else {
        format!("{base}.{inner}")
    }
}

fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// serde_yaml_ng appends " at line L column C" for its own (Value-relative) positions,
/// which mean nothing once the value was cut out of a file: drop them.
fn strip_serde_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::path::Path;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    struct Kd {
        temperature: f64,
        #[serde(default)]
        t_squared: bool,
    }

    fn params_at(text: &str, path: &[&str]) -> Params {
        let value: Value = serde_yaml_ng::from_str(text).unwrap();
        let map = Arc::new(SourceMap::index(text, Path::new("p.yaml")));
        let mut p = Params::new(value, "", map);
        for key in path {
            p = if let Ok(i) = key.parse::<usize>() {
                p.items().swap_remove(i)
            } else {
                p.get(key).unwrap()
            };
        }
        p
    }

    #[test]
    fn unknown_field_is_located_at_the_field() {
        let text = "stages:\n  s:\n    loss:\n      - type: kd\n        temprature: 4\n";
        let p = params_at(text, &["stages", "s", "loss", "0"]);
        let err = p.parse::<Kd>().unwrap_err();
        assert_eq!(err.path, "stages.s.loss[0].temprature");
        assert_eq!(err.location.as_ref().unwrap().line, 5);
        assert!(err.message.contains("temperature"), "{}", err.message);
    }

    #[test]
    fn wrong_type_names_the_path() {
        let text = "loss:\n  - type: kd\n    temperature: hot\n";
        let p = params_at(text, &["loss", "0"]);
        let err = p.parse::<Kd>().unwrap_err();
        assert_eq!(err.path, "loss[0].temperature");
        assert_eq!(err.location.unwrap().line, 3);
    }

    #[test]
    fn known_fields_parse_and_type_is_dropped() {
        let kd: Kd = Params::from_yaml("{type: kd, temperature: 4}")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!((kd.temperature, kd.t_squared), (4.0, false));
    }

    #[test]
    fn bare_string_means_type_only() {
        let p = Params::from_yaml("ce").unwrap();
        assert_eq!(p.type_name().unwrap(), "ce");
    }
}
