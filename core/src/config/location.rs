//! Where each YAML path was written: built from the parser's spanned events so that errors
//! found long after parsing (an unknown plugin, a bad field in a plugin's params) can still
//! point at file:line:column.

use saphyr_parser::{Event, Parser, Span, SpannedEventReceiver};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A position in a YAML file (1-based line and column).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: Arc<PathBuf>,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// Maps YAML paths (`stages.student.loss[1].temperature`) to where they were written.
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    entries: HashMap<String, Location>,
}

impl SourceMap {
    /// Indexes one YAML text. Parse errors are left to the deserializer, which reports them
    /// with their own location; an unparsable text just yields a partial map.
    pub fn index(text: &str, file: &Path) -> SourceMap {
        let mut walker = Walker::new(Arc::new(file.to_path_buf()));
        let mut parser = Parser::new_from_str(text);
        let _ = parser.load(&mut walker, false);
        SourceMap {
            entries: walker.entries,
        }
    }

    /// Adds entries of `other` that this map does not have (a base file under its child).
    pub fn merge_missing(&mut self, other: &SourceMap) {
        for (k, v) in &other.entries {
            self.entries.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }

    /// The location of `path`, or of its nearest ancestor that was written down.
    pub fn locate(&self, path: &str) -> Option<Location> {
        let mut p = path.to_string();
        loop {
            if let Some(loc) = self.entries.get(&p) {
                return Some(loc.clone());
            }
            if p.is_empty() {
                return None;
            }
            p = parent_path(&p).to_string();
        }
    }
}

/// The parent of a YAML path: `a.b[2]` -> `a.b`, `a.b` -> `a`, `a` -> ``.
pub fn parent_path(path: &str) -> &str {
    match path.rfind(['.', '[']) {
        Some(i) => &path[..i],
        None => "",
    }
}

/// Joins a key onto a YAML path.
pub fn join_key(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Joins a sequence index onto a YAML path.
pub fn join_index(path: &str, index: usize) -> String {
    format!("{path}[{index}]")
}

enum Frame {
    Map {
        path: String,
        key: Option<String>,
        anchor: usize,
    },
    Seq {
        path: String,
        next: usize,
        anchor: usize,
    },
}

struct Walker {
    file: Arc<PathBuf>,
    stack: Vec<Frame>,
    entries: HashMap<String, Location>,
    /// anchor id -> (absolute path where it was defined)
    anchors: HashMap<usize, String>,
}

impl Walker {
    fn new(file: Arc<PathBuf>) -> Self {
        Walker {
            file,
            stack: Vec::new(),
            entries: HashMap::new(),
            anchors: HashMap::new(),
        }
    }

    fn loc(&self, span: &Span) -> Location {
        Location {
            file: self.file.clone(),
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }

    /// The path a new value node takes, advancing the parent frame. None for a mapping key.
    fn value_path(&mut self) -> Option<String> {
        match self.stack.last_mut() {
            None => Some(String::new()),
            Some(Frame::Map { path, key, .. }) => key.take().map(|k| join_key(path, &k)),
            Some(Frame::Seq { path, next, .. }) => {
                let p = join_index(path, *next);
                *next += 1;
                Some(p)
            }
        }
    }

    /// Copies the entries recorded under an anchor's path to `dest` (aliases, merge keys).
    fn replay(&mut self, anchor: usize, dest: &str, only_missing: bool) {
        let Some(src) = self.anchors.get(&anchor).cloned() else {
            return;
        };
        let copies: Vec<(String, Location)> = self
            .entries
            .iter()
            .filter_map(|(k, v)| {
                let rest = k.strip_prefix(&src)?;
                if rest.is_empty() || rest.starts_with('.') || rest.starts_with('[') {
                    let rest = rest
                        .strip_prefix('.')
                        .map(|r| format!(".{r}"))
                        .unwrap_or(rest.to_string());
                    let new = if dest.is_empty() {
                        rest.trim_start_matches('.').to_string()
                    } else {
                        format!("{dest}{rest}")
                    };
                    Some((new, v.clone()))
                } else {
                    None
                }
            })
            .collect();
        for (k, v) in copies {
            if only_missing {
                self.entries.entry(k).or_insert(v);
            } else {
                self.entries.insert(k, v);
            }
        }
    }
}

impl<'input> SpannedEventReceiver<'input> for Walker {
    fn on_event(&mut self, ev: Event<'input>, span: Span) {
        match ev {
            Event::Scalar(value, _, anchor, _) => {
                let is_key = matches!(self.stack.last(), Some(Frame::Map { key: None, .. }));
                if is_key {
                    if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
                        *key = Some(value.to_string());
                    }
                    // A key's own position is the best location for "unknown field" errors.
                    if let Some(Frame::Map { path, .. }) = self.stack.last() {
                        let p = join_key(path, &value);
                        let l = self.loc(&span);
                        self.entries.insert(p, l);
                    }
                } else if let Some(p) = self.value_path() {
                    let l = self.loc(&span);
                    self.entries.entry(p.clone()).or_insert(l);
                    if anchor > 0 {
                        self.anchors.insert(anchor, p);
                    }
                }
            }
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                let path = self.value_path().unwrap_or_default();
                let l = self.loc(&span);
                self.entries.entry(path.clone()).or_insert(l);
                if anchor > 0 {
                    self.anchors.insert(anchor, path.clone());
                }
                self.stack.push(if is_map {
                    Frame::Map {
                        path,
                        key: None,
                        anchor,
                    }
                } else {
                    Frame::Seq {
                        path,
                        next: 0,
                        anchor,
                    }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                if let Some(Frame::Map { anchor, path, .. } | Frame::Seq { anchor, path, .. }) =
                    self.stack.pop()
                {
                    if anchor > 0 {
                        self.anchors.insert(anchor, path);
                    }
                }
            }
            Event::Alias(id) => {
                let merge =
                    matches!(self.stack.last(), Some(Frame::Map { key: Some(k), .. }) if k == "<<");
                if merge {
                    let parent = match self.stack.last_mut() {
                        Some(Frame::Map { path, key, .. }) => {
                            *key = None;
                            path.clone()
                        }
                        _ => String::new(),
                    };
                    self.replay(id, &parent, true);
                } else if let Some(p) = self.value_path() {
                    self.replay(id, &p, true);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_nested_paths_and_falls_back_to_parents() {
        let text = "name: x\nstages:\n  student:\n    loss:\n      - type: ce\n      - type: kd\n        temperature: 4\n";
        let map = SourceMap::index(text, Path::new("p.yaml"));
        let loc = map.locate("stages.student.loss[1].temperature").unwrap();
        assert_eq!((loc.line, loc.column), (7, 9));
        let loc = map.locate("stages.student.loss[1].missing").unwrap();
        assert_eq!((loc.line, loc.column), (6, 9));
        assert_eq!(map.locate("stages.student.loss[0].type").unwrap().line, 5);
    }

    #[test]
    fn aliases_and_merge_keys_point_at_the_anchor() {
        let text =
            "common: &c\n  lr: 0.1\nstages:\n  a:\n    <<: *c\n    epochs: 2\n  b:\n    opt: *c\n";
        let map = SourceMap::index(text, Path::new("p.yaml"));
        assert_eq!(map.locate("stages.a.lr").unwrap().line, 2);
        assert_eq!(map.locate("stages.a.epochs").unwrap().line, 6);
        assert_eq!(map.locate("stages.b.opt.lr").unwrap().line, 2);
    }
}
