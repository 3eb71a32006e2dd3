//! `fashion-mnist` and `mnist`: the IDX files `train-images-idx3-ubyte`,
//! `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each raw
//! or gzipped (`.gz`, detected by the gzip magic).

use crate::files::{find_plain_or_gz, read_maybe_gz};
use crate::idx::{self, IMAGES_MAGIC, LABELS_MAGIC};
use crate::split::{assemble, path_key, SplitParams};
use rolekd_core::config::Params;
use rolekd_core::plugin::data::{DataSplit, Dataset};
use rolekd_core::rng::Seed;
use rolekd_core::{Error, Result};
use std::path::Path;

/// Fashion-MNIST's class names, by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// MNIST's class names, by label.
pub const MNIST_CLASSES: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// Default directory of Fashion-MNIST (Debian's `dataset-fashion-mnist`).
pub const FASHION_MNIST_DEFAULT_DIR: &str = "/usr/share/datasets/fashion-mnist";
/// Default directory of MNIST.
pub const MNIST_DEFAULT_DIR: &str = "/usr/share/datasets/mnist";

/// Reads one IDX split (`prefix` is `train` or `t10k`) from `dir`: images and labels,
/// checked against each other and against `classes`. `hint` ends "not found" errors.
pub fn load_idx_split(dir: &Path, prefix: &str, classes: usize, hint: &str) -> Result<DataSplit> {
    let img_path = find_plain_or_gz(dir, &format!("{prefix}-images-idx3-ubyte"), hint)?;
    let lbl_path = find_plain_or_gz(dir, &format!("{prefix}-labels-idx1-ubyte"), hint)?;
    let images = idx::parse(&img_path, read_maybe_gz(&img_path, hint)?, IMAGES_MAGIC)?;
    let labels = idx::parse(&lbl_path, read_maybe_gz(&lbl_path, hint)?, LABELS_MAGIC)?;
    let (n, rows, cols) = (images.dims[0], images.dims[1], images.dims[2]);
    if rows == 0 || cols == 0 {
        return Err(Error::Data(format!(
            "{}: images of {rows}x{cols} pixels",
            img_path.display()
        )));
    }
    if labels.dims[0] != n {
        return Err(Error::Data(format!(
            "{}: {} labels, but {} holds {n} images",
            lbl_path.display(),
            labels.dims[0],
            img_path.display()
        )));
    }
    if let Some((i, &l)) = labels
        .data
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= classes)
    {
        return Err(Error::Data(format!(
            "{}: label {l} at index {i} is out of range (the dataset has {classes} classes)",
            lbl_path.display()
        )));
    }
    Ok(DataSplit {
        images: images.data,
        labels: labels.data.iter().map(|&l| l as i64).collect(),
        height: rows,
        width: cols,
        channels: 1,
        stream: None,
    })
}

/// Loads an MNIST-layout dataset from `dir` and splits it.
pub fn load_mnist_like(
    name: &str,
    dir: &Path,
    classes: &[&str],
    hint: &str,
    sp: &SplitParams,
    params: &Params,
    seed: Seed,
) -> Result<Dataset> {
    let train = load_idx_split(dir, "train", classes.len(), hint)?;
    let test = load_idx_split(dir, "t10k", classes.len(), hint)?;
    if (train.height, train.width) != (test.height, test.width) {
        return Err(Error::Data(format!(
            "{}: training images (train-images-idx3-ubyte) are {}x{}, test images (t10k-images-idx3-ubyte) {}x{}",
            dir.display(),
            train.height,
            train.width,
            test.height,
            test.width
        )));
    }
    let classes = classes.iter().map(|s| s.to_string()).collect();
    assemble(name, train, test, classes, sp, params, seed)
}

/// Factory of `fashion-mnist`.
pub fn build_fashion_mnist(params: &Params, seed: Seed) -> Result<Dataset> {
    let sp: SplitParams = params.parse()?;
    let dir = sp.dir("ROLEKD_FASHION_MNIST", FASHION_MNIST_DEFAULT_DIR);
    let hint = format!(
        "install Debian's dataset-fashion-mnist or set {} (or $ROLEKD_FASHION_MNIST)",
        path_key(params)
    );
    load_mnist_like(
        "fashion-mnist",
        &dir,
        &FASHION_MNIST_CLASSES,
        &hint,
        &sp,
        params,
        seed,
    )
}

/// Factory of `mnist`.
pub fn build_mnist(params: &Params, seed: Seed) -> Result<Dataset> {
    let sp: SplitParams = params.parse()?;
    let dir = sp.dir("ROLEKD_MNIST", MNIST_DEFAULT_DIR);
    let hint = format!(
        "put the MNIST IDX files there, or set {} (or $ROLEKD_MNIST)",
        path_key(params)
    );
    load_mnist_like("mnist", &dir, &MNIST_CLASSES, &hint, &sp, params, seed)
}
