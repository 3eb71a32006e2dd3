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

/// The message of a data error.
pub fn data_msg(e: rolekd_core::Error) -> String {
    match e {
        rolekd_core::Error::Data(m) => m,
        other => panic!("expected a data error, got {other:?}"),
    }
}

/// A configuration error: its YAML path and message.
pub fn config_err(e: rolekd_core::Error) -> (String, String) {
    match e {
        rolekd_core::Error::Config(c) => (c.path, c.message),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

/// Writes pickles the way Python 2's `cPickle.dump(obj, f, 2)` does, for the objects
/// CIFAR's python version holds (dicts of byte strings, int lists, string lists and one
/// numpy uint8 array): the format of torchvision's `cifar-10-python.tar.gz` and
/// `cifar-100-python.tar.gz`. `tests/fixtures/cifar10_py2_protocol2.pkl`, written by
/// real Python 2.7 + numpy 1.16, checks it byte for byte.
///
/// As in cPickle: memo ids count from 1 (`BINPUT`, `LONG_BINPUT` from 256); containers,
/// globals, `REDUCE` results, dict keys and strings held in containers are memoized, the
/// temporaries inside numpy's reduction are not; lists and dicts are filled in batches
/// of 1000 (`MARK … APPENDS` / `SETITEMS`, a lone last item with `APPEND` / `SETITEM`).
pub struct Py2Pickler {
    pub out: Vec<u8>,
    memo: u32,
}

/// A value of a CIFAR batch dict.
pub enum Py2<'a> {
    Str(&'a [u8]),
    Ints(&'a [i64]),
    Strs(&'a [&'a [u8]]),
    /// A C-order numpy uint8 array: shape and data.
    U8Array(&'a [usize], &'a [u8]),
}

impl Default for Py2Pickler {
    fn default() -> Self {
        Self::new()
    }
}

impl Py2Pickler {
    pub fn new() -> Self {
        Py2Pickler {
            out: vec![0x80, 2],
            memo: 0,
        }
    }

    fn put(&mut self) {
        self.memo += 1;
        if self.memo < 256 {
            self.out.extend([b'q', self.memo as u8]);
        } else {
            self.out.push(b'r');
            self.out.extend(self.memo.to_le_bytes());
        }
    }

    fn string(&mut self, s: &[u8], memoize: bool) {
        if s.len() < 256 {
            self.out.extend([b'U', s.len() as u8]);
        } else {
            self.out.push(b'T');
            self.out.extend((s.len() as i32).to_le_bytes());
        }
        self.out.extend(s);
        if memoize {
            self.put();
        }
    }

    fn int(&mut self, v: i64) {
        match v {
            0..=0xff => self.out.extend([b'K', v as u8]),
            0x100..=0xffff => {
                self.out.push(b'M');
                self.out.extend((v as u16).to_le_bytes());
            }
            _ => {
                self.out.push(b'J');
                self.out.extend((v as i32).to_le_bytes());
            }
        }
    }

    fn global(&mut self, module: &str, name: &str) {
        self.out.push(b'c');
        self.out.extend(format!("{module}\n{name}\n").bytes());
        self.put();
    }

    /// `]` then the items in batches of 1000.
    fn list<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Self, &T)) {
        self.out.push(b']');
        self.put();
        for batch in items.chunks(1000) {
            if batch.len() == 1 {
                item(self, &batch[0]);
                self.out.push(b'a');
            } else {
                self.out.push(b'(');
                for x in batch {
                    item(self, x);
                }
                self.out.push(b'e');
            }
        }
    }

    fn array_u8(&mut self, shape: &[usize], data: &[u8]) {
        self.global("numpy.core.multiarray", "_reconstruct");
        self.global("numpy", "ndarray");
        self.int(0);
        self.out.push(0x85); // TUPLE1
        self.string(b"b", false);
        self.out.push(0x87); // TUPLE3
        self.out.push(b'R');
        self.put();
        self.out.push(b'(');
        self.int(1);
        assert!((1..=3).contains(&shape.len()));
        for &d in shape {
            self.int(d as i64);
        }
        self.out.push(0x84 + shape.len() as u8); // TUPLE1..3
        self.global("numpy", "dtype");
        self.string(b"u1", false);
        self.int(0);
        self.int(1);
        self.out.push(0x87);
        self.out.push(b'R');
        self.put();
        self.out.push(b'(');
        self.int(3);
        self.string(b"|", false);
        self.out.extend(b"NNN");
        self.out.push(b'J');
        self.out.extend((-1i32).to_le_bytes());
        self.out.push(b'J');
        self.out.extend((-1i32).to_le_bytes());
        self.int(0);
        self.out.push(b't');
        self.out.push(b'b'); // BUILD the dtype
        self.out.push(0x89); // NEWFALSE: not Fortran order
        self.string(data, false);
        self.out.push(b't');
        self.out.push(b'b'); // BUILD the array
    }

    /// A whole pickle of a dict with these entries, in this order.
    pub fn dict(entries: &[(&[u8], Py2)]) -> Vec<u8> {
        let mut p = Py2Pickler::new();
        p.out.push(b'}');
        p.put();
        for batch in entries.chunks(1000) {
            let many = batch.len() > 1;
            if many {
                p.out.push(b'(');
            }
            for (key, value) in batch {
                p.string(key, true);
                match value {
                    Py2::Str(s) => p.string(s, true),
                    Py2::Ints(xs) => p.list(xs, |p, &x| p.int(x)),
                    Py2::Strs(xs) => p.list(xs, |p, s| p.string(s, true)),
                    Py2::U8Array(shape, data) => p.array_u8(shape, data),
                }
            }
            p.out.push(if many { b'u' } else { b's' });
        }
        p.out.push(b'.');
        p.out
    }
}

/// A CIFAR python-version batch as torchvision's files hold it: `data` (uint8
/// [N, 3072]), the labels under `labels_key`, `batch_label` and `filenames`.
pub fn cifar_py_batch(labels_key: &str, labels: &[i64], data: &[u8]) -> Vec<u8> {
    let n = labels.len();
    let names: Vec<Vec<u8>> = (0..n)
        .map(|i| format!("img_{i:05}.png").into_bytes())
        .collect();
    let names: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
    Py2Pickler::dict(&[
        (b"data", Py2::U8Array(&[n, 3072], data)),
        (labels_key.as_bytes(), Py2::Ints(labels)),
        (b"batch_label", Py2::Str(b"training batch 1 of 5")),
        (b"filenames", Py2::Strs(&names)),
    ])
}
