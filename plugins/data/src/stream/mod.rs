//! `image-stream`: labelled image files of any size, read and decoded while training (on
//! the loader's workers), so a run's memory does not grow with the number of images. The
//! dataset for ImageNet-1k and for photo collections that do not fit in memory.
//!
//! Layouts of `path` (looked for in this order):
//! - ImageNet's: `train/<class>/*` and `val/<class>/*` (after the usual `valprep.sh`), or
//!   a flat `val/*` with a `val_labels` file: lines `<file name> <class>` (the class a
//!   folder name or an index into the sorted class names), or Kaggle's
//!   `LOC_val_solution.csv` (`ImageId,PredictionString`, the first word the class);
//! - `train/<class>/*` with `test/<class>/*`;
//! - `<class>/*` directly, `test_size` of them held out as the test split;
//! - or, instead of `path`, WebDataset tar shards: `shards: dir/train-{000000..000127}.tar`
//!   (members `<key>.jpg|jpeg|png` with `<key>.cls`, the label as text), `test_shards:`
//!   likewise (or `test_size` held out).
//!
//! The `val/` (or `test/`) images are the test split, as the field reports ImageNet figures;
//! `val_size` holds out training images for search rewards and choices.
//!
//! Every image becomes `size` (default 224x224): training images by torchvision's
//! `RandomResizedCrop` (`scale`, `ratio`; or `train_crop: center`), evaluation images by
//! `Resize(resize)` + `CenterCrop(size)` (`resize` default: size x 256 / 224). The
//! normalisation defaults to ImageNet's mean and standard deviation (torchvision's), as
//! the statistics of an unbounded set are not computed up front.

pub mod codec;
pub mod crop;
pub mod files;
pub mod shards;

use crate::folder::{class_dirs, image_files, list_split, Labelled};
use crate::split::{assemble, assemble_held_out, parse_with, Normalize, SplitParams};
use files::{FileStream, OnBadImage, Source, TrainCrop, Transform};
use rolekd_core::config::Params;
use rolekd_core::plugin::data::{DataSplit, Dataset};
use rolekd_core::rng::Seed;
use rolekd_core::{Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// ImageNet's per-channel mean and standard deviation (RGB, pixel/255 scale), the values
/// torchvision's ImageNet recipes normalise with.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// The params of `image-stream` besides the shared split params.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    /// Model input: one side (square) or `[height, width]`.
    #[serde(default = "default_size")]
    pub size: Size,
    /// Evaluation resize of the shorter side; default `size x 256 / 224` (256 at 224).
    #[serde(default)]
    pub resize: Option<usize>,
    #[serde(default)]
    pub train_crop: CropKind,
    /// RandomResizedCrop's range of the crop's area fraction.
    #[serde(default = "default_scale")]
    pub scale: [f64; 2],
    /// RandomResizedCrop's range of the crop's aspect ratio (width / height).
    #[serde(default = "default_ratio")]
    pub ratio: [f64; 2],
    /// 1 (grey) or 3 (RGB).
    #[serde(default = "default_channels")]
    pub channels: usize,
    /// The labels of a flat `val/` folder.
    #[serde(default)]
    pub val_labels: Option<PathBuf>,
    #[serde(default)]
    pub on_bad_image: OnBadImage,
    /// Decode JPEGs at 1/2, 1/4 or 1/8 of their size when no crop needs more pixels.
    #[serde(default = "yes")]
    pub reduced_decode: bool,
    /// WebDataset tar shards of the training images (`dir/train-{000000..000127}.tar`);
    /// instead of `path`.
    #[serde(default)]
    pub shards: Option<String>,
    /// Shards of the test images (default: `test_size` held out of `shards`).
    #[serde(default)]
    pub test_shards: Option<String>,
    /// Class names by label for shards (default: `0`, `1`, ... up to the largest label).
    #[serde(default)]
    pub classes: Option<Vec<String>>,
}

/// One side, or `[height, width]`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(untagged)]
pub enum Size {
    Square(usize),
    HeightWidth([usize; 2]),
}

impl Size {
    fn hw(self) -> (usize, usize) {
        match self {
            Size::Square(s) => (s, s),
            Size::HeightWidth([h, w]) => (h, w),
        }
    }
}

/// How training images are cropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CropKind {
    #[default]
    RandomResized,
    Center,
}

fn default_size() -> Size {
    Size::Square(224)
}
fn default_scale() -> [f64; 2] {
    [0.08, 1.0]
}
fn default_ratio() -> [f64; 2] {
    [3.0 / 4.0, 4.0 / 3.0]
}
fn default_channels() -> usize {
    3
}
fn yes() -> bool {
    true
}

/// The `image-stream` dataset.
pub fn build_image_stream(params: &Params, seed: Seed) -> Result<Dataset> {
    let (mut sp, p): (SplitParams, StreamParams) = parse_with(params)?;
    let transform = transform_of(&p, params)?;
    sp.normalize = Some(normalize_of(sp.normalize.take(), p.channels, params)?);
    if let Some(pattern) = &p.shards {
        return build_from_shards(pattern, &p, &sp, transform, params, seed);
    }
    let root = sp
        .required_path(
            params,
            "the image set's folder (or `shards:` for tar shards)",
        )?
        .to_path_buf();
    let split_of = |files: Labelled| {
        let (paths, labels): (Vec<PathBuf>, Vec<i64>) = files.into_iter().unzip();
        DataSplit::streamed(
            Arc::new(FileStream::new(Source::Files(paths), transform.clone())),
            labels,
        )
    };
    let train_dir = root.join("train");
    if !train_dir.is_dir() {
        let (classes, files) = list_split(&root, None)?;
        let what = format!("train/ or test folder under {}", root.display());
        return assemble_held_out(
            "image-stream",
            split_of(files),
            &what,
            classes,
            &sp,
            params,
            seed,
        );
    }
    let (classes, train) = list_split(&train_dir, None)?;
    let test = test_files(&root, &classes, &p, params)?;
    assemble(
        "image-stream",
        split_of(train),
        split_of(test),
        classes,
        &sp,
        params,
        seed,
    )
}

/// `image-stream` over WebDataset shards.
fn build_from_shards(
    pattern: &str,
    p: &StreamParams,
    sp: &SplitParams,
    transform: Transform,
    params: &Params,
    seed: Seed,
) -> Result<Dataset> {
    let skip_bad = p.on_bad_image == OnBadImage::Skip;
    let split_of = |pattern: &str, key: &str| -> Result<DataSplit> {
        let shards: Vec<PathBuf> = shards::expand(pattern)
            .map_err(|e| params.child_error(key, e))?
            .into_iter()
            .map(PathBuf::from)
            .collect();
        let (members, labels) = shards::index(&shards, skip_bad)?;
        if members.is_empty() {
            return Err(params
                .child_error(key, format!("no samples in {pattern}"))
                .into());
        }
        let source = Source::Shards { shards, members };
        Ok(DataSplit::streamed(
            Arc::new(FileStream::new(source, transform.clone())),
            labels,
        ))
    };
    let train = split_of(pattern, "shards")?;
    let test = p
        .test_shards
        .as_deref()
        .map(|t| split_of(t, "test_shards"))
        .transpose()?;
    let largest = train
        .labels
        .iter()
        .chain(test.iter().flat_map(|t| &t.labels))
        .copied()
        .max();
    let classes = match &p.classes {
        Some(c) => c.clone(),
        None => (0..=largest.unwrap_or(0)).map(|l| l.to_string()).collect(),
    };
    let out_of_range = |s: &DataSplit| {
        s.labels
            .iter()
            .any(|&l| l < 0 || l as usize >= classes.len())
    };
    if out_of_range(&train) || test.as_ref().is_some_and(out_of_range) {
        return Err(params
            .child_error(
                "classes",
                format!(
                    "{} names, but the shards have labels outside 0..{}",
                    classes.len(),
                    classes.len()
                ),
            )
            .into());
    }
    match test {
        Some(test) => assemble("image-stream", train, test, classes, sp, params, seed),
        None => assemble_held_out(
            "image-stream",
            train,
            "test_shards",
            classes,
            sp,
            params,
            seed,
        ),
    }
}

fn transform_of(p: &StreamParams, params: &Params) -> Result<Transform> {
    let (h, w) = p.size.hw();
    if h == 0 || w == 0 {
        return Err(params.child_error("size", "must be at least 1").into());
    }
    if ![1, 3].contains(&p.channels) {
        return Err(params.child_error("channels", "must be 1 or 3").into());
    }
    let ordered = |r: [f64; 2]| r[0] > 0.0 && r[0] <= r[1] && r[1].is_finite();
    if !ordered(p.scale) || p.scale[1] > 1.0 {
        return Err(params
            .child_error("scale", "must be [low, high] with 0 < low <= high <= 1")
            .into());
    }
    if !ordered(p.ratio) {
        return Err(params
            .child_error("ratio", "must be [low, high] with 0 < low <= high")
            .into());
    }
    let resize = p.resize.unwrap_or_else(|| (h.min(w) * 256).div_ceil(224));
    if resize < h.min(w) {
        return Err(params
            .child_error(
                "resize",
                format!("{resize} is smaller than the crop size {}", h.min(w)),
            )
            .into());
    }
    Ok(Transform {
        size: (h, w),
        resize,
        train_crop: match p.train_crop {
            CropKind::RandomResized => TrainCrop::RandomResized {
                scale: p.scale,
                ratio: p.ratio,
            },
            CropKind::Center => TrainCrop::Center,
        },
        channels: p.channels,
        reduced_decode: p.reduced_decode,
        on_bad_image: p.on_bad_image,
    })
}

fn normalize_of(given: Option<Normalize>, channels: usize, params: &Params) -> Result<Normalize> {
    match given {
        Some(n) => Ok(n),
        None if channels == 3 => Ok(Normalize {
            mean: IMAGENET_MEAN.to_vec(),
            std: IMAGENET_STD.to_vec(),
        }),
        None => Err(params
            .child_error(
                "normalize",
                "required for grey images: {mean: [m], std: [s]}",
            )
            .into()),
    }
}

/// The test split's files: `val/` or `test/` with class folders, or a flat `val/` with
/// `val_labels`.
fn test_files(
    root: &Path,
    classes: &[String],
    p: &StreamParams,
    params: &Params,
) -> Result<Labelled> {
    for name in ["val", "test"] {
        let dir = root.join(name);
        if !dir.is_dir() {
            continue;
        }
        if !class_dirs(&dir)?.is_empty() {
            return Ok(list_split(&dir, Some(classes))?.1);
        }
        let Some(labels) = &p.val_labels else {
            return Err(params
                .child_error(
                    "val_labels",
                    format!(
                        "required: {} has no class folders, so a file must give each image's class",
                        dir.display()
                    ),
                )
                .into());
        };
        return flat_labelled(&dir, labels, classes);
    }
    Err(Error::Data(format!(
        "{}: no val/ or test/ folder beside train/",
        root.display()
    )))
}

/// The images of a flat folder, labelled by a `val_labels` file.
fn flat_labelled(dir: &Path, labels_file: &Path, classes: &[String]) -> Result<Labelled> {
    let text = std::fs::read_to_string(labels_file).map_err(|e| Error::io(labels_file, e))?;
    let by_name = parse_val_labels(&text, classes)
        .map_err(|(line, msg)| Error::Data(format!("{}:{line}: {msg}", labels_file.display())))?;
    let mut paths = Vec::new();
    image_files(dir, &mut paths)?;
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let name = path
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let Some(&label) = by_name.get(name).or_else(|| by_name.get(stem)) else {
            return Err(Error::Data(format!(
                "{}: no label for it in {}",
                path.display(),
                labels_file.display()
            )));
        };
        out.push((path, label));
    }
    Ok(out)
}

/// File name (or stem) -> label, from `<name> <class>` lines or Kaggle's CSV; errors are
/// `(line number, message)`.
fn parse_val_labels(
    text: &str,
    classes: &[String],
) -> std::result::Result<std::collections::HashMap<String, i64>, (usize, String)> {
    let csv = text.starts_with("ImageId,PredictionString");
    let mut out = std::collections::HashMap::new();
    for (n, line) in text.lines().enumerate().skip(usize::from(csv)) {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (name, class) = if csv {
            let (id, pred) = line
                .split_once(',')
                .ok_or((n + 1, "expected `ImageId,PredictionString`".to_string()))?;
            (id, pred.split_whitespace().next().unwrap_or(""))
        } else {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some(a), Some(b)) => (a, b),
                _ => return Err((n + 1, "expected `<file name> <class>`; a bare list of class ids (the devkit's ground truth) needs its file names".into())),
            }
        };
        let label = match classes.iter().position(|c| c == class) {
            Some(l) => l as i64,
            None => match class.parse::<usize>() {
                Ok(i) if i < classes.len() => i as i64,
                _ => {
                    return Err((
                        n + 1,
                        format!(
                            "`{class}` is neither a training class nor an index below {}",
                            classes.len()
                        ),
                    ))
                }
            },
        };
        out.insert(name.to_string(), label);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn val_labels_read_names_indices_and_kaggles_csv() {
        let classes = vec!["n01".to_string(), "n02".to_string()];
        let plain = parse_val_labels("a.JPEG n02\nb.JPEG 0\n\n", &classes).unwrap();
        assert_eq!(plain["a.JPEG"], 1);
        assert_eq!(plain["b.JPEG"], 0);
        let csv = "ImageId,PredictionString\nval_1,n02 1 2 3 4\nval_2,n01 5 6 7 8\n";
        let k = parse_val_labels(csv, &classes).unwrap();
        assert_eq!((k["val_1"], k["val_2"]), (1, 0));
        assert_eq!(parse_val_labels("a n09\n", &classes).unwrap_err().0, 1);
        assert!(parse_val_labels("x n01\n65\n", &classes)
            .unwrap_err()
            .1
            .contains("file names"));
    }
}
