//! The experiment graph: stages are nodes, `${stage.output}` references are edges. Built and
//! checked (unknown kinds, dangling references, cycles, output types) before anything runs.

use crate::pipeline::Pipeline;
use rolekd_core::artifact::{parse_reference, placeholder, Reference};
use rolekd_core::config::{did_you_mean, join_index, join_key, ConfigError, Params};
use rolekd_core::error::{Error, Result};
use rolekd_core::plugin::stage::{OutputDecl, Stage};
use rolekd_core::registry;
use serde_yaml_ng::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Keys of a stage mapping the runtime reads itself; the rest belongs to the stage kind.
pub const RUNTIME_KEYS: [&str; 2] = ["kind", "seed"];

/// One stage, checked.
pub struct StageNode {
    pub name: String,
    pub kind: String,
    /// The stage's mapping as written (references still `${...}`), without runtime keys.
    pub params: Params,
    /// `seed:` override for this stage.
    pub seed: Option<u64>,
    /// Producer stages this one reads from, in file order.
    pub deps: Vec<String>,
    /// Every reference, with the YAML path where it is written.
    pub refs: Vec<(String, Reference)>,
    pub outputs: Vec<OutputDecl>,
    /// What the stage says of its roles (references shown as written).
    pub roles: Vec<rolekd_core::role::RoleRecord>,
}

/// The checked graph, in an order where every producer precedes its consumers.
pub struct Graph {
    pub nodes: Vec<StageNode>,
}

impl Graph {
    pub fn node(&self, name: &str) -> Option<&StageNode> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The stages that (transitively) read from `name`.
    pub fn dependents(&self, name: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut frontier = vec![name.to_string()];
        while let Some(cur) = frontier.pop() {
            for n in &self.nodes {
                if n.deps.contains(&cur) && out.insert(n.name.clone()) {
                    frontier.push(n.name.clone());
                }
            }
        }
        out
    }

    /// Keeps the named stages and every stage they (transitively) read from, in order:
    /// `--only` runs part of a pipeline into the same run directory, so a later full run
    /// reuses what it produced (stage hashes do not depend on the other stages).
    pub fn restrict(mut self, keep: &[String]) -> Result<Graph> {
        let mut wanted = BTreeSet::new();
        let mut frontier: Vec<String> = Vec::new();
        for name in keep {
            if self.node(name).is_none() {
                let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
                return Err(Error::Invalid(format!(
                    "--only {name}: no such stage; stages: {}",
                    names.join(", ")
                )));
            }
            frontier.push(name.clone());
        }
        while let Some(cur) = frontier.pop() {
            if wanted.insert(cur.clone()) {
                frontier.extend(self.node(&cur).expect("checked").deps.iter().cloned());
            }
        }
        self.nodes.retain(|n| wanted.contains(&n.name));
        Ok(self)
    }
}

/// Builds the graph: resolves every stage kind, checks references and types by building
/// each stage with typed placeholders, and orders the stages.
pub fn build(pipeline: &Pipeline) -> Result<Graph> {
    let names: Vec<String> = pipeline.stages.iter().map(|(n, _)| n.clone()).collect();
    let mut pending: Vec<StageNode> = Vec::new();
    for (name, p) in &pipeline.stages {
        let kind_p = p.get("kind").ok_or_else(|| {
            p.error("missing field `kind` (the stage kind, e.g. `train`, `distill`)")
        })?;
        let kind = kind_p.parse_value::<String>()?;
        registry::stage(&kind).map_err(|e| kind_p.error(e.to_string()))?;
        let seed = match p.get("seed") {
            Some(s) => Some(s.parse_value::<u64>()?),
            None => None,
        };
        let params = p.without(&RUNTIME_KEYS);
        let mut refs = Vec::new();
        collect_refs(params.value(), params.path(), &params, &mut refs)?;
        let mut deps = Vec::new();
        for (path, r) in &refs {
            if !names.contains(&r.stage) {
                let hint = did_you_mean(&r.stage, &names);
                return Err(located(
                    &params,
                    path,
                    format!(
                        "`{r}` refers to stage `{}`, which does not exist{hint}; stages: {}",
                        r.stage,
                        names.join(", ")
                    ),
                )
                .into());
            }
            if &r.stage == name {
                return Err(located(
                    &params,
                    path,
                    format!("stage `{name}` refers to its own output `{r}`"),
                )
                .into());
            }
            if !deps.contains(&r.stage) {
                deps.push(r.stage.clone());
            }
        }
        pending.push(StageNode {
            name: name.clone(),
            kind,
            params,
            seed,
            deps,
            refs,
            outputs: Vec::new(),
            roles: Vec::new(),
        });
    }
    let ordered = order(pending)?;
    // Build each stage with placeholders for its inputs: this checks every field, including
    // the types of the referenced outputs, before anything runs.
    let mut built: Vec<StageNode> = Vec::new();
    for mut node in ordered {
        let mut substituted = Vec::new();
        for (path, r) in &node.refs {
            let producer = built.iter().find(|n| n.name == r.stage).expect("ordered");
            let decl = producer
                .outputs
                .iter()
                .find(|o| o.name == r.output)
                .ok_or_else(|| {
                    let have: Vec<&str> =
                        producer.outputs.iter().map(|o| o.name.as_ref()).collect();
                    let hint = did_you_mean(&r.output, &have);
                    located(
                        &node.params,
                        path,
                        format!(
                            "stage `{}` ({}) has no output `{}`{hint}; it has: {}",
                            producer.name,
                            producer.kind,
                            r.output,
                            have.join(", ")
                        ),
                    )
                })?;
            substituted.push((r.clone(), placeholder(decl.kind, r)));
        }
        let params = substitute(&node.params, &|r| {
            substituted
                .iter()
                .find(|(s, _)| s == r)
                .map(|(_, v)| v.clone())
                .expect("every reference was declared")
        });
        let stage = instantiate(&node.kind, &params)?;
        node.outputs = stage.outputs();
        node.roles = stage.roles();
        built.push(node);
    }
    Ok(Graph { nodes: built })
}

/// Builds a stage from its params (after references were substituted).
pub fn instantiate(kind: &str, params: &Params) -> Result<Box<dyn Stage>> {
    let factory = registry::stage(kind).map_err(|e| Error::Invalid(e.to_string()))?;
    factory(params)
}

fn located(params: &Params, path: &str, message: String) -> ConfigError {
    ConfigError {
        path: path.to_string(),
        location: params.sources().locate(path),
        message,
    }
}

fn collect_refs(
    v: &Value,
    path: &str,
    params: &Params,
    out: &mut Vec<(String, Reference)>,
) -> Result<()> {
    match v {
        Value::String(s) => match parse_reference(s) {
            None => {}
            Some(Ok(r)) => out.push((path.to_string(), r)),
            Some(Err(m)) => return Err(located(params, path, m).into()),
        },
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_refs(item, &join_index(path, i), params, out)?;
            }
        }
        Value::Mapping(m) => {
            for (k, item) in m {
                let key = k.as_str().unwrap_or_default();
                collect_refs(item, &join_key(path, key), params, out)?;
            }
        }
        Value::Tagged(t) => collect_refs(&t.value, path, params, out)?,
        _ => {}
    }
    Ok(())
}

/// A copy of `params` with every `${stage.output}` string replaced by `resolve(reference)`.
pub fn substitute(params: &Params, resolve: &dyn Fn(&Reference) -> String) -> Params {
    fn walk(v: &Value, resolve: &dyn Fn(&Reference) -> String) -> Value {
        match v {
            Value::String(s) => match parse_reference(s) {
                Some(Ok(r)) => Value::String(resolve(&r)),
                _ => v.clone(),
            },
            Value::Sequence(items) => {
                Value::Sequence(items.iter().map(|i| walk(i, resolve)).collect())
            }
            Value::Mapping(m) => Value::Mapping(
                m.iter()
                    .map(|(k, i)| (k.clone(), walk(i, resolve)))
                    .collect(),
            ),
            _ => v.clone(),
        }
    }
    Params::new(
        walk(params.value(), resolve),
        params.path(),
        params.sources().clone(),
    )
}

/// Orders stages so producers come first (file order among independent stages); a cycle is
/// reported with its path.
fn order(nodes: Vec<StageNode>) -> Result<Vec<StageNode>> {
    let mut remaining: BTreeMap<usize, StageNode> = nodes.into_iter().enumerate().collect();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    while !remaining.is_empty() {
        let ready = remaining
            .iter()
            .find(|(_, n)| n.deps.iter().all(|d| done.contains(d)))
            .map(|(i, _)| *i);
        match ready {
            Some(i) => {
                let n = remaining.remove(&i).expect("present");
                done.insert(n.name.clone());
                out.push(n);
            }
            None => {
                let left: Vec<&StageNode> = remaining.values().collect();
                return Err(Error::Graph(describe_cycle(&left)));
            }
        }
    }
    Ok(out)
}

fn describe_cycle(left: &[&StageNode]) -> String {
    // Follow unmet dependencies from the first stuck stage until a stage repeats.
    let mut path: Vec<String> = vec![left[0].name.clone()];
    loop {
        let cur = left
            .iter()
            .find(|n| &n.name == path.last().expect("non-empty"))
            .expect("stuck");
        let next = cur
            .deps
            .iter()
            .find(|d| left.iter().any(|n| &&n.name == d))
            .expect("a stuck stage waits on another stuck stage")
            .clone();
        if let Some(start) = path.iter().position(|p| *p == next) {
            let mut cycle: Vec<String> = path[start..].to_vec();
            cycle.push(next);
            let first = left.iter().find(|n| n.name == cycle[0]).expect("stuck");
            let loc = first
                .refs
                .first()
                .and_then(|(p, _)| first.params.sources().locate(p))
                .map(|l| format!("{l}: "))
                .unwrap_or_default();
            return format!("{loc}stages form a cycle: {}", cycle.join(" -> "));
        }
        path.push(next);
    }
}
