//! `rolekd-run launch`: start a search's workers on a cluster (a Slurm job array, a
//! Kubernetes Indexed Job) or as local processes.
//!
//! The pipeline itself still runs once, anywhere (`rolekd-run PIPELINE`): its search stage
//! initialises the population in the store, trains with its own threads (none with
//! `workers: 0`), waits for the workers and writes the stage's outputs. Workers started
//! before it wait for the population to appear.
//!
//! GPUs. Slurm and Kubernetes: each worker requests `--gpus-per-worker N` GPUs
//! (`#SBATCH --gres=gpu:N`, `resources.limits: {nvidia.com/gpu: N}`); by default 1 when the
//! pipeline's `device:` is `cuda` or `cuda:N`, none otherwise (`cpu`, `auto`). A worker that
//! requests GPUs runs with `--device cuda`: the first GPU the scheduler gives it (Slurm and
//! the device plugin set `CUDA_VISIBLE_DEVICES`), whatever index the pipeline names. A
//! worker trains one member at a time on one GPU, so N > 1 only reserves GPUs it leaves
//! idle. Local: `--gpus 0,1,...` gives worker process `i` the GPU `ids[i % len]` round-robin,
//! through `CUDA_VISIBLE_DEVICES=<that GPU>` in its environment and `--device cuda`: the
//! process sees (and makes a CUDA context on) its own GPU only, rather than every GPU with
//! `--device cuda:i`. Ids are libtorch's, as this process sees them (`cuda:N`): with
//! `CUDA_VISIBLE_DEVICES` already set, id `i` is its `i`-th entry.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use rolekd_engine::pipeline::{DeviceSpec, Pipeline};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Subcommand, Debug)]
pub enum LaunchCmd {
    /// Print (or --out) an sbatch script: a job array of W requeueable workers.
    Slurm {
        #[command(flatten)]
        target: Target,
        /// Write the script here instead of printing it.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Seconds before the time limit Slurm sends SIGTERM (the worker saves and exits).
        #[arg(long, default_value_t = 120)]
        grace: u64,
        #[command(flatten)]
        gpus: GpusPerWorker,
    },
    /// Print (or --out) a Kubernetes Indexed Job of W workers; the store and checkpoint
    /// URLs come from a Secret (keys `store`, `checkpoints`).
    K8s {
        #[command(flatten)]
        target: Target,
        #[arg(long)]
        out: Option<PathBuf>,
        /// The container image (with rolekd-run on its PATH).
        #[arg(long, default_value = "rolekd:latest")]
        image: String,
        /// The Secret's name (default rolekd-<run>).
        #[arg(long)]
        secret: Option<String>,
        /// Seconds a pod has after SIGTERM to save and exit.
        #[arg(long, default_value_t = 120)]
        grace: u64,
        #[command(flatten)]
        gpus: GpusPerWorker,
    },
    /// Run W worker processes here and wait for them.
    Local {
        #[command(flatten)]
        target: Target,
        /// libtorch threads per worker (default: the cores divided among the workers).
        #[arg(long)]
        threads: Option<usize>,
        /// GPUs to run the workers on, round-robin (worker i on GPU ids[i % len], alone in
        /// its CUDA_VISIBLE_DEVICES): e.g. `--gpus 0,1`. Default: the pipeline's device.
        #[arg(long, value_name = "IDS", value_parser = parse_gpus)]
        gpus: Option<GpuIds>,
    },
}

/// GPUs a Slurm or Kubernetes worker requests.
#[derive(Args, Debug)]
pub struct GpusPerWorker {
    /// GPUs each worker requests (0: none). Default: 1 when the pipeline's device is
    /// `cuda` or `cuda:N`, else 0. A worker with GPUs trains on its first (`--device cuda`).
    #[arg(long, value_name = "N")]
    gpus_per_worker: Option<u32>,
}

/// `--gpus`: the GPU ids, in order (an id may repeat).
#[derive(Clone, Debug, PartialEq)]
pub struct GpuIds(Vec<usize>);

/// Parses `--gpus 0,1,...`, naming the entry that is no GPU id.
fn parse_gpus(s: &str) -> Result<GpuIds, String> {
    if s.trim().is_empty() {
        return Err("no GPU ids; expected a comma-separated list such as 0,1".into());
    }
    s.split(',')
        .enumerate()
        .map(|(i, e)| {
            let e = e.trim();
            if e.is_empty() {
                Err(format!(
                    "entry {} is empty; expected a comma-separated list of GPU ids such as 0,1",
                    i + 1
                ))
            } else {
                e.parse::<usize>().map_err(|_| {
                    format!("`{e}` is not a GPU id (a non-negative integer such as 0)")
                })
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(GpuIds)
}

/// The GPUs each Slurm/Kubernetes worker requests: the flag, else 1 for a pipeline on CUDA.
fn gpus_per_worker(flag: Option<u32>, device: DeviceSpec) -> u32 {
    flag.unwrap_or(if device.is_cuda() { 1 } else { 0 })
}

/// Which search, and how many workers.
#[derive(Args, Debug)]
pub struct Target {
    /// The pipeline YAML holding the search stage.
    pipeline: PathBuf,
    /// The search stage's name.
    #[arg(long)]
    stage: String,
    /// Workers to start.
    #[arg(long)]
    workers: usize,
    /// The run directory the pipeline uses (default runs/<pipeline name>), for a search
    /// stored in its SQLite file.
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Override a field, as `rolekd-run --set`.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    set: Vec<String>,
    /// A plugin library every worker loads (besides the pipeline's `plugins:`, which a
    /// library of the same file name replaces, as in a run); repeatable.
    #[arg(long = "plugin", value_name = "LIB")]
    plugin: Vec<PathBuf>,
}

/// The search's store URL and run name, as the stage will use them, and the pipeline's
/// device.
struct Search {
    store: String,
    run: String,
    pipeline: String,
    device: DeviceSpec,
    /// Absolute paths of the plugin libraries the workers load (`worker --plugin`).
    plugins: Vec<String>,
}

fn resolve(t: &Target) -> anyhow::Result<Search> {
    if t.workers == 0 {
        bail!("--workers must be at least 1");
    }
    let p = Pipeline::load(&t.pipeline, &t.set)?;
    let Some((_, params)) = p.stages.iter().find(|(n, _)| *n == t.stage) else {
        bail!(
            "{}: no stage `{}`; stages: {}",
            t.pipeline.display(),
            t.stage,
            p.stages
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let field = |k: &str| {
        params
            .get(k)
            .and_then(|v| v.value().as_str().map(str::to_string))
    };
    if field("kind").as_deref() != Some("search") {
        bail!("stage `{}` is not a `search` stage", t.stage);
    }
    if !p.seeds.is_empty() {
        bail!("a pipeline with `seeds:` runs one search per seed; launch workers per seed by giving each its own `run` and `store`");
    }
    let store = match field("store") {
        Some(s) => s,
        None => {
            let run_dir = t
                .run_dir
                .clone()
                .unwrap_or_else(|| Path::new("runs").join(&p.name));
            let f = run_dir.join(&t.stage).join("population.sqlite");
            std::path::absolute(&f)
                .with_context(|| f.display().to_string())?
                .to_string_lossy()
                .into_owned()
        }
    };
    Ok(Search {
        store,
        run: field("run").unwrap_or_else(|| t.stage.clone()),
        plugins: worker_plugins(&t.plugin, &p.plugins)?,
        pipeline: p.name,
        device: p.device,
    })
}

/// The libraries a run of the pipeline loads, as absolute paths: `--plugin` ones, then the
/// pipeline's `plugins:` whose file name no `--plugin` library has.
fn worker_plugins(cli: &[PathBuf], pipeline: &[PathBuf]) -> anyhow::Result<Vec<String>> {
    let overridden = |p: &PathBuf| cli.iter().any(|c| c.file_name() == p.file_name());
    cli.iter()
        .chain(pipeline.iter().filter(|p| !overridden(p)))
        .map(|p| {
            let abs = std::path::absolute(p).with_context(|| p.display().to_string())?;
            Ok(abs.to_string_lossy().into_owned())
        })
        .collect()
}

/// ` --plugin LIB` for each of the search's libraries, as shell words.
fn plugin_words(s: &Search) -> String {
    s.plugins
        .iter()
        .map(|p| format!(" --plugin {}", sh(p)))
        .collect()
}

/// `s` as one shell word.
fn sh(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@=%+,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A Kubernetes object name from `s` (lowercase alphanumerics and dashes).
fn k8s_name(s: &str) -> String {
    let mut out: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    out = out.trim_matches('-').to_string();
    out.truncate(40);
    out
}

fn slurm_script(s: &Search, t: &Target, grace: u64, gpus: u32) -> String {
    let name = k8s_name(&format!("rolekd-{}", s.run));
    let (gpu_note, gres, device) = if gpus > 0 {
        (
            format!(
                "# Each task gets {gpus} GPU(s) (--gres; Slurm sets CUDA_VISIBLE_DEVICES) and trains on the
# first (--device cuda).
"
            ),
            format!("#SBATCH --gres=gpu:{gpus}\n"),
            " --device cuda",
        )
    } else {
        Default::default()
    };
    format!(
        "#!/bin/bash
# Workers of the search `{stage}` (run `{run}`) of pipeline `{pipeline}`, written by
# `rolekd-run launch slurm`. Submit with `sbatch THIS_FILE`; start the pipeline too
# (`rolekd-run PIPELINE`, anywhere): it creates the population, waits, writes the outputs.
# A preempted or requeued task resumes: the member it trained is saved and released on
# SIGTERM, or reclaimed from the store when its lease expires. Published states go where
# the stage's `checkpoints:` says (s3://: export the AWS_* variables before sbatch), else to
# the stage directory, which the nodes then need on a shared file system.
{gpu_note}#SBATCH --job-name={name}
#SBATCH --array=0-{last}
#SBATCH --requeue
#SBATCH --signal=B:TERM@{grace}
#SBATCH --output={name}-%A_%a.out
{gres}set -euo pipefail
exec rolekd-run worker --store {store} --run {run_q} --any{device}{plugins}
",
        stage = t.stage,
        run = s.run,
        pipeline = s.pipeline,
        last = t.workers - 1,
        store = sh(&s.store),
        run_q = sh(&s.run),
        plugins = plugin_words(s),
    )
}

fn k8s_job(
    s: &Search,
    t: &Target,
    image: &str,
    secret: Option<&str>,
    grace: u64,
    gpus: u32,
) -> String {
    let name = k8s_name(&format!("rolekd-{}", s.run));
    let secret = secret.map(str::to_string).unwrap_or_else(|| name.clone());
    let (gpu_note, resources, device) = if gpus > 0 {
        (
            format!(
                "# Each pod requests {gpus} GPU(s) (nvidia.com/gpu: the NVIDIA device plugin) and trains on
# the first (--device cuda).
"
            ),
            format!(
                "          resources:
            limits:
              nvidia.com/gpu: {gpus}
"
            ),
            ", \"--device\", \"cuda\"",
        )
    } else {
        Default::default()
    };
    format!(
        "# Workers of the search `{stage}` (run `{run}`) of pipeline `{pipeline}`, written by
# `rolekd-run launch k8s`. The Secret `{secret}` holds the store URL (key `store`), where
# published states go (key `checkpoints`: an object store, or the stage directory on a
# shared volume you mount), and for S3 the AWS_* variables (all keys become variables):
#   kubectl create secret generic {secret} --from-literal=store=postgres://... \\
#     --from-literal=checkpoints=s3://bucket/rolekd \\
#     --from-literal=AWS_ACCESS_KEY_ID=... --from-literal=AWS_SECRET_ACCESS_KEY=... \\
#     --from-literal=AWS_REGION=...
# Members train in the pod's own disk; a worker that finds nothing left exits 0.
{gpu_note}apiVersion: batch/v1
kind: Job
metadata:
  name: {name}-workers
spec:
  completionMode: Indexed
  completions: {w}
  parallelism: {w}
  backoffLimit: {retries}
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: {grace}
      containers:
        - name: worker
          image: {image}
          command: [\"rolekd-run\", \"worker\", \"--run\", \"{run}\", \"--any\"{device}{plugins}]
{resources}          envFrom:
            - secretRef:
                name: {secret}
          env:
            - name: ROLEKD_STORE
              valueFrom:
                secretKeyRef:
                  name: {secret}
                  key: store
            - name: ROLEKD_CHECKPOINTS
              valueFrom:
                secretKeyRef:
                  name: {secret}
                  key: checkpoints
",
        stage = t.stage,
        run = s.run,
        pipeline = s.pipeline,
        w = t.workers,
        retries = 3 * t.workers,
        plugins = s
            .plugins
            .iter()
            .map(|p| format!(", \"--plugin\", {p:?}"))
            .collect::<String>(),
    )
}

fn emit(text: &str, out: Option<&Path>) -> anyhow::Result<()> {
    match out {
        Some(f) => {
            std::fs::write(f, text).with_context(|| f.display().to_string())?;
            println!("{}", f.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// One worker process `launch local` starts: its arguments (after the executable) and the
/// variables it gets on top of this process's environment.
#[derive(Debug, PartialEq)]
struct LocalWorker {
    args: Vec<String>,
    env: Vec<(String, String)>,
}

/// The worker processes of `launch local`: `workers` of them with `threads` libtorch threads
/// each; with `gpus`, worker `i` sees only GPU `gpus[i % len]` (`CUDA_VISIBLE_DEVICES`) and
/// trains on it (`--device cuda`). Ids are libtorch's as this process sees them:
/// `visible_env` (this process's `CUDA_VISIBLE_DEVICES`) maps id `i` to its `i`-th entry,
/// and `visible` (libtorch's device count) bounds them.
fn local_workers(
    s: &Search,
    workers: usize,
    threads: usize,
    gpus: &[usize],
    visible: usize,
    visible_env: Option<&str>,
) -> anyhow::Result<Vec<LocalWorker>> {
    let parent: Option<Vec<&str>> = visible_env
        .map(|v| v.split(',').map(str::trim).collect())
        .filter(|v: &Vec<&str>| !v.iter().all(|e| e.is_empty()));
    let mut names = Vec::new();
    for &id in gpus {
        if id >= visible {
            bail!(
                "--gpus: there is no GPU {id}: libtorch sees {visible} CUDA device(s){}",
                match visible_env {
                    Some(v) => format!(" (CUDA_VISIBLE_DEVICES={v})"),
                    None => String::new(),
                }
            );
        }
        names.push(match &parent {
            Some(p) => match p.get(id) {
                Some(name) => name.to_string(),
                None => bail!(
                    "--gpus: there is no GPU {id}: CUDA_VISIBLE_DEVICES={} lists {} GPU(s)",
                    visible_env.unwrap_or_default(),
                    p.len()
                ),
            },
            None => id.to_string(),
        });
    }
    Ok((0..workers)
        .map(|i| {
            let mut args: Vec<String> = ["worker", "--store", &s.store, "--run", &s.run, "--any"]
                .map(str::to_string)
                .to_vec();
            args.extend(["--threads".to_string(), threads.to_string()]);
            for p in &s.plugins {
                args.extend(["--plugin".to_string(), p.clone()]);
            }
            let mut env = Vec::new();
            if !names.is_empty() {
                args.extend(["--device".to_string(), "cuda".to_string()]);
                env.push((
                    "CUDA_VISIBLE_DEVICES".to_string(),
                    names[i % names.len()].clone(),
                ));
            }
            LocalWorker { args, env }
        })
        .collect())
}

fn local(
    s: &Search,
    t: &Target,
    threads: Option<usize>,
    gpus: Option<&GpuIds>,
) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = threads.unwrap_or((cores / t.workers).max(1));
    let gpus = gpus.map_or(&[][..], |g| &g.0[..]);
    let visible = if gpus.is_empty() {
        0
    } else {
        tch::Cuda::device_count().max(0) as usize
    };
    let visible_env = std::env::var("CUDA_VISIBLE_DEVICES").ok();
    let plan = local_workers(s, t.workers, threads, gpus, visible, visible_env.as_deref())?;
    let exe = std::env::current_exe().context("the rolekd-run executable")?;
    let mut children = Vec::new();
    for (i, w) in plan.iter().enumerate() {
        if let Some((_, gpu)) = w.env.iter().find(|(k, _)| k == "CUDA_VISIBLE_DEVICES") {
            eprintln!("worker {i}: CUDA_VISIBLE_DEVICES={gpu}");
        }
        let child = Command::new(&exe)
            .args(&w.args)
            .envs(w.env.iter().map(|(k, v)| (k, v)))
            .spawn()
            .context("starting a worker")?;
        children.push(child);
    }
    let mut failed = 0;
    for mut c in children {
        if !c.wait().map(|s| s.success()).unwrap_or(false) {
            failed += 1;
        }
    }
    if failed > 0 {
        bail!("{failed} of {} worker(s) failed", t.workers);
    }
    eprintln!("{} worker(s) finished run `{}`", t.workers, s.run);
    Ok(())
}

/// A note when workers would reserve GPUs they leave idle.
fn warn_gpus(gpus: u32) {
    if gpus > 1 {
        eprintln!(
            "warning: --gpus-per-worker {gpus}: a worker trains on one GPU; the other {} stay idle",
            gpus - 1
        );
    }
}

pub fn run(cmd: LaunchCmd) -> anyhow::Result<()> {
    match cmd {
        LaunchCmd::Slurm {
            target,
            out,
            grace,
            gpus,
        } => {
            let s = resolve(&target)?;
            let gpus = gpus_per_worker(gpus.gpus_per_worker, s.device);
            warn_gpus(gpus);
            emit(&slurm_script(&s, &target, grace, gpus), out.as_deref())
        }
        LaunchCmd::K8s {
            target,
            out,
            image,
            secret,
            grace,
            gpus,
        } => {
            let s = resolve(&target)?;
            let gpus = gpus_per_worker(gpus.gpus_per_worker, s.device);
            warn_gpus(gpus);
            emit(
                &k8s_job(&s, &target, &image, secret.as_deref(), grace, gpus),
                out.as_deref(),
            )
        }
        LaunchCmd::Local {
            target,
            threads,
            gpus,
        } => {
            let s = resolve(&target)?;
            local(&s, &target, threads, gpus.as_ref())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{gpus_per_worker, k8s_name, local_workers, parse_gpus, sh, GpuIds, Search};
    use rolekd_engine::pipeline::DeviceSpec;

    fn search() -> Search {
        Search {
            store: "/runs/p/search/population.sqlite".into(),
            run: "demo".into(),
            pipeline: "p".into(),
            device: DeviceSpec::Cpu,
            plugins: Vec::new(),
        }
    }

    fn args(extra: &[&str]) -> Vec<String> {
        let mut a = vec![
            "worker",
            "--store",
            "/runs/p/search/population.sqlite",
            "--run",
            "demo",
            "--any",
            "--threads",
            "2",
        ];
        a.extend(extra);
        a.into_iter().map(str::to_string).collect()
    }

    fn gpu_env(ws: &[super::LocalWorker]) -> Vec<Vec<(String, String)>> {
        ws.iter().map(|w| w.env.clone()).collect()
    }

    #[test]
    fn local_workers_without_gpus_are_unchanged() {
        let ws = local_workers(&search(), 3, 2, &[], 0, None).unwrap();
        assert_eq!(ws.len(), 3);
        for w in &ws {
            assert_eq!(w.args, args(&[]));
            assert!(w.env.is_empty());
        }
    }

    #[test]
    fn local_workers_get_gpus_round_robin_each_alone_in_its_process() {
        let ws = local_workers(&search(), 5, 2, &[0, 1], 2, None).unwrap();
        for w in &ws {
            assert_eq!(w.args, args(&["--device", "cuda"]));
        }
        let cvd = |g: &str| vec![("CUDA_VISIBLE_DEVICES".to_string(), g.to_string())];
        assert_eq!(
            gpu_env(&ws),
            vec![cvd("0"), cvd("1"), cvd("0"), cvd("1"), cvd("0")]
        );
        // Ids as this process sees them: with CUDA_VISIBLE_DEVICES=4,6 set, 1 is GPU 6.
        let ws = local_workers(&search(), 2, 2, &[1, 0], 2, Some("4,6")).unwrap();
        assert_eq!(gpu_env(&ws), vec![cvd("6"), cvd("4")]);
    }

    #[test]
    fn local_workers_refuse_a_gpu_that_is_not_there() {
        let e = local_workers(&search(), 2, 2, &[0, 2], 2, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no GPU 2") && e.contains("sees 2 CUDA device(s)"),
            "{e}"
        );
        let e = local_workers(&search(), 1, 1, &[0], 0, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no GPU 0") && e.contains("sees 0"), "{e}");
        let e = local_workers(&search(), 1, 1, &[1], 2, Some("3"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("CUDA_VISIBLE_DEVICES=3 lists 1 GPU(s)"), "{e}");
    }

    #[test]
    fn gpu_lists_parse_and_bad_entries_are_named() {
        assert_eq!(parse_gpus("0"), Ok(GpuIds(vec![0])));
        assert_eq!(parse_gpus("0,1, 3"), Ok(GpuIds(vec![0, 1, 3])));
        let e = parse_gpus("0,,1").unwrap_err();
        assert!(e.contains("entry 2 is empty"), "{e}");
        let e = parse_gpus("0,1,").unwrap_err();
        assert!(e.contains("entry 3 is empty"), "{e}");
        let e = parse_gpus("0,gpu1").unwrap_err();
        assert!(e.contains("`gpu1` is not a GPU id"), "{e}");
        let e = parse_gpus("-1").unwrap_err();
        assert!(e.contains("`-1` is not a GPU id"), "{e}");
        assert!(parse_gpus("").unwrap_err().contains("no GPU ids"));
    }

    #[test]
    fn cluster_workers_request_a_gpu_when_the_pipeline_runs_on_cuda() {
        assert_eq!(gpus_per_worker(None, DeviceSpec::Cpu), 0);
        assert_eq!(gpus_per_worker(None, DeviceSpec::Auto), 0);
        assert_eq!(gpus_per_worker(None, DeviceSpec::Cuda(None)), 1);
        assert_eq!(gpus_per_worker(None, DeviceSpec::Cuda(Some(3))), 1);
        assert_eq!(gpus_per_worker(Some(0), DeviceSpec::Cuda(None)), 0);
        assert_eq!(gpus_per_worker(Some(2), DeviceSpec::Cpu), 2);
    }

    #[test]
    fn quoting_and_names() {
        assert_eq!(sh("postgres://u@h:5/db"), "postgres://u@h:5/db");
        assert_eq!(sh("a b'c"), "'a b'\\''c'");
        assert_eq!(k8s_name("rolekd-Teacher_Search"), "rolekd-teacher-search");
    }
}
