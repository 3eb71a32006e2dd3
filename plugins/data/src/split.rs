//! What every dataset shares: its parameters and the seeded split of its files into
//! train / validation / test, plus the per-channel normalisation.

use rand::seq::SliceRandom;
use rolekd_core::config::{ConfigError, Params};
use rolekd_core::plugin::data::{DataSplit, Dataset};
use rolekd_core::rng::Seed;
use rolekd_core::Result;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Parameters of every built-in dataset.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitParams {
    /// Directory holding the dataset's files (each dataset has its own default).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Training images to keep, drawn (seeded) from what the validation hold-out leaves;
    /// default: all of it.
    #[serde(default)]
    pub train_size: Option<usize>,
    /// Images held out of the training file for validation, drawn with the seed; default 0.
    #[serde(default)]
    pub val_size: usize,
    /// Test images to keep: a fixed subset of the test file, the same for every seed so
    /// runs stay comparable; default: the whole test file.
    #[serde(default)]
    pub test_size: Option<usize>,
    /// Per-channel normalisation on the pixel/255 scale; default: the mean and standard
    /// deviation of the training split.
    #[serde(default)]
    pub normalize: Option<Normalize>,
}

/// Per-channel mean and standard deviation, on the pixel/255 scale.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Normalize {
    /// One mean per channel.
    pub mean: Vec<f32>,
    /// One standard deviation per channel, each > 0.
    pub std: Vec<f32>,
}

impl SplitParams {
    /// The directory to read: `path` if given, else `$env_var` if set, else `default`.
    pub fn dir(&self, env_var: &str, default: &str) -> PathBuf {
        self.path
            .clone()
            .or_else(|| std::env::var_os(env_var).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(default))
    }

    /// `path`, for datasets without a default; a located "required" error saying `what`
    /// it should be otherwise.
    pub fn required_path(&self, params: &Params, what: &str) -> Result<&Path> {
        match &self.path {
            Some(p) => Ok(p),
            None => Err(params
                .child_error("path", format!("required: {what}"))
                .into()),
        }
    }
}

/// The keys of [`SplitParams`], which every dataset accepts besides its own.
pub const SPLIT_KEYS: [&str; 5] = ["path", "train_size", "val_size", "test_size", "normalize"];

/// Parses the params of a dataset with keys of its own: the [`SPLIT_KEYS`] into
/// [`SplitParams`], every other key into `T` (which should deny unknown fields; its
/// "unknown field" message then also lists the shared keys).
pub fn parse_with<T: DeserializeOwned>(params: &Params) -> Result<(SplitParams, T)> {
    let own: Vec<String> = params
        .value()
        .as_mapping()
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str())
                .filter(|k| !SPLIT_KEYS.contains(k))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let own: Vec<&str> = own.iter().map(String::as_str).collect();
    let own_params: T = params
        .without(&SPLIT_KEYS)
        .parse()
        .map_err(|e: ConfigError| {
            if e.message.starts_with("unknown field") {
                let shared: Vec<String> = SPLIT_KEYS.iter().map(|k| format!("`{k}`")).collect();
                ConfigError {
                    message: format!("{}, or one of {}", e.message, shared.join(", ")),
                    ..e
                }
            } else {
                e
            }
        })?;
    let sp: SplitParams = params.without(&own).parse()?;
    Ok((sp, own_params))
}

/// The YAML path of the `path` field, for hints ("set data.path").
pub fn path_key(params: &Params) -> String {
    if params.path().is_empty() {
        "path".to_string()
    } else {
        format!("{}.path", params.path())
    }
}

/// Splits the loaded files into a [`Dataset`].
///
/// The training file is permuted with `seed.child("split")`: the first `val_size` images
/// are the validation split, the next `train_size` (default: the rest) the training split,
/// so the validation split does not move when `train_size` changes. The test subset is
/// drawn from a fixed stream. Each split keeps its images in file order.
pub fn assemble(
    name: &str,
    train_file: DataSplit,
    test_file: DataSplit,
    classes: Vec<String>,
    sp: &SplitParams,
    params: &Params,
    seed: Seed,
) -> Result<Dataset> {
    let n_train_file = train_file.len();
    if sp.val_size >= n_train_file {
        return Err(params
            .child_error(
                "val_size",
                format!(
                    "val_size {} leaves no training images: the training file has {n_train_file}",
                    sp.val_size
                ),
            )
            .into());
    }
    let rest = n_train_file - sp.val_size;
    let train_size = match sp.train_size {
        Some(0) => return Err(params.at_least("train_size", 0, 1).unwrap_err().into()),
        Some(n) if n > rest => {
            return Err(params
                .child_error(
                    "train_size",
                    format!(
                        "train_size {n} is more than the {rest} images left after holding out val_size {} of the {n_train_file} in the training file",
                        sp.val_size
                    ),
                )
                .into())
        }
        Some(n) => n,
        None => rest,
    };
    let n_test_file = test_file.len();
    let test_size = match sp.test_size {
        Some(0) => return Err(params.child_error("test_size", "must be at least 1").into()),
        Some(n) if n > n_test_file => {
            return Err(params
                .child_error(
                    "test_size",
                    format!("test_size {n} is more than the {n_test_file} images in the test file"),
                )
                .into())
        }
        Some(n) => n,
        None => n_test_file,
    };

    let mut perm: Vec<usize> = (0..n_train_file).collect();
    perm.shuffle(&mut seed.child("split").rng());
    let mut val_idx = perm[..sp.val_size].to_vec();
    let mut train_idx = perm[sp.val_size..sp.val_size + train_size].to_vec();
    val_idx.sort_unstable();
    train_idx.sort_unstable();

    let (train, val) = if train_idx.len() == n_train_file {
        let val = train_file.subset(&[]);
        (train_file, val)
    } else {
        (train_file.subset(&train_idx), train_file.subset(&val_idx))
    };
    let test = if test_size == n_test_file {
        test_file
    } else {
        let mut idx: Vec<usize> = (0..n_test_file).collect();
        idx.shuffle(&mut Seed(0).child("test_subset").rng());
        idx.truncate(test_size);
        idx.sort_unstable();
        test_file.subset(&idx)
    };

    let (mean, std) = match &sp.normalize {
        Some(norm) => {
            check_normalize(norm, train.channels, params)?;
            (norm.mean.clone(), norm.std.clone())
        }
        None => channel_stats(&train),
    };
    Ok(Dataset {
        name: name.to_string(),
        train: Arc::new(train),
        val: Arc::new(val),
        test: Arc::new(test),
        classes,
        mean,
        std,
    })
}

/// [`assemble`] for data that comes without a test file: `test_size` (required) images of
/// the training file are held out as the test file first, drawn from a fixed stream so the
/// test split is the same for every seed; the seeded validation split and `train_size`
/// then apply to the rest. `what` names the missing test file in the error.
pub fn assemble_held_out(
    name: &str,
    file: DataSplit,
    what: &str,
    classes: Vec<String>,
    sp: &SplitParams,
    params: &Params,
    seed: Seed,
) -> Result<Dataset> {
    let n = file.len();
    let test_size = match sp.test_size {
        None => {
            return Err(params
                .child_error(
                    "test_size",
                    format!("required: there is no {what}, so test_size images of the {n} training images are held out as the test split"),
                )
                .into())
        }
        Some(0) => return Err(params.child_error("test_size", "must be at least 1").into()),
        Some(t) if t >= n => {
            return Err(params
                .child_error(
                    "test_size",
                    format!("test_size {t} leaves no training images: there is no {what}, and the training images number {n}"),
                )
                .into())
        }
        Some(t) => t,
    };
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut Seed(0).child("test_holdout").rng());
    let (test_idx, train_idx) = idx.split_at_mut(test_size);
    test_idx.sort_unstable();
    train_idx.sort_unstable();
    let test = file.subset(test_idx);
    let train = file.subset(train_idx);
    let rest = SplitParams {
        test_size: None,
        ..sp.clone()
    };
    assemble(name, train, test, classes, &rest, params, seed)
}

fn check_normalize(norm: &Normalize, channels: usize, params: &Params) -> Result<()> {
    let at = |field: &str, msg: String| params.child_error(&format!("normalize.{field}"), msg);
    for (field, values) in [("mean", &norm.mean), ("std", &norm.std)] {
        if values.len() != channels {
            return Err(at(
                field,
                format!(
                    "expected {channels} value(s), one per channel, found {}",
                    values.len()
                ),
            )
            .into());
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(at(field, "values must be finite".into()).into());
        }
    }
    if norm.std.iter().any(|&s| s <= 0.0) {
        return Err(at("std", "standard deviations must be > 0".into()).into());
    }
    Ok(())
}

/// Per-channel mean and (population) standard deviation of a split, on the pixel/255
/// scale; exact (integer sums). An empty split gives mean 0, std 1.
pub fn channel_stats(split: &DataSplit) -> (Vec<f32>, Vec<f32>) {
    let c = split.channels;
    let mut sum = vec![0u64; c];
    let mut sq = vec![0u64; c];
    for px in split.images.chunks_exact(c) {
        for (k, &v) in px.iter().enumerate() {
            sum[k] += v as u64;
            sq[k] += (v as u64) * (v as u64);
        }
    }
    let n = (split.images.len() / c.max(1)) as f64;
    if n == 0.0 {
        return (vec![0.0; c], vec![1.0; c]);
    }
    let mut mean = Vec::with_capacity(c);
    let mut std = Vec::with_capacity(c);
    for k in 0..c {
        let m = sum[k] as f64 / n;
        let var = (sq[k] as f64 / n - m * m).max(0.0);
        mean.push((m / 255.0) as f32);
        let s = (var.sqrt() / 255.0) as f32;
        std.push(if s > 0.0 { s } else { 1.0 });
    }
    (mean, std)
}
