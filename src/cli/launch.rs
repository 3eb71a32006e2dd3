//! `rolekd-run launch`: start a search's workers on a cluster (a Slurm job array, a
//! Kubernetes Indexed Job) or as local processes.
//!
//! The pipeline itself still runs once, anywhere (`rolekd-run PIPELINE`): its search stage
//! initialises the population in the store, trains with its own threads (none with
//! `workers: 0`), waits for the workers and writes the stage's outputs. Workers started
//! before it wait for the population to appear.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use rolekd_core::pipeline::Pipeline;
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
    },
    /// Run W worker processes here and wait for them.
    Local {
        #[command(flatten)]
        target: Target,
        /// libtorch threads per worker (default: the cores divided among the workers).
        #[arg(long)]
        threads: Option<usize>,
    },
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
}

/// The search's store URL and run name, as the stage will use them.
struct Search {
    store: String,
    run: String,
    pipeline: String,
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
        pipeline: p.name,
    })
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

fn slurm_script(s: &Search, t: &Target, grace: u64) -> String {
    let name = k8s_name(&format!("rolekd-{}", s.run));
    format!(
        "#!/bin/bash
# Workers of the search `{stage}` (run `{run}`) of pipeline `{pipeline}`, written by
# `rolekd-run launch slurm`. Submit with `sbatch THIS_FILE`; start the pipeline too
# (`rolekd-run PIPELINE`, anywhere): it creates the population, waits, writes the outputs.
# A preempted or requeued task resumes: the member it trained is saved and released on
# SIGTERM, or reclaimed from the store when its lease expires. Published states go where
# the stage's `checkpoints:` says (s3://: export the AWS_* variables before sbatch), else to
# the stage directory, which the nodes then need on a shared file system.
#SBATCH --job-name={name}
#SBATCH --array=0-{last}
#SBATCH --requeue
#SBATCH --signal=B:TERM@{grace}
#SBATCH --output={name}-%A_%a.out
set -euo pipefail
exec rolekd-run worker --store {store} --run {run_q} --any
",
        stage = t.stage,
        run = s.run,
        pipeline = s.pipeline,
        last = t.workers - 1,
        store = sh(&s.store),
        run_q = sh(&s.run),
    )
}

fn k8s_job(s: &Search, t: &Target, image: &str, secret: Option<&str>, grace: u64) -> String {
    let name = k8s_name(&format!("rolekd-{}", s.run));
    let secret = secret.map(str::to_string).unwrap_or_else(|| name.clone());
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
apiVersion: batch/v1
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
          command: [\"rolekd-run\", \"worker\", \"--run\", \"{run}\", \"--any\"]
          envFrom:
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

fn local(s: &Search, t: &Target, threads: Option<usize>) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = threads.unwrap_or((cores / t.workers).max(1));
    let exe = std::env::current_exe().context("the rolekd-run executable")?;
    let mut children = Vec::new();
    for _ in 0..t.workers {
        let child = Command::new(&exe)
            .args(["worker", "--store", &s.store, "--run", &s.run, "--any"])
            .args(["--threads", &threads.to_string()])
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

pub fn run(cmd: LaunchCmd) -> anyhow::Result<()> {
    match cmd {
        LaunchCmd::Slurm { target, out, grace } => {
            let s = resolve(&target)?;
            emit(&slurm_script(&s, &target, grace), out.as_deref())
        }
        LaunchCmd::K8s {
            target,
            out,
            image,
            secret,
            grace,
        } => {
            let s = resolve(&target)?;
            emit(
                &k8s_job(&s, &target, &image, secret.as_deref(), grace),
                out.as_deref(),
            )
        }
        LaunchCmd::Local { target, threads } => {
            let s = resolve(&target)?;
            local(&s, &target, threads)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{k8s_name, sh};

    #[test]
    fn quoting_and_names() {
        assert_eq!(sh("postgres://u@h:5/db"), "postgres://u@h:5/db");
        assert_eq!(sh("a b'c"), "'a b'\\''c'");
        assert_eq!(k8s_name("rolekd-Teacher_Search"), "rolekd-teacher-search");
    }
}
