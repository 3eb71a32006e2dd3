//! Reading a pipeline file: YAML with anchors and merge keys, `base:` composition, and
//! `--set a.b=v` overrides, keeping track of where every value was written.

use super::location::SourceMap;
use super::params::ConfigError;
use serde_yaml_ng::{Mapping, Value};
use std::path::{Path, PathBuf};

/// A pipeline document after composition, with its source map.
#[derive(Clone, Debug)]
pub struct LoadedYaml {
    pub value: Value,
    pub sources: SourceMap,
    pub file: PathBuf,
}

const MAX_BASE_DEPTH: usize = 16;

/// Loads `file`, following `base:` chains (child keys override, mappings merge deeply,
/// a key set to `null` in the child removes it).
pub fn load_pipeline(file: &Path) -> Result<LoadedYaml, ConfigError> {
    load_with_depth(file, 0, &mut Vec::new())
}

fn load_with_depth(
    file: &Path,
    depth: usize,
    chain: &mut Vec<PathBuf>,
) -> Result<LoadedYaml, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
        path: String::new(),
        location: None,
        message: format!("cannot read pipeline file {}: {e}", file.display()),
    })?;
    let canonical = file.canonicalize().unwrap_or_else(|_| file.to_path_buf());
    if chain.contains(&canonical) || depth > MAX_BASE_DEPTH {
        return Err(ConfigError {
            path: "base".into(),
            location: None,
            message: format!(
                "`base:` files include each other: {}",
                describe_chain(chain, &canonical)
            ),
        });
    }
    chain.push(canonical);
    let sources = SourceMap::index(&text, file);
    let mut value = parse_yaml(&text, file)?;
    value.apply_merge().map_err(|e| ConfigError {
        path: String::new(),
        location: None,
        message: format!("{}: merge key: {e}", file.display()),
    })?;
    if value.is_null() {
        value = Value::Mapping(Mapping::new());
    }
    let Value::Mapping(map) = &mut value else {
        return Err(ConfigError {
            path: String::new(),
            location: sources.locate(""),
            message: "a pipeline must be a YAML mapping (name, seed, data, stages...)".into(),
        });
    };
    let Some(base) = map.remove("base") else {
        chain.pop();
        return Ok(LoadedYaml {
            value,
            sources,
            file: file.to_path_buf(),
        });
    };
    let Some(base_name) = base.as_str() else {
        return Err(ConfigError {
            path: "base".into(),
            location: sources.locate("base"),
            message: "expected a file path".into(),
        });
    };
    let base_path = file.parent().unwrap_or(Path::new(".")).join(base_name);
    if !base_path.exists() {
        return Err(ConfigError {
            path: "base".into(),
            location: sources.locate("base"),
            message: format!("base pipeline {} does not exist", base_path.display()),
        });
    }
    let parent = load_with_depth(&base_path, depth + 1, chain)?;
    chain.pop();
    let mut merged = parent.value;
    deep_merge(&mut merged, value);
    let mut all_sources = sources;
    all_sources.merge_missing(&parent.sources);
    Ok(LoadedYaml {
        value: merged,
        sources: all_sources,
        file: file.to_path_buf(),
    })
}

fn describe_chain(chain: &[PathBuf], again: &Path) -> String {
    let mut names: Vec<String> = chain.iter().map(|p| p.display().to_string()).collect();
    names.push(again.display().to_string());
    names.join(" -> ")
}

/// Parses YAML text, turning the parser's error into a located one.
pub fn parse_yaml(text: &str, file: &Path) -> Result<Value, ConfigError> {
    serde_yaml_ng::from_str(text).map_err(|e| {
        let location = e.location().map(|l| super::location::Location {
            file: std::sync::Arc::new(file.to_path_buf()),
            line: l.line(),
            column: l.column(),
        });
        let msg = e.to_string();
        let msg = match msg.find(" at line ") {
            Some(i) => msg[..i].to_string(),
            None => msg,
        };
        ConfigError {
            path: String::new(),
            location,
            message: format!("malformed YAML: {msg}"),
        }
    })
}

/// Child over base: mappings merge key by key, everything else is replaced; `null` deletes.
pub fn deep_merge(base: &mut Value, child: Value) {
    match (base, child) {
        (Value::Mapping(b), Value::Mapping(c)) => {
            for (k, v) in c {
                if v.is_null() {
                    b.remove(&k);
                } else if let Some(existing) = b.get_mut(&k) {
                    deep_merge(existing, v);
                } else {
                    b.insert(k, v);
                }
            }
        }
        (b, c) => *b = c,
    }
}

/// Applies one `--set path=value` override (`stages.teacher.epochs=2`,
/// `stages.s.loss[1].weight=0.5`). The value is read as YAML.
pub fn apply_override(root: &mut Value, assignment: &str) -> Result<(), ConfigError> {
    let err = |m: String| ConfigError {
        path: assignment.split('=').next().unwrap_or("").to_string(),
        location: None,
        message: m,
    };
    let (path, raw) = assignment
        .split_once('=')
        .ok_or_else(|| err(format!("--set expects PATH=VALUE, got `{assignment}`")))?;
    let new: Value = serde_yaml_ng::from_str(raw)
        .map_err(|e| err(format!("--set value `{raw}` is not valid YAML: {e}")))?;
    let segments = split_path(path).map_err(err)?;
    let mut cur = root;
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        cur = match seg {
            Segment::Key(k) => {
                if !cur.is_mapping() {
                    return Err(err(format!(
                        "--set {path}: `{k}` is inside a value that is not a mapping"
                    )));
                }
                let map = cur.as_mapping_mut().expect("checked");
                if last {
                    // `--set stages.x=null` removes the field, as `null` does under `base:`.
                    if new.is_null() {
                        map.remove(k.as_str());
                    } else {
                        map.insert(Value::String(k.clone()), new);
                    }
                    return Ok(());
                }
                map.entry(Value::String(k.clone()))
                    .or_insert_with(|| Value::Mapping(Mapping::new()))
            }
            Segment::Index(idx) => {
                let seq = cur.as_sequence_mut().ok_or_else(|| {
                    err(format!(
                        "--set {path}: [{idx}] is applied to a value that is not a list"
                    ))
                })?;
                let len = seq.len();
                let slot = seq.get_mut(*idx).ok_or_else(|| {
                    err(format!(
                        "--set {path}: index {idx} is past the list's end ({len} items)"
                    ))
                })?;
                if last {
                    *slot = new;
                    return Ok(());
                }
                slot
            }
        };
    }
    Err(err("--set needs a non-empty path".into()))
}

enum Segment {
    Key(String),
    Index(usize),
}

fn split_path(path: &str) -> Result<Vec<Segment>, String> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (key, rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            out.push(Segment::Key(key.to_string()));
        }
        let mut rest = rest;
        while let Some(r) = rest.strip_prefix('[') {
            let end = r
                .find(']')
                .ok_or_else(|| format!("unclosed `[` in `{path}`"))?;
            let idx = r[..end]
                .parse()
                .map_err(|_| format!("`{}` is not a list index in `{path}`", &r[..end]))?;
            out.push(Segment::Index(idx));
            rest = &r[end + 1..];
        }
    }
    if out.is_empty() {
        return Err("--set needs a non-empty path".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn base_composes_and_child_wins() {
        let d = tempfile::tempdir().unwrap();
        write(
            d.path(),
            "base.yaml",
            "name: base\nseed: 1\nstages:\n  a: {kind: train, epochs: 3}\n  b: {kind: train}\n",
        );
        let child = write(
            d.path(),
            "child.yaml",
            "base: base.yaml\nname: child\nstages:\n  a:\n    epochs: 5\n  b: ~\n",
        );
        let y = load_pipeline(&child).unwrap();
        assert_eq!(y.value["name"].as_str(), Some("child"));
        assert_eq!(y.value["seed"].as_u64(), Some(1));
        assert_eq!(y.value["stages"]["a"]["epochs"].as_u64(), Some(5));
        assert_eq!(y.value["stages"]["a"]["kind"].as_str(), Some("train"));
        assert!(y.value["stages"].get("b").is_none());
        // a key only the base has is located in the base file
        assert!(y
            .sources
            .locate("seed")
            .unwrap()
            .file
            .ends_with("base.yaml"));
    }

    #[test]
    fn base_cycle_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "a.yaml", "base: b.yaml\n");
        let a = write(d.path(), "b.yaml", "base: a.yaml\n");
        let err = load_pipeline(&a).unwrap_err();
        assert!(
            err.message.contains("include each other"),
            "{}",
            err.message
        );
    }

    #[test]
    fn merge_keys_work() {
        let d = tempfile::tempdir().unwrap();
        let f = write(d.path(), "p.yaml", "opt: &o {type: sgd, lr: 0.1}\nstages:\n  a:\n    optimizer:\n      <<: *o\n      lr: 0.05\n");
        let y = load_pipeline(&f).unwrap();
        assert_eq!(
            y.value["stages"]["a"]["optimizer"]["type"].as_str(),
            Some("sgd")
        );
        assert_eq!(
            y.value["stages"]["a"]["optimizer"]["lr"].as_f64(),
            Some(0.05)
        );
    }

    #[test]
    fn malformed_yaml_is_located() {
        let d = tempfile::tempdir().unwrap();
        let f = write(d.path(), "p.yaml", "name: x\nstages:\n  a: [1, 2\n");
        let err = load_pipeline(&f).unwrap_err();
        assert!(err.location.is_some(), "{err}");
        assert!(err.to_string().contains("p.yaml:"), "{err}");
    }

    #[test]
    fn overrides_set_nested_and_indexed_fields() {
        let mut v: Value = serde_yaml_ng::from_str(
            "stages:\n  s:\n    loss: [{type: ce}, {type: kd, weight: 1}]\n",
        )
        .unwrap();
        apply_override(&mut v, "stages.s.loss[1].weight=0.5").unwrap();
        apply_override(&mut v, "stages.s.epochs=3").unwrap();
        assert_eq!(v["stages"]["s"]["loss"][1]["weight"].as_f64(), Some(0.5));
        assert_eq!(v["stages"]["s"]["epochs"].as_u64(), Some(3));
        assert!(apply_override(&mut v, "stages.s.loss[5].weight=1").is_err());
        assert!(apply_override(&mut v, "nothing").is_err());
        apply_override(&mut v, "stages.s=null").unwrap();
        assert!(v["stages"].get("s").is_none());
    }
}
