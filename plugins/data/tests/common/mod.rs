//! Helpers that write small datasets in the real file formats.

#![allow(dead_code)]

use flate2::write::GzEncoder;
use flate2::Compression;
use rolekd_core::config::Params;
use rolekd_core::plugin::data::{DataSplit, Dataset};
use rolekd_core::rng::Seed;
use rolekd_data::idx;
use std::io::Write;
use std::path::Path;

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// `n` images of `side`x`side` whose first two pixels hold the image's index (LE) and
/// whose third holds `tag`; labels are `index % 10`.
pub fn synthetic(n: usize, side: usize, tag: u8) -> (Vec<u8>, Vec<u8>) {
    let px = side * side;
    let mut images = vec![0u8; n * px];
    for i in 0..n {
        let img = &mut images[i * px..(i + 1) * px];
        img[0] = (i & 0xff) as u8;
        img[1] = (i >> 8) as u8;
        img[2] = tag;
        for (j, p) in img.iter_mut().enumerate().skip(3) {
            *p = ((i * 7 + j * 13) % 256) as u8;
        }
    }
    let labels = (0..n).map(|i| (i % 10) as u8).collect();
    (images, labels)
}

/// Writes an MNIST-layout directory: train (`n_train` images) and t10k (`n_test`).
pub fn write_mnist_dir(dir: &Path, n_train: usize, n_test: usize, gz: bool) {
    for (prefix, n, tag) in [("train", n_train, 1u8), ("t10k", n_test, 2u8)] {
        let (images, labels) = synthetic(n, 4, tag);
        let img = idx::encode(&[n, 4, 4], &images);
        let lbl = idx::encode(&[n], &labels);
        write(dir, &format!("{prefix}-images-idx3-ubyte"), &img, gz);
        write(dir, &format!("{prefix}-labels-idx1-ubyte"), &lbl, gz);
    }
}

pub fn write(dir: &Path, name: &str, bytes: &[u8], gz: bool) {
    if gz {
        std::fs::write(dir.join(format!("{name}.gz")), gzip(bytes)).unwrap();
    } else {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

pub fn params(dir: &Path, extra: &str) -> Params {
    Params::from_yaml(&format!("path: '{}'\n{extra}", dir.display())).unwrap()
}

pub fn load(name: &str, dir: &Path, extra: &str, seed: u64) -> rolekd_core::Result<Dataset> {
    rolekd_data::link();
    let f = rolekd_core::registry::dataset(name).expect("registered");
    f(&params(dir, extra), Seed(seed))
}

/// The file indices of a split's images (from the synthetic index pixels).
pub fn indices(split: &DataSplit) -> Vec<usize> {
    let n = split.image_bytes();
    split
        .images
        .chunks_exact(n)
        .map(|img| img[0] as usize | (img[1] as usize) << 8)
        .collect()
}
