//! Mappings whose plugin entries are read through [`Params::get`] (so that errors inside an
//! entry are located there) and whose other keys are a params struct's fields: one ordered
//! [`Key`] list says what the mapping accepts, serde reads the fields, and an unknown key or
//! a missing entry is refused with serde's own message, as if every key were a field.

use super::params::{ConfigError, Params};
use serde::de::DeserializeOwned;
use serde_yaml_ng::Value;

/// One key a mapping accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// A field of the params struct.
    Field(&'static str),
    /// A plugin entry (any value) that may be left out.
    Entry(&'static str),
    /// A plugin entry that must be present.
    Required(&'static str),
}

impl Key {
    pub fn name(self) -> &'static str {
        match self {
            Key::Field(n) | Key::Entry(n) | Key::Required(n) => n,
        }
    }

    fn is_entry(self) -> bool {
        !matches!(self, Key::Field(_))
    }
}

impl Params {
    /// [`Params::parse`] into `T`, which holds the [`Key::Field`]s of `keys` (and denies
    /// unknown fields); the entries are left to [`Params::get`]. `keys` are in the order an
    /// "unknown field" error lists them. Errors come in serde's order: the first bad key in
    /// the file, then the first missing key in `keys`.
    pub fn parse_with_entries<T: DeserializeOwned>(&self, keys: &[Key]) -> Result<T, ConfigError> {
        // A bare string or null stands for an empty mapping, as in `parse`.
        let empty = serde_yaml_ng::Mapping::new();
        let map = match self.value() {
            Value::Mapping(m) => m,
            Value::String(_) | Value::Null => &empty,
            _ => return self.parse(),
        };
        let entries: Vec<&str> = keys
            .iter()
            .filter(|k| k.is_entry())
            .map(|k| k.name())
            .collect();
        let fields = self.without(&entries);
        let parsed = fields
            .parse::<T>()
            .map_err(|e| match unknown_key(&e.message) {
                Some(key) => ConfigError {
                    message: unknown_field_message(&key, keys),
                    ..e
                },
                None => e,
            });
        let missing_entry = keys
            .iter()
            .position(|k| matches!(k, Key::Required(n) if !map.contains_key(Value::from(*n))));
        match (parsed, missing_entry) {
            (Ok(_), Some(i)) => Err(self.error(missing_message(keys[i].name()))),
            (Err(e), Some(i)) if missing_field(&e.message).is_some_and(|f| before(keys, i, f)) => {
                Err(self.error(missing_message(keys[i].name())))
            }
            (parsed, _) => parsed,
        }
    }
}

/// Whether key `i` comes before the key named `name` in `keys` (serde reports the first
/// missing field in declaration order).
fn before(keys: &[Key], i: usize, name: &str) -> bool {
    keys.iter()
        .position(|k| k.name() == name)
        .is_some_and(|j| i < j)
}

fn unknown_key(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next().map(str::to_string)
}

fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.strip_suffix('`')
}

fn missing_message(name: &str) -> String {
    format!("missing field `{name}`")
}

/// serde's message for an unknown field of a struct with `keys` as its fields.
fn unknown_field_message(key: &str, keys: &[Key]) -> String {
    let names: Vec<String> = keys.iter().map(|k| format!("`{}`", k.name())).collect();
    let expected = match names.as_slice() {
        [] => return format!("unknown field `{key}`, there are no fields"),
        [one] => one.clone(),
        [a, b] => format!("{a} or {b}"),
        many => format!("one of {}", many.join(", ")),
    };
    format!("unknown field `{key}`, expected {expected}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// The struct the tests compare with: every key a field.
    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Whole {
        #[serde(default)]
        model: Option<Value>,
        epochs: usize,
        trial: Value,
        #[serde(default)]
        strategy: Option<Value>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Typed {
        epochs: usize,
    }

    const KEYS: &[Key] = &[
        Key::Entry("model"),
        Key::Field("epochs"),
        Key::Required("trial"),
        Key::Entry("strategy"),
    ];

    fn both(yaml: &str) -> (Result<Whole, ConfigError>, Result<Typed, ConfigError>) {
        let p = Params::from_yaml(yaml).unwrap();
        (p.parse::<Whole>(), p.parse_with_entries::<Typed>(KEYS))
    }

    #[test]
    fn errors_match_a_struct_with_every_key() {
        for yaml in [
            "{epochs: 2, trial: {}, stratgy: x}",
            "{modle: 1, epochs: x}",
            "{epochs: x, modle: 1}",
            "{model: 1}",
            "{trial: 1}",
            "{epochs: 1}",
            "just-a-name",
            "~",
            "{type: t, epochs: 1, trial: ~, extra: 1}",
        ] {
            let (whole, typed) = both(yaml);
            let (w, t) = (whole.unwrap_err(), typed.unwrap_err());
            assert_eq!((&w.path, &w.message), (&t.path, &t.message), "{yaml}");
        }
        // Not a mapping: the struct's own error (it keeps the whole struct's name).
        let t = both("[1, 2]").1.unwrap_err();
        assert_eq!(t.message, "invalid type: sequence, expected struct Typed");
    }

    #[test]
    fn fields_parse_and_entries_are_left_alone() {
        let (whole, typed) = both("{model: {type: m}, epochs: 3, trial: {epochs: 1}}");
        assert_eq!(whole.unwrap().epochs, 3);
        assert_eq!(typed.unwrap(), Typed { epochs: 3 });
    }

    #[test]
    fn serde_lists_two_and_one_names_its_own_way() {
        let two = [Key::Field("a"), Key::Entry("b")];
        assert_eq!(
            unknown_field_message("x", &two),
            "unknown field `x`, expected `a` or `b`"
        );
        assert_eq!(
            unknown_field_message("x", &two[..1]),
            "unknown field `x`, expected `a`"
        );
    }
}
