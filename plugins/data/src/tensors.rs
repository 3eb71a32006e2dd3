//! `tensors`: images and labels stored as safetensors: a uint8 tensor `images` of shape
//! [N, H, W, C] (HWC, as the datasets hold them) and an int64 tensor `labels` of shape
//! [N]. Other tensors in the file are ignored.
//!
//! `path` is either a folder holding `train.safetensors` and optionally
//! `test.safetensors`, or one `.safetensors` file. Without a test file, `test_size`
//! images of the training file are held out as the test split, the same for every seed
//! ([`crate::split::assemble_held_out`]). Files may be gzipped.
//!
//! Classes: `classes` (names, label `i` is the `i`-th) or `num_classes`; by default one
//! more than the largest label in the files, named `"0"`, `"1"`, …. Every label must lie in
//! `0..num_classes`.

use crate::files::read_maybe_gz;
use crate::split::{assemble, assemble_held_out, parse_with, SplitParams};
use rolekd_core::config::Params;
use rolekd_core::plugin::data::{DataSplit, Dataset};
use rolekd_core::rng::Seed;
use rolekd_core::{Error, Result};
use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;
use std::path::Path;

/// The params of `tensors` besides the shared split params.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorsParams {
    /// Class names, by label.
    #[serde(default)]
    pub classes: Option<Vec<String>>,
    /// The number of classes, when names are not given.
    #[serde(default)]
    pub num_classes: Option<usize>,
}

/// Reads the `images` and `labels` of one safetensors file, checking dtypes and shapes.
pub fn read_tensors(path: &Path, hint: &str) -> Result<DataSplit> {
    let bytes = read_maybe_gz(path, hint)?;
    let bad = |msg: String| Error::Data(format!("{}: {msg}", path.display()));
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
    let tensor = |name: &str, dtype: Dtype, what: &str| {
        let t = st.tensor(name).map_err(|_| {
            let mut names: Vec<&String> = st.names();
            names.sort();
            bad(format!("no tensor `{name}`; the file holds {names:?}"))
        })?;
        if t.dtype() != dtype {
            return Err(bad(format!(
                "`{name}` is {:?}, expected {dtype:?} ({what})",
                t.dtype()
            )));
        }
        Ok(t)
    };
    let images = tensor("images", Dtype::U8, "uint8 pixels")?;
    let labels = tensor("labels", Dtype::I64, "int64 class ids")?;
    let shape = images.shape().to_vec();
    let [n, h, w, c] = shape[..] else {
        return Err(bad(format!(
            "`images` has shape {shape:?}, expected [N, H, W, C]"
        )));
    };
    if n == 0 || h == 0 || w == 0 || c == 0 {
        return Err(bad(format!(
            "`images` has shape {shape:?}: no images, or images without pixels"
        )));
    }
    if labels.shape() != [n] {
        return Err(bad(format!(
            "`labels` has shape {:?}, expected [{n}] (one per image)",
            labels.shape()
        )));
    }
    Ok(DataSplit {
        images: images.data().to_vec(),
        labels: labels
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect(),
        height: h,
        width: w,
        channels: c,
        stream: None,
    })
}

/// Checks every label of `split` (read from `path`) against `n` classes.
fn check_labels(path: &Path, split: &DataSplit, n: usize, source: &str) -> Result<()> {
    if let Some((i, l)) = split
        .labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l < 0 || l as usize >= n)
    {
        return Err(Error::Data(format!(
            "{}: label {l} at index {i} is out of range 0..{n} ({source})",
            path.display()
        )));
    }
    Ok(())
}

/// Loads safetensors images and labels from `path` (a folder or a file, see the module
/// doc) and splits them.
pub fn load_tensors(
    path: &Path,
    sp: &SplitParams,
    tp: &TensorsParams,
    params: &Params,
    seed: Seed,
) -> Result<Dataset> {
    let declared = match (&tp.classes, tp.num_classes) {
        (Some(names), Some(n)) if names.len() != n => {
            return Err(params
                .child_error(
                    "num_classes",
                    format!("{n}, but `classes` lists {} names", names.len()),
                )
                .into())
        }
        (_, Some(0)) => {
            return Err(params
                .child_error("num_classes", "must be at least 1")
                .into())
        }
        (Some(names), _) if names.is_empty() => {
            return Err(params.child_error("classes", "lists no names").into())
        }
        (Some(names), _) => Some((names.len(), "`classes` lists that many names")),
        (None, Some(n)) => Some((n, "num_classes")),
        (None, None) => None,
    };
    let hint = "expected a .safetensors file, or a folder holding train.safetensors (and test.safetensors)";
    let (train_path, test_path) = if path.is_dir() {
        let test = path.join("test.safetensors");
        (
            path.join("train.safetensors"),
            test.is_file().then_some(test),
        )
    } else {
        (path.to_path_buf(), None)
    };
    let train = read_tensors(&train_path, hint)?;
    let test = match &test_path {
        Some(p) => {
            let t = read_tensors(p, hint)?;
            if (t.height, t.width, t.channels) != (train.height, train.width, train.channels) {
                return Err(Error::Data(format!(
                    "{}: images are [H, W, C] = [{}, {}, {}], but {} holds [{}, {}, {}]",
                    p.display(),
                    t.height,
                    t.width,
                    t.channels,
                    train_path.display(),
                    train.height,
                    train.width,
                    train.channels
                )));
            }
            Some((p.clone(), t))
        }
        None => None,
    };

    let (n_classes, source) = match declared {
        Some(d) => d,
        None => {
            let max = train
                .labels
                .iter()
                .chain(test.iter().flat_map(|(_, t)| t.labels.iter()))
                .copied()
                .max()
                .unwrap_or(0);
            ((max.max(0) + 1) as usize, "labels must not be negative")
        }
    };
    check_labels(&train_path, &train, n_classes, source)?;
    if let Some((p, t)) = &test {
        check_labels(p, t, n_classes, source)?;
    }
    let classes = tp
        .classes
        .clone()
        .unwrap_or_else(|| (0..n_classes).map(|i| i.to_string()).collect());
    match test {
        Some((_, test)) => assemble("tensors", train, test, classes, sp, params, seed),
        None => assemble_held_out("tensors", train, "test file", classes, sp, params, seed),
    }
}

/// Factory of `tensors`.
pub fn build_tensors(params: &Params, seed: Seed) -> Result<Dataset> {
    let (sp, tp): (SplitParams, TensorsParams) = parse_with(params)?;
    let path = sp.required_path(
        params,
        "a .safetensors file, or a folder holding train.safetensors (and test.safetensors)",
    )?;
    load_tensors(path, &sp, &tp, params, seed)
}
