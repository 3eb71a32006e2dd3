//! `image-folder`: labelled images in one folder per class, decoded with the `image` crate
//! (PNG, JPEG, BMP) and held in memory as uint8 HWC like every other dataset.
//!
//! Layout of `path` (the choice is made by whether `path/train` is a folder):
//! - `path/train/<class>/…` and optionally `path/test/<class>/…`;
//! - or `path/<class>/…` directly, with no test folder.
//!
//! Classes are the training folder's subfolders, sorted by name: label `i` is the `i`-th
//! name. A test folder may lack classes but not add any. Images are the files under a
//! class folder (subfolders included) ending in `.png`, `.jpg`, `.jpeg` or `.bmp` (any
//! case), read in sorted path order; other files and hidden entries (`.…`) are skipped.
//! Without a test folder, `test_size` images of the training images are held out as the
//! test split, the same for every seed ([`crate::split::assemble_held_out`]).
//!
//! Size: without `size`, every image must have the first one's size. With
//! `size: [H, W]`, each image is resized with a triangle (bilinear) filter; `fit:
//! letterbox` (the default) keeps its aspect ratio, centres it and fills the uncovered
//! pixels with the per-channel mean of the training images' covered pixels (rounded to a
//! byte; test images get the same value), `fit: stretch` scales it to exactly H x W. An
//! image already H x W is kept byte for byte. `channels: 1` converts to grey as Pillow's
//! `convert("L")` does (ITU-R 601-2 luma; grey files are kept as they are), `channels: 3`
//! to RGB; alpha is dropped.

use crate::split::{assemble, assemble_held_out, parse_with, SplitParams};
use image::imageops::FilterType;
use image::{DynamicImage, GrayImage, ImageReader, Luma, RgbImage};
use rolekd_core::config::Params;
use rolekd_core::plugin::data::{DataSplit, Dataset};
use rolekd_core::rng::Seed;
use rolekd_core::{Error, Result};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The file extensions read as images (compared without case).
pub const IMAGE_EXTENSIONS: [&str; 4] = ["png", "jpg", "jpeg", "bmp"];

/// The params of `image-folder` besides the shared split params.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderParams {
    /// `[height, width]` every image is brought to; required when images differ in size.
    #[serde(default)]
    pub size: Option<[usize; 2]>,
    /// 1 (grey) or 3 (RGB).
    #[serde(default = "default_channels")]
    pub channels: usize,
    /// How an image is brought to `size`.
    #[serde(default)]
    pub fit: Fit,
}

fn default_channels() -> usize {
    3
}

/// How an image is brought to `size`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Keep the aspect ratio, centre, fill the rest with the training mean.
    #[default]
    Letterbox,
    /// Scale to exactly the size.
    Stretch,
}

/// Image files with their labels.
pub(crate) type Labelled = Vec<(PathBuf, i64)>;

/// Where an image's own pixels lie in its canvas; the rest is padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rect {
    x: usize,
    y: usize,
    w: usize,
    h: usize,
}

/// One split's images, with where each one's pixels lie.
struct Loaded {
    split: DataSplit,
    rects: Vec<Rect>,
}

/// The sorted, visible subfolders of `dir`, by name.
pub(crate) fn class_dirs(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            return Err(Error::Data(format!(
                "{}: a class folder name that is not UTF-8",
                path.display()
            )));
        };
        if !name.starts_with('.') {
            out.push((name, path));
        }
    }
    out.sort();
    Ok(out)
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// The image files under `dir`, subfolders included, in sorted path order.
pub(crate) fn image_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            entries.push(entry.path());
        }
    }
    entries.sort();
    for path in entries {
        if path.is_dir() {
            image_files(&path, out)?;
        } else if is_image(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// The labelled image files of one split folder. `classes` is None for the training
/// folder (its subfolders define the classes) and the training classes for a test folder.
pub(crate) fn list_split(
    dir: &Path,
    classes: Option<&[String]>,
) -> Result<(Vec<String>, Labelled)> {
    let dirs = class_dirs(dir)?;
    if dirs.is_empty() {
        return Err(Error::Data(format!(
            "{}: no class folders; expected one subfolder per class holding {} images",
            dir.display(),
            IMAGE_EXTENSIONS.join("/")
        )));
    }
    let names: Vec<String> = dirs.iter().map(|(n, _)| n.clone()).collect();
    let classes = classes.unwrap_or(&names);
    let mut files = Vec::new();
    for (name, class_dir) in &dirs {
        let Some(label) = classes.iter().position(|c| c == name) else {
            return Err(Error::Data(format!(
                "{}: class `{name}` is not among the training classes {classes:?}",
                class_dir.display()
            )));
        };
        let mut paths = Vec::new();
        image_files(class_dir, &mut paths)?;
        if paths.is_empty() {
            return Err(Error::Data(format!(
                "{}: empty class folder: no {} images",
                class_dir.display(),
                IMAGE_EXTENSIONS.join("/")
            )));
        }
        files.extend(paths.into_iter().map(|p| (p, label as i64)));
    }
    Ok((names, files))
}

/// Decodes an image (format sniffed from its bytes) into `channels` channels.
fn decode(path: &Path, channels: usize) -> Result<DynamicImage> {
    let bad =
        |e: image::ImageError| Error::Data(format!("{}: cannot decode image: {e}", path.display()));
    let img = ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?
        .decode()
        .map_err(bad)?;
    Ok(match (channels, img) {
        (1, DynamicImage::ImageLuma8(g)) => DynamicImage::ImageLuma8(g),
        (1, img) => DynamicImage::ImageLuma8(pillow_luma(&img.to_rgb8())),
        (_, img) => DynamicImage::ImageRgb8(img.to_rgb8()),
    })
}

/// Grey bytes of interleaved RGB bytes, with Pillow's `convert("L")` arithmetic.
pub(crate) fn pillow_luma_bytes(rgb: &[u8]) -> Vec<u8> {
    rgb.chunks_exact(3)
        .map(|p| {
            ((p[0] as u32 * 19595 + p[1] as u32 * 38470 + p[2] as u32 * 7471 + 0x8000) >> 16) as u8
        })
        .collect()
}

/// Grey as Pillow's `convert("L")` makes it (ITU-R 601-2 weights, in Pillow's fixed-point
/// arithmetic, like the augment plugin's ops), not as the `image` crate does (Rec. 709).
fn pillow_luma(rgb: &RgbImage) -> GrayImage {
    GrayImage::from_fn(rgb.width(), rgb.height(), |x, y| {
        let [r, g, b] = rgb.get_pixel(x, y).0;
        let l = (r as u32 * 19595 + g as u32 * 38470 + b as u32 * 7471 + 0x8000) >> 16;
        Luma([l as u8])
    })
}

/// Brings `img` to `h` x `w` as `fit` says: the resized image and where it goes.
fn fit_to(img: DynamicImage, h: usize, w: usize, fit: Fit) -> (DynamicImage, Rect) {
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    let (nw, nh) = match fit {
        Fit::Stretch => (w, h),
        Fit::Letterbox => {
            let scale = (w as f64 / iw as f64).min(h as f64 / ih as f64);
            let nw = ((iw as f64 * scale).round() as usize).clamp(1, w);
            let nh = ((ih as f64 * scale).round() as usize).clamp(1, h);
            (nw, nh)
        }
    };
    let rect = Rect {
        x: (w - nw) / 2,
        y: (h - nh) / 2,
        w: nw,
        h: nh,
    };
    if (nw, nh) == (iw, ih) {
        return (img, rect);
    }
    let resized = img.resize_exact(nw as u32, nh as u32, FilterType::Triangle);
    (resized, rect)
}

/// Decodes the files of one split. `shape` is `(height, width, first file)` once known:
/// given by `size`, or set by the first image when there is no `size`.
fn load_split(
    files: &[(PathBuf, i64)],
    fp: &FolderParams,
    shape: &mut Option<(usize, usize, PathBuf)>,
) -> Result<Loaded> {
    let c = fp.channels;
    let mut images = Vec::new();
    let mut labels = Vec::with_capacity(files.len());
    let mut rects = Vec::with_capacity(files.len());
    for (path, label) in files {
        let img = decode(path, c)?;
        let (iw, ih) = (img.width() as usize, img.height() as usize);
        let (h, w) = match (fp.size, &*shape) {
            (Some([h, w]), _) => (h, w),
            (None, Some((h, w, first))) => {
                if (ih, iw) != (*h, *w) {
                    return Err(Error::Data(format!(
                        "{}: {iw}x{ih} pixels (width x height), but {} is {w}x{h}; set size: [H, W] to resize every image",
                        path.display(),
                        first.display()
                    )));
                }
                (*h, *w)
            }
            (None, None) => {
                *shape = Some((ih, iw, path.clone()));
                (ih, iw)
            }
        };
        if images.is_empty() {
            images.reserve(files.len() * h * w * c);
        }
        let (img, rect) = fit_to(img, h, w, fp.fit);
        let pixels = img.as_bytes();
        let start = images.len();
        images.resize(start + h * w * c, 0);
        let canvas = &mut images[start..];
        for row in 0..rect.h {
            let src = &pixels[row * rect.w * c..(row + 1) * rect.w * c];
            let at = ((rect.y + row) * w + rect.x) * c;
            canvas[at..at + rect.w * c].copy_from_slice(src);
        }
        labels.push(*label);
        rects.push(rect);
    }
    let (height, width) = match (fp.size, &*shape) {
        (Some([h, w]), _) => (h, w),
        (None, Some((h, w, _))) => (*h, *w),
        (None, None) => (0, 0),
    };
    Ok(Loaded {
        split: DataSplit {
            images,
            labels,
            height,
            width,
            channels: c,
            stream: None,
        },
        rects,
    })
}

/// The per-channel mean of the pixels the images cover (padding excluded), rounded.
fn covered_mean(l: &Loaded) -> Vec<u8> {
    let s = &l.split;
    let c = s.channels;
    let mut sum = vec![0u64; c];
    let mut count = 0u64;
    for (img, r) in s.images.chunks_exact(s.image_bytes().max(1)).zip(&l.rects) {
        for y in r.y..r.y + r.h {
            let row = &img[(y * s.width + r.x) * c..(y * s.width + r.x + r.w) * c];
            for px in row.chunks_exact(c) {
                for (k, &v) in px.iter().enumerate() {
                    sum[k] += v as u64;
                }
            }
        }
        count += (r.w * r.h) as u64;
    }
    sum.iter()
        .map(|&t| (t as f64 / count.max(1) as f64).round() as u8)
        .collect()
}

/// Fills every pixel outside each image's rect with `fill`.
fn pad(l: &mut Loaded, fill: &[u8]) {
    let (w, h, c) = (l.split.width, l.split.height, l.split.channels);
    let n = l.split.image_bytes();
    for (img, r) in l.split.images.chunks_exact_mut(n.max(1)).zip(&l.rects) {
        if (r.w, r.h) == (w, h) {
            continue;
        }
        for y in 0..h {
            for x in 0..w {
                if y < r.y || y >= r.y + r.h || x < r.x || x >= r.x + r.w {
                    img[(y * w + x) * c..(y * w + x + 1) * c].copy_from_slice(fill);
                }
            }
        }
    }
}

/// Loads the image folder at `root` (see the module doc) and splits it.
pub fn load_image_folder(
    root: &Path,
    sp: &SplitParams,
    fp: &FolderParams,
    params: &Params,
    seed: Seed,
) -> Result<Dataset> {
    if !root.is_dir() {
        return Err(Error::Data(format!(
            "{}: not found, or not a folder (the image-folder root)",
            root.display()
        )));
    }
    let train_dir = root.join("train");
    let (train_dir, test_dir) = if train_dir.is_dir() {
        let test_dir = root.join("test");
        (train_dir, test_dir.is_dir().then_some(test_dir))
    } else {
        (root.to_path_buf(), None)
    };
    let (classes, train_files) = list_split(&train_dir, None)?;
    let test_files = match &test_dir {
        Some(d) => Some(list_split(d, Some(&classes))?.1),
        None => None,
    };
    let mut shape = fp.size.map(|[h, w]| (h, w, PathBuf::new()));
    let mut train = load_split(&train_files, fp, &mut shape)?;
    let mut test = match &test_files {
        Some(files) => Some(load_split(files, fp, &mut shape)?),
        None => None,
    };
    let fill = covered_mean(&train);
    pad(&mut train, &fill);
    if let Some(t) = &mut test {
        pad(t, &fill);
    }
    match test {
        Some(test) => assemble(
            "image-folder",
            train.split,
            test.split,
            classes,
            sp,
            params,
            seed,
        ),
        None => assemble_held_out(
            "image-folder",
            train.split,
            &format!("{} folder", root.join("test").display()),
            classes,
            sp,
            params,
            seed,
        ),
    }
}

/// Factory of `image-folder`.
pub fn build_image_folder(params: &Params, seed: Seed) -> Result<Dataset> {
    let (sp, fp): (SplitParams, FolderParams) = parse_with(params)?;
    if !matches!(fp.channels, 1 | 3) {
        return Err(params
            .child_error("channels", format!("must be 1 or 3, found {}", fp.channels))
            .into());
    }
    if let Some([h, w]) = fp.size {
        if h == 0 || w == 0 {
            return Err(params
                .child_error("size", format!("[{h}, {w}]: both sides must be at least 1"))
                .into());
        }
    }
    let root = sp.required_path(
        params,
        "the folder holding train/ (and test/), or one subfolder per class",
    )?;
    load_image_folder(root, &sp, &fp, params, seed)
}
