//! `cifar10` and `cifar100`: the binary versions of CIFAR (`cifar-10-batches-bin`,
//! `cifar-100-binary`). Each record is the label byte(s) then 3072 bytes: the red, green
//! and blue 32x32 planes, row-major. Files may be gzipped. CIFAR-100 records carry the
//! coarse label then the fine one; the fine label is used.

use crate::files::{find_plain_or_gz, read_maybe_gz};
use crate::split::{assemble, path_key, SplitParams};
use rolekd_core::config::Params;
use rolekd_core::plugin::data::{DataSplit, Dataset};
use rolekd_core::rng::Seed;
use rolekd_core::{Error, Result};
use std::path::{Path, PathBuf};

/// Side of a CIFAR image.
pub const SIDE: usize = 32;
/// Bytes of one CIFAR image (3 planes of 32x32).
pub const IMAGE_BYTES: usize = SIDE * SIDE * 3;

/// CIFAR-10's class names, by label.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

/// CIFAR-100's fine class names, by label.
pub const CIFAR100_CLASSES: [&str; 100] = [
    "apple",
    "aquarium_fish",
    "baby",
    "bear",
    "beaver",
    "bed",
    "bee",
    "beetle",
    "bicycle",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "butterfly",
    "camel",
    "can",
    "castle",
    "caterpillar",
    "cattle",
    "chair",
    "chimpanzee",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "crab",
    "crocodile",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "flatfish",
    "forest",
    "fox",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lamp",
    "lawn_mower",
    "leopard",
    "lion",
    "lizard",
    "lobster",
    "man",
    "maple_tree",
    "motorcycle",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "otter",
    "palm_tree",
    "pear",
    "pickup_truck",
    "pine_tree",
    "plain",
    "plate",
    "poppy",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "rocket",
    "rose",
    "sea",
    "seal",
    "shark",
    "shrew",
    "skunk",
    "skyscraper",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "sweet_pepper",
    "table",
    "tank",
    "telephone",
    "television",
    "tiger",
    "tractor",
    "train",
    "trout",
    "tulip",
    "turtle",
    "wardrobe",
    "whale",
    "willow_tree",
    "wolf",
    "woman",
    "worm",
];

/// Which CIFAR: how many label bytes lead a record and which of them is the label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// One label byte.
    Cifar10,
    /// Coarse then fine label byte; the fine one is used.
    Cifar100,
}

impl Variant {
    pub fn label_bytes(self) -> usize {
        match self {
            Variant::Cifar10 => 1,
            Variant::Cifar100 => 2,
        }
    }

    pub fn record_bytes(self) -> usize {
        self.label_bytes() + IMAGE_BYTES
    }

    pub fn classes(self) -> usize {
        match self {
            Variant::Cifar10 => 10,
            Variant::Cifar100 => 100,
        }
    }
}

/// Appends the records of one CIFAR binary file to `out` (images converted to HWC).
pub fn read_records(path: &Path, variant: Variant, hint: &str, out: &mut DataSplit) -> Result<()> {
    let bytes = read_maybe_gz(path, hint)?;
    let rec = variant.record_bytes();
    if bytes.is_empty() || bytes.len() % rec != 0 {
        return Err(Error::Data(format!(
            "{}: {} bytes is not a whole number of {rec}-byte records ({} label byte(s) + 32x32x3 image){}",
            path.display(),
            bytes.len(),
            variant.label_bytes(),
            if bytes.len() > rec {
                format!(
                    "; truncated? expected {} bytes for {} records",
                    bytes.len().div_ceil(rec) * rec,
                    bytes.len().div_ceil(rec)
                )
            } else {
                String::new()
            }
        )));
    }
    let n = bytes.len() / rec;
    out.images.reserve(n * IMAGE_BYTES);
    out.labels.reserve(n);
    let plane = SIDE * SIDE;
    for (i, r) in bytes.chunks_exact(rec).enumerate() {
        let label = r[variant.label_bytes() - 1];
        if label as usize >= variant.classes() {
            return Err(Error::Data(format!(
                "{}: label {label} of record {i} is out of range (the dataset has {} classes)",
                path.display(),
                variant.classes()
            )));
        }
        out.labels.push(label as i64);
        let img = &r[variant.label_bytes()..];
        for p in 0..plane {
            out.images
                .extend_from_slice(&[img[p], img[plane + p], img[2 * plane + p]]);
        }
    }
    Ok(())
}

/// Reads CIFAR binary files, in order, into one split.
pub fn read_files(paths: &[PathBuf], variant: Variant, hint: &str) -> Result<DataSplit> {
    let mut split = DataSplit {
        images: Vec::new(),
        labels: Vec::new(),
        height: SIDE,
        width: SIDE,
        channels: 3,
    };
    for p in paths {
        read_records(p, variant, hint, &mut split)?;
    }
    Ok(split)
}

/// Class names from a metadata file (one per line) when it exists and lists `n`;
/// otherwise the built-in names.
fn class_names(dir: &Path, file: &str, builtin: &[&str]) -> Result<Vec<String>> {
    let path = dir.join(file);
    let names: Vec<String> = match std::fs::read_to_string(&path) {
        Ok(text) => text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        Err(_) => return Ok(builtin.iter().map(|s| s.to_string()).collect()),
    };
    if names.len() != builtin.len() {
        return Err(Error::Data(format!(
            "{}: lists {} class names, expected {}",
            path.display(),
            names.len(),
            builtin.len()
        )));
    }
    Ok(names)
}

/// Loads CIFAR-10 from `dir` (`data_batch_1.bin`..`data_batch_5.bin`, `test_batch.bin`).
pub fn load_cifar10(
    dir: &Path,
    hint: &str,
    sp: &SplitParams,
    params: &Params,
    seed: Seed,
) -> Result<Dataset> {
    let train_paths = (1..=5)
        .map(|i| find_plain_or_gz(dir, &format!("data_batch_{i}.bin"), hint))
        .collect::<Result<Vec<_>>>()?;
    let test_path = find_plain_or_gz(dir, "test_batch.bin", hint)?;
    let train = read_files(&train_paths, Variant::Cifar10, hint)?;
    let test = read_files(&[test_path], Variant::Cifar10, hint)?;
    let classes = class_names(dir, "batches.meta.txt", &CIFAR10_CLASSES)?;
    assemble("cifar10", train, test, classes, sp, params, seed)
}

/// Loads CIFAR-100 from `dir` (`train.bin`, `test.bin`), fine labels.
pub fn load_cifar100(
    dir: &Path,
    hint: &str,
    sp: &SplitParams,
    params: &Params,
    seed: Seed,
) -> Result<Dataset> {
    let train_path = find_plain_or_gz(dir, "train.bin", hint)?;
    let test_path = find_plain_or_gz(dir, "test.bin", hint)?;
    let train = read_files(&[train_path], Variant::Cifar100, hint)?;
    let test = read_files(&[test_path], Variant::Cifar100, hint)?;
    let classes = class_names(dir, "fine_label_names.txt", &CIFAR100_CLASSES)?;
    assemble("cifar100", train, test, classes, sp, params, seed)
}

/// Factory of `cifar10`.
pub fn build_cifar10(params: &Params, seed: Seed) -> Result<Dataset> {
    let sp: SplitParams = params.parse()?;
    let dir = sp.dir("ROLEKD_CIFAR10", "data/cifar-10-batches-bin");
    let hint = format!(
        "unpack CIFAR-10's binary version (cifar-10-binary.tar.gz) and set {} (or $ROLEKD_CIFAR10)",
        path_key(params)
    );
    load_cifar10(&dir, &hint, &sp, params, seed)
}

/// Factory of `cifar100`.
pub fn build_cifar100(params: &Params, seed: Seed) -> Result<Dataset> {
    let sp: SplitParams = params.parse()?;
    let dir = sp.dir("ROLEKD_CIFAR100", "data/cifar-100-binary");
    let hint = format!(
        "unpack CIFAR-100's binary version (cifar-100-binary.tar.gz) and set {} (or $ROLEKD_CIFAR100)",
        path_key(params)
    );
    load_cifar100(&dir, &hint, &sp, params, seed)
}
