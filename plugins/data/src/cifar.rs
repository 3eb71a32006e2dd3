//! `cifar10` and `cifar100`, from either of CIFAR's two on-disk versions:
//!
//! - the binary version (`cifar-10-batches-bin`, `cifar-100-binary`): each record is the
//!   label byte(s) then 3072 bytes, the red, green and blue 32x32 planes, row-major.
//!   CIFAR-100 records carry the coarse label then the fine one; the fine one is used.
//! - the python version, torchvision's download (`cifar-10-batches-py`,
//!   `cifar-100-python`): the same files without `.bin`, each a pickled dict whose `data` is
//!   a numpy uint8 array [N, 3072] of the same planes and whose `labels` (CIFAR-10) or
//!   `fine_labels` (CIFAR-100) is a list of ints. Read by `rolekd-pickle`.
//!
//! The python version is an automatic fallback of the same dataset types, not a type of
//! its own: a pipeline names `cifar10` / `cifar100` whichever version is unpacked, and the
//! loader picks by what the directory holds ([`Layout::detect`]): the binary version when
//! its first training file is there, else the python version when its first training file
//! is there. A directory holding neither, but a subfolder named as one of the four
//! versions (torchvision's `root`), is read through that subfolder. Any file may be gzipped.

use crate::files::{find_plain_or_gz, read_maybe_gz};
use crate::split::{assemble, path_key, SplitParams};
use rolekd_core::config::Params;
use rolekd_core::plugin::data::{DataSplit, Dataset};
use rolekd_core::rng::Seed;
use rolekd_core::{Error, Result};
use rolekd_pickle::{self as pickle, Value};
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

    /// The training files' names without the binary version's `.bin`.
    pub fn train_stems(self) -> Vec<String> {
        match self {
            Variant::Cifar10 => (1..=5).map(|i| format!("data_batch_{i}")).collect(),
            Variant::Cifar100 => vec!["train".to_string()],
        }
    }

    /// The test file's name without the binary version's `.bin`.
    pub fn test_stem(self) -> &'static str {
        match self {
            Variant::Cifar10 => "test_batch",
            Variant::Cifar100 => "test",
        }
    }

    /// The key of the labels used in the python version's dicts.
    pub fn labels_key(self) -> &'static str {
        match self {
            Variant::Cifar10 => "labels",
            Variant::Cifar100 => "fine_labels",
        }
    }

    /// The directory names of the binary and python versions, as the archives unpack.
    pub fn unpacked_dirs(self) -> [(&'static str, Layout); 2] {
        match self {
            Variant::Cifar10 => [
                ("cifar-10-batches-bin", Layout::Binary),
                ("cifar-10-batches-py", Layout::Python),
            ],
            Variant::Cifar100 => [
                ("cifar-100-binary", Layout::Binary),
                ("cifar-100-python", Layout::Python),
            ],
        }
    }

    fn builtin_classes(self) -> &'static [&'static str] {
        match self {
            Variant::Cifar10 => &CIFAR10_CLASSES,
            Variant::Cifar100 => &CIFAR100_CLASSES,
        }
    }
}

/// Which of CIFAR's two versions a directory holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Fixed-size records in `.bin` files.
    Binary,
    /// Pickled dicts holding numpy arrays, in files without an extension.
    Python,
}

impl Layout {
    /// The file name of `stem` in this layout.
    pub fn file_name(self, stem: &str) -> String {
        match self {
            Layout::Binary => format!("{stem}.bin"),
            Layout::Python => stem.to_string(),
        }
    }

    /// The layout `dir` holds, judged by the first training file: binary when
    /// `<stem>.bin[.gz]` is there, else python when `<stem>[.gz]` is; None when neither.
    pub fn detect(dir: &Path, variant: Variant) -> Option<Layout> {
        let stem = &variant.train_stems()[0];
        [Layout::Binary, Layout::Python].into_iter().find(|l| {
            let name = l.file_name(stem);
            dir.join(&name).is_file() || dir.join(format!("{name}.gz")).is_file()
        })
    }
}

/// The directory to read and its layout: `dir` itself when it holds either version, else
/// the first unpacked-archive subfolder of it that does. When nothing is found, `dir` as
/// the binary version, so that the "not found" error names the files it expected.
pub fn resolve_dir(dir: &Path, variant: Variant) -> (PathBuf, Layout) {
    if let Some(layout) = Layout::detect(dir, variant) {
        return (dir.to_path_buf(), layout);
    }
    for (sub, layout) in variant.unpacked_dirs() {
        let d = dir.join(sub);
        if Layout::detect(&d, variant) == Some(layout) {
            return (d, layout);
        }
    }
    (dir.to_path_buf(), Layout::Binary)
}

/// Checks a label against the number of classes; `what` names the record.
fn check_label(path: &Path, variant: Variant, label: i64, what: &str) -> Result<()> {
    if label < 0 || label as usize >= variant.classes() {
        return Err(Error::Data(format!(
            "{}: label {label} of {what} is out of range (the dataset has {} classes)",
            path.display(),
            variant.classes()
        )));
    }
    Ok(())
}

/// Appends one image given as CIFAR's three 32x32 planes (CHW) to `out`, as HWC.
fn push_planes(planes: &[u8], out: &mut DataSplit) {
    let plane = SIDE * SIDE;
    for p in 0..plane {
        out.images
            .extend_from_slice(&[planes[p], planes[plane + p], planes[2 * plane + p]]);
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
    for (i, r) in bytes.chunks_exact(rec).enumerate() {
        let label = r[variant.label_bytes() - 1] as i64;
        check_label(path, variant, label, &format!("record {i}"))?;
        out.labels.push(label);
        push_planes(&r[variant.label_bytes()..], out);
    }
    Ok(())
}

/// Appends the images and labels of one python-version batch to `out` (images converted
/// to HWC). The batch must be a dict with a uint8 `data` array [N, 3072] (row-major) and
/// N int labels under [`Variant::labels_key`]; other entries (`filenames`,
/// `batch_label`, `coarse_labels`) are ignored.
pub fn read_pickled_batch(
    path: &Path,
    variant: Variant,
    hint: &str,
    out: &mut DataSplit,
) -> Result<()> {
    let bytes = read_maybe_gz(path, hint)?;
    let bad = |msg: String| Error::Data(format!("{}: {msg}", path.display()));
    let batch = pickle::load(&bytes).map_err(|e| bad(e.to_string()))?;
    if !matches!(batch, Value::Dict(_)) {
        return Err(bad(format!(
            "the pickle holds {}, expected a dict with `data` and `{}`",
            batch.kind(),
            variant.labels_key()
        )));
    }
    let entry = |key: &str| {
        batch
            .get(key)
            .ok_or_else(|| bad(format!("no `{key}` entry; the dict has {:?}", batch.keys())))
    };
    let data = match entry("data")? {
        Value::Array(a) => a,
        other => {
            return Err(bad(format!(
                "`data` is {}, expected a numpy uint8 array",
                other.kind()
            )))
        }
    };
    let uint8 = data
        .dtype
        .as_ref()
        .is_some_and(|d| d.kind == 'u' && d.itemsize == 1);
    if !uint8 || data.shape.len() != 2 || data.shape[1] != IMAGE_BYTES || data.fortran_order {
        return Err(bad(format!(
            "`data` is {}{}, expected a row-major uint8 array of shape [N, {IMAGE_BYTES}]",
            Value::Array(data.clone()).kind(),
            if data.fortran_order {
                " in Fortran order"
            } else {
                ""
            }
        )));
    }
    let key = variant.labels_key();
    let labels = entry(key)?
        .integers()
        .map_err(|e| bad(format!("`{key}`: {e}")))?;
    let n = data.shape[0];
    if labels.len() != n {
        return Err(bad(format!(
            "`{key}` has {} labels, but `data` holds {n} images",
            labels.len()
        )));
    }
    out.images.reserve(n * IMAGE_BYTES);
    out.labels.reserve(n);
    for (i, (img, &label)) in data.data.chunks_exact(IMAGE_BYTES).zip(&labels).enumerate() {
        check_label(path, variant, label, &format!("image {i}"))?;
        out.labels.push(label);
        push_planes(img, out);
    }
    Ok(())
}

/// Reads CIFAR files of one layout, in order, into one split.
pub fn read_files(
    paths: &[PathBuf],
    variant: Variant,
    layout: Layout,
    hint: &str,
) -> Result<DataSplit> {
    let mut split = DataSplit {
        images: Vec::new(),
        labels: Vec::new(),
        height: SIDE,
        width: SIDE,
        channels: 3,
        stream: None,
    };
    for p in paths {
        match layout {
            Layout::Binary => read_records(p, variant, hint, &mut split)?,
            Layout::Python => read_pickled_batch(p, variant, hint, &mut split)?,
        }
    }
    Ok(split)
}

/// The class names: from the version's metadata file when it exists (it must list
/// exactly as many as the dataset has), otherwise the built-in names. The binary version
/// lists them one per line (`batches.meta.txt`, `fine_label_names.txt`), the python
/// version in a pickled dict (`batches.meta` under `label_names`, `meta` under
/// `fine_label_names`).
fn class_names(dir: &Path, variant: Variant, layout: Layout) -> Result<Vec<String>> {
    let builtin = variant.builtin_classes();
    let (file, key) = match (variant, layout) {
        (Variant::Cifar10, Layout::Binary) => ("batches.meta.txt", ""),
        (Variant::Cifar100, Layout::Binary) => ("fine_label_names.txt", ""),
        (Variant::Cifar10, Layout::Python) => ("batches.meta", "label_names"),
        (Variant::Cifar100, Layout::Python) => ("meta", "fine_label_names"),
    };
    let path = dir.join(file);
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(builtin.iter().map(|s| s.to_string()).collect());
    };
    let bad = |msg: String| Error::Data(format!("{}: {msg}", path.display()));
    let names: Vec<String> = match layout {
        Layout::Binary => String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        Layout::Python => {
            let meta = pickle::load(&bytes).map_err(|e| bad(e.to_string()))?;
            match meta.get(key) {
                Some(Value::List(items)) => items
                    .iter()
                    .map(|v| {
                        v.text()
                            .ok_or_else(|| bad(format!("`{key}` holds {}", v.kind())))
                    })
                    .collect::<Result<_>>()?,
                Some(other) => {
                    return Err(bad(format!(
                        "`{key}` is {}, expected a list of names",
                        other.kind()
                    )))
                }
                None => {
                    return Err(bad(format!(
                        "no `{key}` entry; the dict has {:?}",
                        meta.keys()
                    )))
                }
            }
        }
    };
    if names.len() != builtin.len() {
        return Err(bad(format!(
            "lists {} class names, expected {}",
            names.len(),
            builtin.len()
        )));
    }
    Ok(names)
}

/// Loads CIFAR from `dir` (or the unpacked-archive subfolder of it, see [`resolve_dir`])
/// in whichever version it holds, and splits it.
pub fn load_cifar(
    dir: &Path,
    variant: Variant,
    hint: &str,
    sp: &SplitParams,
    params: &Params,
    seed: Seed,
) -> Result<Dataset> {
    let (dir, layout) = resolve_dir(dir, variant);
    let find = |stem: &str| find_plain_or_gz(&dir, &layout.file_name(stem), hint);
    let train_paths = variant
        .train_stems()
        .iter()
        .map(|s| find(s))
        .collect::<Result<Vec<_>>>()?;
    let test_path = find(variant.test_stem())?;
    let train = read_files(&train_paths, variant, layout, hint)?;
    let test = read_files(&[test_path], variant, layout, hint)?;
    let classes = class_names(&dir, variant, layout)?;
    let name = match variant {
        Variant::Cifar10 => "cifar10",
        Variant::Cifar100 => "cifar100",
    };
    assemble(name, train, test, classes, sp, params, seed)
}

/// Factory of `cifar10`.
pub fn build_cifar10(params: &Params, seed: Seed) -> Result<Dataset> {
    let sp: SplitParams = params.parse()?;
    let dir = sp.dir("ROLEKD_CIFAR10", "data/cifar-10-batches-bin");
    let hint = format!(
        "unpack CIFAR-10's binary or python version (cifar-10-binary.tar.gz, cifar-10-python.tar.gz) and set {} (or $ROLEKD_CIFAR10)",
        path_key(params)
    );
    load_cifar(&dir, Variant::Cifar10, &hint, &sp, params, seed)
}

/// Factory of `cifar100`.
pub fn build_cifar100(params: &Params, seed: Seed) -> Result<Dataset> {
    let sp: SplitParams = params.parse()?;
    let dir = sp.dir("ROLEKD_CIFAR100", "data/cifar-100-binary");
    let hint = format!(
        "unpack CIFAR-100's binary or python version (cifar-100-binary.tar.gz, cifar-100-python.tar.gz) and set {} (or $ROLEKD_CIFAR100)",
        path_key(params)
    );
    load_cifar(&dir, Variant::Cifar100, &hint, &sp, params, seed)
}
