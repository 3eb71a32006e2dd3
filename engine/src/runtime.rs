//! Running a pipeline: build and check the graph, then run each stage in dependency order
//! inside a stable run directory, reusing stages whose config and inputs are unchanged and
//! resuming interrupted ones.

use crate::graph::{self, Graph, StageNode};
use crate::pipeline::Pipeline;
use crate::run_metrics::write_metrics_csv;
use crate::rundir::RunLock;
use rolekd_core::artifact::Reference;
use rolekd_core::config::Params;
use rolekd_core::error::{Error, Result};
use rolekd_core::files::{read_json, write_atomic, write_json};
use rolekd_core::plugin::data::Dataset;
use rolekd_core::plugin::stage::{StageCtx, StageResult};
use rolekd_core::precision::Precision;
use rolekd_core::progress::Progress;
use rolekd_core::registry;
use rolekd_core::rng::Seed;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

/// How to run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Defaults to `runs/<pipeline name>`.
    pub run_dir: Option<PathBuf>,
    /// Stages to redo even if cached (their dependents follow).
    pub force: Vec<String>,
    /// Run only these stages and those they read from (empty: every stage).
    pub only: Vec<String>,
    /// Start the whole run directory over.
    pub fresh: bool,
    /// Print the plan and stop.
    pub dry_run: bool,
    /// `--set a.b=v` overrides.
    pub overrides: Vec<String>,
    pub quiet: bool,
    /// `--plugin` libraries, loaded with the pipeline's `plugins:` before the graph is
    /// built (a `plugins:` entry with the same file name is skipped).
    pub plugins: Vec<PathBuf>,
    /// Recorded in the run's `provenance.json`.
    pub invoker: crate::provenance::Invoker,
    /// Writes `summary.md` from a run's report (the report crate's table: presentation
    /// lives there); `None` writes none.
    pub summary: Option<SummaryFn>,
}

/// Formats a run's `summary.md` from the pipeline's name and the run's report.
pub type SummaryFn = fn(&str, &RunReport) -> String;

/// What happened to a stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StageStatus {
    Ran,
    Cached,
    Planned,
}

/// One stage of a finished (or planned) run.
#[derive(Clone, Debug)]
pub struct StageReport {
    pub name: String,
    pub kind: String,
    pub status: StageStatus,
    pub result: Option<StageResult>,
}

/// The outcome of a run.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub run_dir: PathBuf,
    /// The stages of a one-seed run; for a `seeds:` run, those of the first seed.
    pub stages: Vec<StageReport>,
    /// A `seeds:` run: each seed's own report.
    pub seeds: Vec<(u64, RunReport)>,
}

impl RunReport {
    fn over_seeds(run_dir: PathBuf, seeds: Vec<(u64, RunReport)>) -> RunReport {
        RunReport {
            run_dir,
            stages: seeds
                .first()
                .map(|(_, r)| r.stages.clone())
                .unwrap_or_default(),
            seeds,
        }
    }
}

/// `stage.json` / `result.json` in a stage directory.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StageRecord {
    hash: String,
    kind: String,
    /// Changes every time the stage really runs: dependents hash it, so a forced rerun
    /// of a producer invalidates its consumers.
    #[serde(default)]
    run_id: String,
    #[serde(default)]
    result: Option<StageResult>,
}

/// Loads, checks and runs the pipeline in `file`.
pub fn run(file: &Path, opts: &RunOptions, interrupted: &AtomicBool) -> Result<RunReport> {
    let pipeline = Pipeline::load(file, &opts.overrides)?;
    crate::dynamic::load_for_run(&pipeline, &opts.plugins)?;
    let mut graph = graph::build(&pipeline)?;
    if !opts.only.is_empty() {
        graph = graph.restrict(&opts.only)?;
    }
    for f in &opts.force {
        if graph.node(f).is_none() {
            let names: Vec<&str> = graph.nodes.iter().map(|n| n.name.as_str()).collect();
            return Err(Error::Invalid(format!(
                "--force {f}: no such stage; stages: {}",
                names.join(", ")
            )));
        }
    }
    let run_dir = opts
        .run_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&pipeline.name));
    let device = pipeline.device.resolve()?;
    let progress = Progress::new(opts.quiet);
    if opts.dry_run {
        if pipeline.seeds.is_empty() {
            return Ok(plan(&pipeline, &graph, &run_dir, device, opts));
        }
        let mut per_seed = Vec::new();
        for (seed, p) in seed_runs(&pipeline) {
            per_seed.push((
                seed,
                plan(&p, &graph, &seed_dir(&run_dir, seed), device, opts),
            ));
        }
        return Ok(RunReport::over_seeds(run_dir, per_seed));
    }
    let _lock = RunLock::acquire(&run_dir)?;
    if opts.fresh {
        clear_run_dir(&run_dir)?;
    }
    write_resolved(&pipeline, &run_dir)?;
    crate::provenance::record(
        &run_dir,
        crate::provenance::Invocation::now(&opts.invoker, device),
    )?;
    progress.log(&format!(
        "rolekd: pipeline `{}` ({} stages{}) on {device:?}, run directory {}",
        pipeline.name,
        graph.nodes.len(),
        if pipeline.seeds.is_empty() {
            String::new()
        } else {
            format!(", seeds {:?}", pipeline.seeds)
        },
        run_dir.display()
    ));
    if pipeline.seeds.is_empty() {
        return run_graph(
            &pipeline,
            &graph,
            &run_dir,
            device,
            opts,
            &progress,
            interrupted,
        );
    }
    let mut per_seed = Vec::new();
    for (seed, p) in seed_runs(&pipeline) {
        progress.log(&format!("rolekd: seed {seed}"));
        let dir = seed_dir(&run_dir, seed);
        let report = run_graph(&p, &graph, &dir, device, opts, &progress, interrupted)?;
        per_seed.push((seed, report));
    }
    let report = RunReport::over_seeds(run_dir.clone(), per_seed);
    table_all_metrics(&run_dir, pipeline.seed, &progress);
    write_summary(opts, &pipeline.name, &report)?;
    Ok(report)
}

/// Rewrites the run's `metrics.csv`; a failure there costs the table, never the run.
fn table_all_metrics(run_dir: &Path, seed: u64, progress: &Progress) {
    if let Err(e) = write_metrics_csv(run_dir, seed) {
        progress.log(&format!("warning: metrics.csv not written: {e}"));
    }
}

/// Where seed `s` of a `seeds:` pipeline runs.
pub fn seed_dir(run_dir: &Path, seed: u64) -> PathBuf {
    run_dir.join(format!("seed-{seed}"))
}

/// The pipeline once per entry of `seeds:`.
fn seed_runs(pipeline: &Pipeline) -> Vec<(u64, Pipeline)> {
    pipeline
        .seeds
        .iter()
        .map(|&s| {
            let mut p = pipeline.clone();
            p.seed = s;
            (s, p)
        })
        .collect()
}

/// Runs every stage of `graph` in `run_dir` (one seed).
fn run_graph(
    pipeline: &Pipeline,
    graph: &Graph,
    run_dir: &Path,
    device: tch::Device,
    opts: &RunOptions,
    progress: &Progress,
    interrupted: &AtomicBool,
) -> Result<RunReport> {
    let run_dir = run_dir.to_path_buf();
    std::fs::create_dir_all(&run_dir).map_err(|e| Error::io(&run_dir, e))?;
    let data_cell: RefCell<Option<Arc<Dataset>>> = RefCell::new(None);
    let load_data = || load_data_once(pipeline, progress, &data_cell);
    let seed_run = SeedRun {
        pipeline,
        run_dir: &run_dir,
        device,
        progress,
        interrupted,
        data: &load_data,
    };
    let mut records: BTreeMap<String, StageRecord> = BTreeMap::new();
    let mut reports = Vec::new();
    for node in &graph.nodes {
        let forced = opts.force.contains(&node.name);
        let (record, report) = seed_run.stage(node, &records, forced)?;
        let ran = report.status == StageStatus::Ran;
        reports.push(report);
        records.insert(node.name.clone(), record);
        if ran {
            table_all_metrics(&run_dir, pipeline.seed, progress);
        }
    }
    let report = RunReport {
        run_dir: run_dir.clone(),
        stages: reports,
        seeds: Vec::new(),
    };
    write_summary(opts, &pipeline.name, &report)?;
    Ok(report)
}

/// The pipeline's dataset, built on first use and then shared by every stage of the seed.
fn load_data_once(
    pipeline: &Pipeline,
    progress: &Progress,
    cell: &RefCell<Option<Arc<Dataset>>>,
) -> Result<Arc<Dataset>> {
    if let Some(d) = cell.borrow().as_ref() {
        return Ok(d.clone());
    }
    let factory = registry::of_entry(&pipeline.data, registry::dataset)?;
    let t0 = Instant::now();
    // A search worker (rolekd-search's worker) rebuilds it the same way, from the
    // `data_params` and `data_seed` of the stage's context.
    let d = Arc::new(factory(&pipeline.data, Seed(pipeline.seed).child("data"))?);
    progress.log(&format!(
        "data: {} ({} train, {} val, {} test) loaded in {:.1}s",
        d.name,
        d.train.len(),
        d.val.len(),
        d.test.len(),
        t0.elapsed().as_secs_f64()
    ));
    *cell.borrow_mut() = Some(d.clone());
    Ok(d)
}

/// What the stages of one seed's run share.
struct SeedRun<'a> {
    pipeline: &'a Pipeline,
    run_dir: &'a Path,
    device: tch::Device,
    progress: &'a Progress,
    interrupted: &'a AtomicBool,
    data: &'a dyn Fn() -> Result<Arc<Dataset>>,
}

impl SeedRun<'_> {
    /// One stage, after the stages in `records`: its earlier result when its hash is
    /// unchanged (and it is not `forced`), else a fresh run in a clean directory.
    fn stage(
        &self,
        node: &StageNode,
        records: &BTreeMap<String, StageRecord>,
        forced: bool,
    ) -> Result<(StageRecord, StageReport)> {
        let dir = self.run_dir.join(&node.name);
        let hash = stage_hash(self.pipeline, node, records, self.device);
        if forced && dir.exists() {
            remove_dir(&dir)?;
        }
        if let Some(done) = self.reuse(node, &dir, &hash) {
            return Ok(done);
        }
        let mut record = self.start(node, &dir, &hash)?;
        let result = self.execute(node, &dir, records)?;
        record.run_id = format!(
            "{hash}-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        record.result = Some(result.clone());
        write_json(&dir.join("result.json"), &record)?;
        let report = StageReport {
            name: node.name.clone(),
            kind: node.kind.clone(),
            status: StageStatus::Ran,
            result: Some(result),
        };
        Ok((record, report))
    }

    /// The stage's finished result from an earlier run with the same hash.
    fn reuse(
        &self,
        node: &StageNode,
        dir: &Path,
        hash: &str,
    ) -> Option<(StageRecord, StageReport)> {
        let existing: Option<StageRecord> = read_json(&dir.join("result.json")).unwrap_or(None);
        let rec = existing.filter(|r| r.hash == hash && r.result.is_some())?;
        self.progress.log(&format!(
            "{}: unchanged, reusing {}",
            node.name,
            dir.display()
        ));
        let report = StageReport {
            name: node.name.clone(),
            kind: node.kind.clone(),
            status: StageStatus::Cached,
            result: rec.result.clone(),
        };
        Some((rec, report))
    }

    /// Readies the stage directory (resumable work of the same hash is kept) and records
    /// the stage as started.
    fn start(&self, node: &StageNode, dir: &Path, hash: &str) -> Result<StageRecord> {
        let started: Option<StageRecord> = read_json(&dir.join("stage.json")).unwrap_or(None);
        if started.as_ref().is_some_and(|s| s.hash != hash) {
            self.progress.log(&format!(
                "{}: config or inputs changed, redoing it",
                node.name
            ));
            remove_dir(dir)?;
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let _ = std::fs::remove_file(dir.join("result.json"));
        let record = StageRecord {
            hash: hash.to_string(),
            kind: node.kind.clone(),
            run_id: String::new(),
            result: None,
        };
        write_json(&dir.join("stage.json"), &record)?;
        Ok(record)
    }

    /// Builds the stage from its params (references resolved to its inputs' paths) and
    /// runs it; its result must hold every output it declared.
    fn execute(
        &self,
        node: &StageNode,
        dir: &Path,
        records: &BTreeMap<String, StageRecord>,
    ) -> Result<StageResult> {
        let params = self.resolve(node, dir, records)?;
        let stage = graph::instantiate(&node.kind, &params)?;
        self.progress
            .log(&format!("{}: running ({})", node.name, node.kind));
        let seed = Seed(node.seed.unwrap_or(self.pipeline.seed));
        let ctx = StageCtx {
            name: &node.name,
            dir: dir.to_path_buf(),
            seed,
            device: self.device,
            device_pinned: self.pipeline.device.pinned(),
            precision: self.pipeline.precision,
            progress: self.progress,
            interrupted: self.interrupted,
            data: self.data,
            data_params: &self.pipeline.data,
            data_seed: Seed(self.pipeline.seed).child("data"),
        };
        let t0 = Instant::now();
        let mut result = stage.run(&ctx)?;
        result
            .summary
            .entry("stage_seconds".into())
            .or_insert(t0.elapsed().as_secs_f64());
        for out in stage.outputs() {
            if !result.outputs.contains_key(out.name.as_ref()) {
                return Err(Error::Invalid(format!(
                    "stage `{}` ({}) finished without its declared output `{}`",
                    node.name, node.kind, out.name
                )));
            }
        }
        Ok(result)
    }

    /// The stage's params with every reference replaced by the absolute path of the
    /// output it names, written to the stage's `config.yaml`.
    fn resolve(
        &self,
        node: &StageNode,
        dir: &Path,
        records: &BTreeMap<String, StageRecord>,
    ) -> Result<Params> {
        let params = graph::substitute(&node.params, &|r: &Reference| {
            let producer = &records[&r.stage];
            let rel = producer
                .result
                .as_ref()
                .and_then(|res| res.outputs.get(&r.output))
                .cloned()
                .unwrap_or_default();
            absolute(&self.run_dir.join(&r.stage).join(rel))
        });
        write_atomic(
            &dir.join("config.yaml"),
            serde_yaml_ng::to_string(params.value())
                .unwrap_or_default()
                .as_bytes(),
        )?;
        Ok(params)
    }
}

fn absolute(p: &Path) -> String {
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

/// The hash that decides whether a stage's earlier result can be reused: its kind and
/// params, the seed, the data, the device type, the pipeline's precision (when not the
/// default, so run directories from before it existed keep their hashes), and the run ids
/// of its inputs.
fn stage_hash(
    pipeline: &Pipeline,
    node: &StageNode,
    records: &BTreeMap<String, StageRecord>,
    device: tch::Device,
) -> String {
    let inputs: BTreeMap<&String, &str> = node
        .deps
        .iter()
        .map(|d| {
            (
                d,
                records
                    .get(d)
                    .map(|r| r.run_id.as_str())
                    .unwrap_or("pending"),
            )
        })
        .collect();
    let mut doc = serde_json::json!({
        "kind": node.kind,
        "params": serde_json::to_value(node.params.value()).unwrap_or_default(),
        "seed": node.seed.unwrap_or(pipeline.seed),
        "data": serde_json::to_value(pipeline.data.value()).unwrap_or_default(),
        "device": if device.is_cuda() { "cuda" } else { "cpu" },
        "inputs": inputs,
        "format": 1,
    });
    if pipeline.precision != Precision::Fp32 {
        doc["precision"] = pipeline.precision.name().into();
    }
    hex::encode(Sha256::digest(doc.to_string().as_bytes()))[..16].to_string()
}

fn plan(
    pipeline: &Pipeline,
    graph: &Graph,
    run_dir: &Path,
    device: tch::Device,
    opts: &RunOptions,
) -> RunReport {
    println!(
        "pipeline `{}` -> {} ({device:?})",
        pipeline.name,
        run_dir.display()
    );
    let mut records: BTreeMap<String, StageRecord> = BTreeMap::new();
    let mut stages = Vec::new();
    for (i, node) in graph.nodes.iter().enumerate() {
        let hash = stage_hash(pipeline, node, &records, device);
        let existing: Option<StageRecord> =
            read_json(&run_dir.join(&node.name).join("result.json")).unwrap_or(None);
        let cached = !opts.force.contains(&node.name)
            && existing
                .as_ref()
                .is_some_and(|r| r.hash == hash && r.result.is_some());
        let status = if cached { "cached" } else { "will run" };
        let deps = if node.deps.is_empty() {
            String::new()
        } else {
            format!(" <- {}", node.deps.join(", "))
        };
        println!("  {}. {} ({}){deps}: {status}", i + 1, node.name, node.kind);
        for role in &node.roles {
            println!("       {role}");
        }
        if let Some(r) = existing.filter(|_| cached) {
            records.insert(node.name.clone(), r);
        }
        stages.push(StageReport {
            name: node.name.clone(),
            kind: node.kind.clone(),
            status: if cached {
                StageStatus::Cached
            } else {
                StageStatus::Planned
            },
            result: None,
        });
    }
    RunReport {
        run_dir: run_dir.to_path_buf(),
        stages,
        seeds: Vec::new(),
    }
}

fn write_resolved(pipeline: &Pipeline, run_dir: &Path) -> Result<()> {
    let text = serde_yaml_ng::to_string(pipeline.root.value())
        .map_err(|e| Error::Invalid(format!("cannot write the resolved pipeline: {e}")))?;
    let header = format!("# resolved from {}\n", pipeline.file.display());
    write_atomic(
        &run_dir.join("pipeline.yaml"),
        format!("{header}{text}").as_bytes(),
    )
}

fn clear_run_dir(dir: &Path) -> Result<()> {
    for e in std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .flatten()
    {
        if e.file_name() == ".lock" {
            continue;
        }
        let p = e.path();
        if p.is_dir() {
            remove_dir(&p)?;
        } else {
            std::fs::remove_file(&p).map_err(|err| Error::io(&p, err))?;
        }
    }
    Ok(())
}

fn remove_dir(dir: &Path) -> Result<()> {
    std::fs::remove_dir_all(dir).map_err(|e| Error::io(dir, e))
}

/// Writes `report.run_dir/summary.md` with the options' formatter, when they give one.
fn write_summary(opts: &RunOptions, name: &str, report: &RunReport) -> Result<()> {
    match opts.summary {
        Some(format) => write_atomic(
            &report.run_dir.join("summary.md"),
            format(name, report).as_bytes(),
        ),
        None => Ok(()),
    }
}
