//! The `search` stage kind: a population search for one role's augmentation schedule.
//!
//! ```yaml
//! teacher_search:
//!   kind: search
//!   role: teacher                 # teacher: trials train alone; student: distilled (trial.teacher)
//!   train_size: 4000              # the search re-splits the pipeline's training split
//!   val_size: 46000               #   (seeded): trials train on 4000, the reward is val acc
//!   workers: 2                    # members trained at once (threads), the rest time-sliced
//!   # store: postgres://rolekd@db:5432/rolekd   # shared store for `rolekd-run worker`s
//!   # run: teacher-search-1       # the population's name in a shared store
//!   # checkpoints: s3://bucket/rolekd   # published states (default: the stage directory)
//!   sync: true                    # decide at a point once every member reported it
//!   strategy: {type: pba, population: 16, interval: 3, quantile: 0.25}
//!   trial:                        # a `train` (teacher) or `distill` (student) mapping
//!     model: {type: resnet-cifar, depth: 20}
//!     epochs: 200
//! ```
//!
//! Trials train with `pba-schedule` pointed at their own lineage (the trial's `augment`
//! may give the finishing options: pad, crop_offsets, flip, cutout). libtorch's intra-op
//! threads are process-wide: while the stage runs they are split between the workers
//! (`max(1, threads / workers)`, threads being libtorch's default, one per core or
//! `OMP_NUM_THREADS`), and restored afterwards. On a machine with several GPUs and
//! `device: cuda` (or `auto`), worker thread `k` trains on `cuda:(k % GPUs)`; `cuda:N` keeps
//! them all on GPU N ([`worker_device`]).
//!
//! Scale-out: when it initialises the population the stage records a
//! [`crate::worker_spec::WorkerSpec`] in the store, so `rolekd-run worker --store URL --run NAME`
//! processes (other machines with `store: postgres://...`) train members alongside its own
//! threads; `workers: 0` leaves all the training to them and only waits and reports.
//! Their published states go to `checkpoints:` (an object store: `file:///shared/path` or
//! `s3://bucket/prefix`), or by default to the stage directory, which workers elsewhere
//! then need on a shared file system.

use crate::checkpoints::{is_checkpoint_url, CheckpointStore};
use crate::population::work::{run_workers, Trials};
use crate::population::{Population, SearchConfig};
use crate::report::write_outputs;
use crate::space::{self, check_genes, SearchSpace};
use crate::store::{self, transact, PopulationStore};
use crate::trials::{buffer_names, trial_dir, OnDevice, TrainerTrials};
use crate::worker_spec::{device_name, WorkerSpec, SPEC_KEY};
use rand::seq::SliceRandom;
use rolekd_core::artifact::ArtifactKind;
use rolekd_core::config::{Key, Params};
use rolekd_core::plugin::data::Dataset;
use rolekd_core::plugin::search::{SearchPlan, SearchStrategy};
use rolekd_core::plugin::stage::{OutputDecl, Stage, StageCtx, StageResult};
use rolekd_core::precision::Precision;
use rolekd_core::progress::Progress;
use rolekd_core::rng::Seed;
use rolekd_core::{register_plugin, registry, Error, Result};
use rolekd_engine::trainer::{build_spec_probing, TrainSpec};
use serde::Deserialize;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tch::Device;

/// Every key of a `search` stage, in the order an "unknown field" error lists them: the
/// fields of [`SearchParams`] and the plugin entries, read through `Params` so their own
/// errors are located inside them.
const KEYS: &[Key] = &[
    Key::Field("role"),
    // One member's training: a `train` mapping (role teacher) or a `distill` mapping with
    // `teacher: ${teacher.checkpoint}` (role student).
    Key::Required("trial"),
    // `{type: pba, population: 16, interval: 3, quantile: 0.25, copy_optimizer: true}`
    // (default `{type: pba}`), `{type: random, population: 8}`, `{type: grid, values: ..}`.
    Key::Entry("strategy"),
    Key::Field("space"),
    Key::Field("train_size"),
    Key::Field("val_size"),
    Key::Field("reward_on"),
    Key::Field("workers"),
    Key::Field("store"),
    Key::Field("run"),
    Key::Field("checkpoints"),
    Key::Field("sync"),
    Key::Field("slack"),
    Key::Field("lease_seconds"),
    Key::Field("keep_states"),
];

/// The typed fields of a `search` stage (see [`KEYS`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchParams {
    /// `teacher` (trials are `train` mappings: the model trains alone), `student`
    /// (`distill` mappings: the student learns from `trial.teacher`), or, for a trial with
    /// `roles:`, the name of the role whose schedule is searched. The reward is the first
    /// trained role's validation accuracy.
    role: String,
    /// The policy space (`pba`: PBA's 60 genes).
    #[serde(default = "default_space")]
    space: String,
    /// Training images of the search's split (default: all the validation images leave).
    #[serde(default)]
    train_size: Option<usize>,
    /// Validation images of the search's split, the reward (default: a fifth).
    #[serde(default)]
    val_size: Option<usize>,
    /// `split` (default): the search re-splits the pipeline's training split into its own
    /// training and reward images. `validation`: trials train on the pipeline's training
    /// split and the reward is accuracy on the pipeline's validation split (`train_size` /
    /// `val_size` then take the first images of each): trials see the final training's
    /// data, and the reward set can be as large as the validation split.
    #[serde(default)]
    reward_on: RewardOn,
    /// Members trained at once, on threads; more members than workers are time-sliced.
    /// 0: none here, `rolekd-run worker` processes train them all (the stage waits).
    #[serde(default = "default_workers")]
    workers: usize,
    /// The population store's URL: `postgres://user@host:port/db` for workers on other
    /// machines (default: `population.sqlite` in the stage directory).
    #[serde(default)]
    store: Option<String>,
    /// The population's name in the store (default: the stage's name); searches sharing a
    /// database need different names.
    #[serde(default)]
    run: Option<String>,
    /// Where members' published states go, for workers that share no file system with
    /// the stage: `file:///PATH` or `s3://BUCKET/PREFIX` (the search's `run` is appended).
    /// Default: the stage directory.
    #[serde(default)]
    checkpoints: Option<String>,
    /// Decide at a perturbation point only once every member has reported it (the result
    /// is then independent of worker count and timing); `false`: PBT's asynchronous mode.
    #[serde(default = "yes")]
    sync: bool,
    /// `sync: false` only: rank a member among those within this many epochs of it
    /// (default: the interval).
    #[serde(default)]
    slack: Option<usize>,
    /// Seconds a worker's claim on a member lasts without renewal (renewed while training).
    #[serde(default = "default_lease")]
    lease_seconds: u64,
    /// Keep every member's training state when the search is done (default: deleted; the
    /// members' final checkpoints stay).
    #[serde(default)]
    keep_states: bool,
}

/// Where a search's reward images come from.
#[derive(Deserialize, Clone, Copy, Default, PartialEq, Eq, Debug)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum RewardOn {
    #[default]
    Split,
    Validation,
}

fn default_space() -> String {
    "pba".into()
}
fn default_workers() -> usize {
    1
}
fn yes() -> bool {
    true
}
fn default_lease() -> u64 {
    600
}

/// A configured search stage (also rebuilt by a [`crate::worker`] from the store).
pub(crate) struct SearchStage {
    params: Params,
    role: String,
    /// The searched role's index in the trial's roles.
    searched: usize,
    spec: TrainSpec,
    augment: Option<Params>,
    pub(crate) strategy: Box<dyn SearchStrategy>,
    strategy_name: String,
    plan: SearchPlan,
    pub(crate) space: Box<dyn SearchSpace>,
    train_size: Option<usize>,
    val_size: Option<usize>,
    reward_on: RewardOn,
    workers: usize,
    store: Option<String>,
    run: Option<String>,
    pub(crate) checkpoints: Option<String>,
    sync: bool,
    slack: usize,
    lease: Duration,
    keep_states: bool,
}

fn build(params: &Params) -> Result<Box<dyn Stage>> {
    Ok(Box::new(parse(params)?))
}

/// Whether a `roles:` trial has a frozen role (then it is read as a `distill` mapping).
fn has_frozen_role(trial: &Params) -> bool {
    let Some(Ok(roles)) = trial.get("roles").map(|r| r.entries()) else {
        return false;
    };
    roles.iter().any(|(_, r)| {
        r.get("checkpoint").is_some()
            || r.get("trained").and_then(|t| t.parse_value::<bool>().ok()) == Some(false)
    })
}

/// The searched role's index in the trial's roles and its augmentation entry (the
/// finishing options each member's schedule is combined with). Without `roles:` it is the
/// trained role; with them, the role `role` names, which must see a view of its own.
fn searched_role(
    params: &Params,
    trial: &Params,
    spec: &TrainSpec,
    role: &str,
) -> Result<(usize, Option<Params>)> {
    let Some(roles) = trial.get("roles") else {
        let augment = trial.get("augment").filter(|a| !a.value().is_null());
        let trained = spec.roles.iter().position(|r| r.trainable).unwrap_or(0);
        return Ok((trained, augment));
    };
    let names: Vec<String> = spec.roles.iter().map(|r| r.name.clone()).collect();
    let Some(i) = names.iter().position(|n| n == role) else {
        let hint = rolekd_core::config::did_you_mean(role, &names);
        return Err(params
            .child_error(
                "role",
                format!(
                    "`{role}` is not a role of the trial; roles: {}{hint}",
                    names.join(", ")
                ),
            )
            .into());
    };
    let r = &spec.roles[i];
    if !r.trainable && r.view != rolekd_engine::trainer::View::Own {
        return Err(params
            .child_error(
                "role",
                format!("role `{role}` shares another role's view; give it `view: own` to search its schedule"),
            )
            .into());
    }
    let augment = roles
        .get(role)
        .and_then(|r| r.get("augment"))
        .filter(|a| !a.value().is_null());
    Ok((i, augment))
}

/// Parses and checks a `search` stage's params.
pub(crate) fn parse(params: &Params) -> Result<SearchStage> {
    let p: SearchParams = params.parse_with_entries(KEYS)?;
    let trial = params.get("trial").expect("parsed");
    let student = trial_kind(params, &trial, &p.role)?;
    // The trial's policy entry gets each member's schedule later: not built here.
    let spec = build_spec_probing(&trial, student, false)?;
    check_trial(&trial, &spec)?;
    let space = space::by_name(&p.space).ok_or_else(|| {
        params.child_error(
            "space",
            format!(
                "unknown policy space `{}`; known: {}",
                p.space,
                space::SPACES.join(", ")
            ),
        )
    })?;
    let (searched, augment) = searched_role(params, &trial, &spec, &p.role)?;
    space.check_augment(augment.as_ref())?;
    let (strategy_name, strategy, plan) = strategy_of(params, space.as_ref())?;
    check_options(params, &p)?;
    check_stores(params, &p)?;
    Ok(SearchStage {
        params: params.clone(),
        role: p.role,
        searched,
        spec,
        augment,
        strategy_name,
        slack: p.slack.unwrap_or(plan.interval),
        plan,
        strategy,
        space,
        train_size: p.train_size,
        val_size: p.val_size,
        reward_on: p.reward_on,
        workers: p.workers,
        store: p.store,
        run: p.run,
        checkpoints: p.checkpoints,
        sync: p.sync,
        lease: Duration::from_secs(p.lease_seconds),
        keep_states: p.keep_states,
    })
}

/// Whether the trial is read as a `distill` mapping (a student learning from a frozen
/// role) rather than a `train` one: from `role`, or from the roles of a `roles:` trial.
fn trial_kind(params: &Params, trial: &Params, role: &str) -> Result<bool> {
    if trial.value().as_mapping().is_none() {
        return Err(trial
            .error("expected a `train` or `distill` mapping (model, epochs, ...)")
            .into());
    }
    let with_roles = trial.get("roles").is_some();
    let student = match role {
        _ if with_roles => has_frozen_role(trial),
        "student" => true,
        "teacher" => false,
        other => {
            return Err(params
                .child_error(
                    "role",
                    format!(
                        "unknown variant `{other}`, expected `teacher` or `student` (or, for a trial with `roles:`, one of its roles){}",
                        rolekd_core::config::did_you_mean(other, &["teacher", "student"])
                    ),
                )
                .into())
        }
    };
    if !student && !with_roles {
        if let Some(f) = ["teacher", "teacher_view", "teacher_augment"]
            .iter()
            .find(|f| trial.get(f).is_some())
        {
            return Err(trial
                .child_error(f, "a `role: teacher` search trains its trials alone; a teacher belongs to `role: student`")
                .into());
        }
    }
    Ok(student)
}

/// What a trial may not set: the search evaluates every epoch and keeps its own split.
fn check_trial(trial: &Params, spec: &TrainSpec) -> Result<()> {
    if trial.get("eval_every").is_some() {
        return Err(trial
            .child_error(
                "eval_every",
                "search trials are evaluated every epoch (each epoch's reward is recorded)",
            )
            .into());
    }
    if spec.train_on_val_too {
        return Err(trial
            .child_error(
                "train_on",
                "search trials train on the search's training split only",
            )
            .into());
    }
    Ok(())
}

/// The `strategy:` entry (default `{type: pba}`) built, with its name and plan; every
/// member's initial policy is drawn now, so a bad grid is reported before training.
fn strategy_of(
    params: &Params,
    space: &dyn SearchSpace,
) -> Result<(String, Box<dyn SearchStrategy>, SearchPlan)> {
    let strategy_p = params
        .get("strategy")
        .filter(|s| !s.value().is_null())
        .unwrap_or_else(|| Params::from_yaml("{type: pba}").expect("static"));
    let strategy_name = strategy_p.type_name()?;
    let factory = registry::of_entry(&strategy_p, registry::search_strategy)?;
    let strategy = factory(&strategy_p)?;
    let plan = strategy.plan();
    if plan.population == 0 || plan.interval == 0 {
        return Err(strategy_p
            .error("a strategy needs at least one member and an interval of at least 1")
            .into());
    }
    for k in 0..plan.population {
        let genes = strategy.initial(k, space, &mut Seed(0).index(k as u64).rng())?;
        check_genes(space, &genes)
            .map_err(|e| strategy_p.error(format!("initial policy of member {k}: {e}")))?;
    }
    Ok((strategy_name, strategy, plan))
}

/// `slack`, `lease_seconds` and the split's sizes.
fn check_options(params: &Params, p: &SearchParams) -> Result<()> {
    if p.sync && p.slack.is_some() {
        return Err(params
            .child_error("slack", "only used with `sync: false`")
            .into());
    }
    params.at_least("lease_seconds", p.lease_seconds as i64, 3)?;
    for (key, v) in [("train_size", p.train_size), ("val_size", p.val_size)] {
        if let Some(n) = v {
            params.at_least(key, n as i64, 1)?;
        }
    }
    Ok(())
}

/// The population and checkpoint stores' URLs, and that this build can open them.
fn check_stores(params: &Params, p: &SearchParams) -> Result<()> {
    if let Some(url) = &p.store {
        if !store::is_store_url(url) {
            return Err(params
                .child_error(
                    "store",
                    format!("`{url}` is not a population store; expected postgres://user@host:port/db, sqlite://PATH or a file path"),
                )
                .into());
        }
    }
    if let Some(url) = &p.checkpoints {
        if !is_checkpoint_url(url) {
            return Err(params
                .child_error(
                    "checkpoints",
                    format!("`{url}` is not a checkpoint store; expected file:///PATH or s3://BUCKET/PREFIX (leave it out for the stage directory)"),
                )
                .into());
        }
    }
    #[cfg(not(feature = "cluster"))]
    {
        let cluster = |url: &Option<String>, schemes: &[&str]| {
            url.as_deref()
                .is_some_and(|u| schemes.iter().any(|s| u.starts_with(s)))
        };
        for (key, url, schemes) in [
            ("store", &p.store, &["postgres://", "postgresql://"][..]),
            ("checkpoints", &p.checkpoints, &["s3://", "memory://"][..]),
        ] {
            if cluster(url, schemes) {
                let what = format!("`{}`", store::redact(url.as_deref().unwrap_or_default()));
                return Err(params
                    .child_error(key, crate::without_cluster(&what))
                    .into());
            }
        }
    }
    Ok(())
}

impl SearchStage {
    /// The search's checkpoint store: `checkpoints:` (or `url`, a worker's override), else
    /// the stage directory `dir`. A plain path names a stage directory (mounted elsewhere).
    pub(crate) fn checkpoint_store_at(
        &self,
        url: Option<&str>,
        dir: &Path,
        run: &str,
    ) -> Result<CheckpointStore> {
        match url.or(self.checkpoints.as_deref()) {
            Some(u) if is_checkpoint_url(u) => CheckpointStore::open(u, run),
            Some(path) => Ok(CheckpointStore::in_dir(Path::new(path))),
            None => Ok(CheckpointStore::in_dir(dir)),
        }
    }

    fn checkpoint_store(&self, dir: &Path, run: &str) -> Result<CheckpointStore> {
        self.checkpoint_store_at(None, dir, run)
    }

    /// How the population runs, with the search's stream `seed`.
    pub(crate) fn search_config(&self, seed: Seed) -> SearchConfig {
        SearchConfig {
            epochs: self.spec.epochs,
            plan: self.plan.clone(),
            sync: self.sync,
            slack: self.slack,
            lease: self.lease,
            seed,
            strategy_name: self.strategy_name.clone(),
        }
    }

    /// The trainer of members living in `dir` (the stage directory), on `device` at the
    /// trial's precision or else the pipeline's.
    pub(crate) fn trials<'a>(
        &'a self,
        dir: &Path,
        seed: Seed,
        (device, precision): (Device, Precision),
        data: Arc<Dataset>,
        progress: &'a Progress,
        label: &str,
    ) -> Result<TrainerTrials<'a>> {
        let buffers = if self.plan.copy_buffers {
            Default::default()
        } else {
            buffer_names(&self.spec, &data)?
        };
        let mut spec = self.spec.clone();
        spec.precision.get_or_insert(precision);
        Ok(TrainerTrials {
            spec,
            searched: self.searched,
            augment: self.augment.clone(),
            space: self.space.as_ref(),
            dir: dir.to_path_buf(),
            seed,
            device,
            data,
            progress,
            label: label.to_string(),
            buffers,
            checkpoints: CheckpointStore::in_dir(dir),
        })
    }
}

/// The device in-process search worker thread `worker` trains on, given the pipeline's
/// resolved device `base`, whether the pipeline named the GPU (`cuda:N`: `pinned`) and how
/// many CUDA devices libtorch sees (`visible`). CPU stays CPU, and so does one GPU; with
/// several GPUs and `cuda` (or `auto` on a machine with GPUs), thread `k` trains on
/// `cuda:(k % visible)`; an explicit `cuda:N`, `cuda:0` included, keeps every thread on
/// GPU N (to spread over some GPUs only, set `CUDA_VISIBLE_DEVICES`).
pub fn worker_device(base: Device, pinned: bool, worker: usize, visible: usize) -> Device {
    match base {
        Device::Cuda(_) if !pinned && visible > 1 => Device::Cuda(worker % visible),
        _ => base,
    }
}

/// libtorch's intra-op threads split between workers while alive; restored on drop.
struct IntraOpThreads(i32);

impl IntraOpThreads {
    fn split(workers: usize) -> IntraOpThreads {
        let before = tch::get_num_threads();
        let share = (before.max(1) as usize / workers.max(1)).max(1);
        tch::set_num_threads(share as i32);
        IntraOpThreads(before)
    }
}

impl Drop for IntraOpThreads {
    fn drop(&mut self) {
        tch::set_num_threads(self.0);
    }
}

impl SearchStage {
    /// The search's data: by default its own split of the pipeline's training split (a
    /// seeded permutation, the first `train_size` images to train on and the next
    /// `val_size` to validate on); with `reward_on: validation` the pipeline's own splits.
    pub(crate) fn split(&self, data: &Dataset, seed: Seed) -> Result<Dataset> {
        if self.reward_on == RewardOn::Validation {
            return self.pipeline_splits(data);
        }
        let n = data.train.len();
        let val = self.val_size.unwrap_or_else(|| (n / 5).max(1));
        let train = self.train_size.unwrap_or(n.saturating_sub(val));
        if train == 0 || train + val > n {
            let key = if self.train_size.is_some() {
                "train_size"
            } else {
                "val_size"
            };
            return Err(self.size_error(
                key,
                format!(
                    "train_size {train} + val_size {val} need {} images, the pipeline's training split has {n}",
                    train + val
                ),
            ));
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut seed.rng());
        Ok(self.search_data(
            data,
            data.train.subset(&order[..train]),
            data.train.subset(&order[train..train + val]),
        ))
    }

    /// `reward_on: validation`: the first `train_size` training and `val_size` validation
    /// images of the pipeline (all of each by default).
    fn pipeline_splits(&self, data: &Dataset) -> Result<Dataset> {
        let (n_train, n_val) = (data.train.len(), data.val.len());
        if n_val == 0 {
            return Err(self.size_error(
                "reward_on",
                "`validation` needs a validation split: set the data's `val_size`".into(),
            ));
        }
        let train = self.train_size.unwrap_or(n_train);
        let val = self.val_size.unwrap_or(n_val);
        for (key, want, have, split) in [
            ("train_size", train, n_train, "training"),
            ("val_size", val, n_val, "validation"),
        ] {
            if want > have {
                return Err(self.size_error(
                    key,
                    format!("{want} images, the pipeline's {split} split has {have}"),
                ));
            }
        }
        let first = |n: usize| (0..n).collect::<Vec<usize>>();
        Ok(self.search_data(
            data,
            data.train.subset(&first(train)),
            data.val.subset(&first(val)),
        ))
    }

    fn size_error(&self, key: &str, message: String) -> Error {
        self.params.child_error(key, message).into()
    }

    fn search_data(
        &self,
        data: &Dataset,
        train: rolekd_core::plugin::data::DataSplit,
        val: rolekd_core::plugin::data::DataSplit,
    ) -> Dataset {
        Dataset {
            name: format!("{} (search split)", data.name),
            train: Arc::new(train),
            val: Arc::new(val),
            test: data.test.clone(),
            classes: data.classes.clone(),
            mean: data.mean.clone(),
            std: data.std.clone(),
        }
    }
}

impl Stage for SearchStage {
    /// The roles of its trials (the searched role's augmentation is what the search sets).
    fn roles(&self) -> Vec<rolekd_core::role::RoleRecord> {
        self.spec
            .roles
            .iter()
            .map(rolekd_engine::trainer::RoleSpec::record)
            .collect()
    }

    fn outputs(&self) -> Vec<OutputDecl> {
        vec![
            OutputDecl {
                name: "schedule".into(),
                kind: ArtifactKind::Schedule,
            },
            OutputDecl {
                name: "checkpoint".into(),
                kind: ArtifactKind::Checkpoint,
            },
            OutputDecl {
                name: "rewards".into(),
                kind: ArtifactKind::Report,
            },
            OutputDecl {
                name: "schedule_plot".into(),
                kind: ArtifactKind::Report,
            },
            OutputDecl {
                name: "results".into(),
                kind: ArtifactKind::Report,
            },
            OutputDecl {
                name: "pba_log".into(),
                kind: ArtifactKind::Report,
            },
        ]
    }

    fn run(&self, ctx: &StageCtx<'_>) -> Result<StageResult> {
        let data = (ctx.data)()?;
        let search_seed = ctx.seed.child("search");
        let sdata = Arc::new(self.split(&data, search_seed.child("split"))?);
        self.announce(ctx, &sdata);
        let run = self.run.clone().unwrap_or_else(|| ctx.name.to_string());
        let url = self.store.clone().unwrap_or_else(|| {
            ctx.dir
                .join("population.sqlite")
                .to_string_lossy()
                .into_owned()
        });
        let store = store::open(&url, &run)?;
        let dir = std::path::absolute(&ctx.dir).map_err(|e| Error::io(&ctx.dir, e))?;
        let marker = ctx.dir.join("population.json");
        if self.store.is_some() && !marker.exists() {
            clear_stale_population(store.as_ref(), ctx.name, &run, &dir)?;
        }
        let mut pop = Population::new(
            store.as_ref(),
            self.strategy.as_ref(),
            self.space.as_ref(),
            self.search_config(search_seed),
        );
        let checkpoints = self.start_population(&mut pop, ctx, &dir, &run)?;
        let spec = self.worker_spec(ctx, dir)?;
        transact(store.as_ref(), |tx| {
            tx.set_meta(SPEC_KEY, &serde_json::to_string(&spec).expect("serialises"))
        })?;
        rolekd_core::files::write_json(
            &marker,
            &serde_json::json!({"store": store::redact(&url), "run": run}),
        )?;
        let mut trials = self.trials(
            &ctx.dir,
            search_seed,
            (ctx.device, ctx.precision),
            sdata.clone(),
            ctx.progress,
            ctx.name,
        )?;
        trials.checkpoints = checkpoints;
        if self.workers == 0 {
            ctx.progress.log(&format!(
                "{}: waiting for workers: rolekd-run worker --store '{}' --run '{run}'",
                ctx.name,
                store::redact(&url)
            ));
            pop.wait_finished(ctx.interrupted, Duration::from_secs(1))?;
        } else {
            self.train_here(&pop, &trials, ctx)?;
        }
        self.finish(&pop, &trials, ctx)
    }
}

/// The parts of [`SearchStage`]'s run, in the order it calls them.
impl SearchStage {
    fn announce(&self, ctx: &StageCtx<'_>, sdata: &Dataset) {
        ctx.progress.log(&format!(
            "{}: {} search, {} members x {} epochs (interval {}), {} {}, {} train / {} val images, {} worker(s)",
            ctx.name,
            self.role,
            self.plan.population,
            self.spec.epochs,
            self.plan.interval,
            self.strategy_name,
            if self.sync { "sync" } else { "async" },
            sdata.train.len(),
            sdata.val.len(),
            self.workers
        ));
    }

    /// Resumes the population in its store or starts a new one; the checkpoint store its
    /// members publish to.
    fn start_population(
        &self,
        pop: &mut Population<'_>,
        ctx: &StageCtx<'_>,
        dir: &Path,
        run: &str,
    ) -> Result<CheckpointStore> {
        // Only this process trains a search in its own SQLite file with its own threads:
        // its leases from an earlier session are dead. Otherwise workers elsewhere may live.
        let exclusive = self.store.is_none() && self.workers > 0;
        let checkpoints = self.checkpoint_store(dir, run)?;
        match pop.init(exclusive)? {
            Some(r) => ctx.progress.log(&format!(
                "{}: resuming the search: {} results recorded, {} of {} members done, {} lease(s) reclaimed",
                ctx.name, r.results, r.members_done, self.plan.population, r.leases_dropped
            )),
            // A new population: states an earlier one left under this run's name are stale.
            None if !checkpoints.is_stage_dir() => checkpoints.delete("checkpoints")?,
            None => {}
        }
        Ok(checkpoints)
    }

    /// What a worker process needs to join this search (recorded in the store).
    fn worker_spec(&self, ctx: &StageCtx<'_>, dir: std::path::PathBuf) -> Result<WorkerSpec> {
        Ok(WorkerSpec {
            stage: ctx.name.to_string(),
            params: serde_yaml_ng::to_string(self.params.value())
                .map_err(|e| Error::Invalid(format!("cannot record the stage's params: {e}")))?,
            data: serde_yaml_ng::to_string(ctx.data_params.value())
                .map_err(|e| Error::Invalid(format!("cannot record the data entry: {e}")))?,
            data_seed: ctx.data_seed.0,
            seed: ctx.seed.0,
            dir,
            device: device_name(ctx.device),
            precision: ctx.precision,
        })
    }

    /// Trains the members on this process's worker threads, spread over the visible GPUs
    /// unless the pipeline pinned one.
    fn train_here(
        &self,
        pop: &Population<'_>,
        trials: &TrainerTrials<'_>,
        ctx: &StageCtx<'_>,
    ) -> Result<()> {
        let visible = if ctx.device.is_cuda() {
            tch::Cuda::device_count().max(0) as usize
        } else {
            0
        };
        let per_worker: Vec<OnDevice<'_, '_>> = (0..self.workers)
            .map(|k| OnDevice {
                trials,
                device: worker_device(ctx.device, ctx.device_pinned, k, visible),
            })
            .collect();
        if per_worker.iter().any(|t| t.device != ctx.device) {
            ctx.progress.log(&format!(
                "{}: worker threads on {}",
                ctx.name,
                per_worker
                    .iter()
                    .map(|t| device_name(t.device))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let per_worker: Vec<&dyn Trials> = per_worker.iter().map(|t| t as &dyn Trials).collect();
        let _threads = IntraOpThreads::split(self.workers);
        run_workers(pop, &per_worker, ctx.interrupted)
    }

    /// The finished search's outputs (the best member's final checkpoint fetched when it
    /// finished elsewhere); members' states deleted unless `keep_states`.
    fn finish(
        &self,
        pop: &Population<'_>,
        trials: &TrainerTrials<'_>,
        ctx: &StageCtx<'_>,
    ) -> Result<StageResult> {
        let snap = pop.snapshot()?;
        // The best member may have finished on another machine: its final checkpoint comes
        // from the checkpoint store.
        if !trials.checkpoints.is_stage_dir() {
            if let Some(best) = snap.best(self.spec.epochs) {
                if let Some(c) = pop.resume_point(best, self.spec.epochs)? {
                    trials.fetch_final(best, &c)?;
                }
            }
        }
        let written = write_outputs(&ctx.dir, &snap, self.space.as_ref(), self.spec.epochs)?;
        if !self.keep_states {
            remove_states(&ctx.dir, self.plan.population)?;
            if !trials.checkpoints.is_stage_dir() {
                trials.checkpoints.delete("checkpoints")?;
            }
        }
        ctx.progress.log(&format!(
            "{}: best member {} (val acc {:.4}), {} exploits, {:.0}s",
            ctx.name,
            written.best,
            written.summary["best_val_acc"],
            snap.events.len(),
            snap.wall_seconds
        ));
        Ok(StageResult {
            outputs: written.outputs,
            summary: written.summary,
            warnings: failed_members(&snap),
            roles: self.roles(),
        })
    }
}

/// A shared store outlives the stage directory: a population there that this directory
/// never saw (the stage redone with --force, or a fresh run directory) is stale, its
/// checkpoints gone with the old directory. One made by another stage directory is
/// somebody else's search under the same name: refused, not cleared.
fn clear_stale_population(
    store: &dyn PopulationStore,
    stage: &str,
    run: &str,
    dir: &Path,
) -> Result<()> {
    transact(store, |tx| {
        let owner = tx
            .meta(SPEC_KEY)?
            .and_then(|t| serde_json::from_str::<WorkerSpec>(&t).ok())
            .map(|s| s.dir);
        match owner {
            Some(other) if other != dir => Err(Error::Invalid(format!(
                "{}: the store already holds a search named `{run}`, made by {}; give this one another `run`",
                stage,
                other.display()
            ))),
            _ => tx.clear(),
        }
    })
}

/// One line per member that diverged or stalled (recorded with an infinite loss), for the
/// stage's result.
fn failed_members(snap: &crate::population::Snapshot) -> Vec<String> {
    let mut first: std::collections::BTreeMap<usize, usize> = Default::default();
    for r in snap.results.iter().filter(|r| r.loss.is_infinite()) {
        let e = first.entry(r.member).or_insert(r.epoch);
        *e = (*e).min(r.epoch);
    }
    first
        .into_iter()
        .map(|(m, e)| {
            format!("member {m} diverged or stalled in epoch {e} (ranked last; see the log)")
        })
        .collect()
}

/// Deletes the published checkpoints and the members' per-epoch states (their final
/// checkpoints stay).
fn remove_states(dir: &std::path::Path, population: usize) -> Result<()> {
    let mut dirs = vec![dir.join("checkpoints")];
    dirs.extend((0..population).map(|k| trial_dir(dir, k).join("state")));
    for d in dirs {
        match std::fs::remove_dir_all(&d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&d, e)),
        }
    }
    Ok(())
}

register_plugin!(
    Stage,
    "search",
    "Population search (PBA) for one role's augmentation schedule: role teacher|student, trial, strategy, workers, sync",
    build
);

#[cfg(test)]
mod tests {
    use super::worker_device;
    use tch::Device;

    #[test]
    fn worker_devices_stay_on_the_cpu() {
        for visible in [0, 1, 4] {
            for (k, pinned) in [(0, false), (3, false), (5, true)] {
                assert_eq!(worker_device(Device::Cpu, pinned, k, visible), Device::Cpu);
            }
        }
    }

    #[test]
    fn worker_devices_with_one_gpu_are_that_gpu() {
        for k in 0..4 {
            assert_eq!(worker_device(Device::Cuda(0), false, k, 1), Device::Cuda(0));
        }
    }

    #[test]
    fn worker_devices_spread_round_robin_over_several_gpus() {
        let got: Vec<Device> = (0..7)
            .map(|k| worker_device(Device::Cuda(0), false, k, 3))
            .collect();
        let want = [0, 1, 2, 0, 1, 2, 0].map(Device::Cuda);
        assert_eq!(got, want);
    }

    #[test]
    fn an_explicit_gpu_pins_every_worker() {
        for base in [Device::Cuda(0), Device::Cuda(2)] {
            for k in 0..5 {
                assert_eq!(worker_device(base, true, k, 4), base, "worker {k}");
            }
        }
    }
}
