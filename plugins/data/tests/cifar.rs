//! CIFAR loaders on small files written here in both CIFAR versions: the binary one and
//! the python one (torchvision's pickles, written by [`Py2Pickler`] byte for byte as
//! Python 2's cPickle does, and the committed fixtures written by real Python).

mod common;

use common::*;
use rolekd_pickle::{self as pickle, Value};
use std::path::{Path, PathBuf};

/// One record: label byte(s), then the R, G, B planes. Pixel (x, y) of record `i` has
/// R = i, G = x + 32y mod 256, B = 255 - i.
fn record(i: usize, labels: &[u8]) -> Vec<u8> {
    let mut r = labels.to_vec();
    r.extend(std::iter::repeat_n(i as u8, 1024));
    r.extend((0..1024).map(|p| (p % 256) as u8));
    r.extend(std::iter::repeat_n(255 - i as u8, 1024));
    r
}

fn write_cifar10(dir: &Path, per_batch: usize) {
    for b in 0..6 {
        let name = if b < 5 {
            format!("data_batch_{}.bin", b + 1)
        } else {
            "test_batch.bin".to_string()
        };
        let bytes: Vec<u8> = (0..per_batch)
            .flat_map(|j| {
                let i = b * per_batch + j;
                record(i, &[(i % 10) as u8])
            })
            .collect();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn write_cifar100(dir: &Path, n_train: usize, n_test: usize) {
    for (name, n) in [("train.bin", n_train), ("test.bin", n_test)] {
        let bytes: Vec<u8> = (0..n)
            .flat_map(|i| record(i, &[(i % 20) as u8, (i * 7 % 100) as u8]))
            .collect();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

#[test]
fn cifar10_reads_batches_in_order_as_hwc() {
    let tmp = tempfile::tempdir().unwrap();
    write_cifar10(tmp.path(), 8);
    let ds = load("cifar10", tmp.path(), "", 0).unwrap();
    assert_eq!((ds.train.len(), ds.test.len(), ds.val.len()), (40, 8, 0));
    assert_eq!(
        (ds.train.height, ds.train.width, ds.train.channels),
        (32, 32, 3)
    );
    assert_eq!(ds.classes.len(), 10);
    assert_eq!(ds.classes[0], "airplane");
    for (i, &l) in ds.train.labels.iter().enumerate() {
        assert_eq!(l, (i % 10) as i64);
    }
    // Pixel (x=5, y=1) of training image 13: HWC, planes interleaved.
    let img = ds.train.image(13);
    assert_eq!(img.at(5, 1, 0), 13);
    assert_eq!(img.at(5, 1, 1), 37);
    assert_eq!(img.at(5, 1, 2), 255 - 13);
    assert_eq!(ds.test.image(0).at(0, 0, 0), 40);
    assert_eq!(ds.mean.len(), 3);
    // R is uniform over 0..40: mean 19.5/255.
    assert!((ds.mean[0] - 19.5 / 255.0).abs() < 1e-6);

    let s = load(
        "cifar10",
        tmp.path(),
        "val_size: 10\ntrain_size: 20\ntest_size: 4",
        5,
    )
    .unwrap();
    assert_eq!((s.train.len(), s.val.len(), s.test.len()), (20, 10, 4));
    let again = load(
        "cifar10",
        tmp.path(),
        "val_size: 10\ntrain_size: 20\ntest_size: 4",
        5,
    )
    .unwrap();
    assert_eq!(s.train.images, again.train.images);
}

#[test]
fn cifar10_meta_names_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    write_cifar10(tmp.path(), 4);
    let names: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
    std::fs::write(
        tmp.path().join("batches.meta.txt"),
        names.join("\n") + "\n\n",
    )
    .unwrap();
    let ds = load("cifar10", tmp.path(), "", 0).unwrap();
    assert_eq!(ds.classes, names);

    // A truncated batch.
    let p = tmp.path().join("data_batch_3.bin");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
    let msg = data_msg(load("cifar10", tmp.path(), "", 0).unwrap_err());
    assert!(
        msg.contains("data_batch_3.bin: 12192 bytes is not a whole number of 3073-byte records"),
        "{msg}"
    );
    assert!(msg.contains("expected 12292 bytes for 4 records"), "{msg}");

    // A label out of range.
    let mut bytes = bytes;
    bytes[3073] = 10;
    std::fs::write(&p, &bytes).unwrap();
    let msg = data_msg(load("cifar10", tmp.path(), "", 0).unwrap_err());
    assert!(
        msg.contains("data_batch_3.bin: label 10 of record 1 is out of range"),
        "{msg}"
    );

    // A missing batch.
    std::fs::remove_file(&p).unwrap();
    let msg = data_msg(load("cifar10", tmp.path(), "", 0).unwrap_err());
    assert!(msg.contains("data_batch_3.bin[.gz]: not found"), "{msg}");
    assert!(msg.contains("set path"), "{msg}");
}

#[test]
fn cifar100_uses_fine_labels() {
    let tmp = tempfile::tempdir().unwrap();
    write_cifar100(tmp.path(), 30, 12);
    let ds = load("cifar100", tmp.path(), "val_size: 5", 9).unwrap();
    assert_eq!((ds.train.len(), ds.val.len(), ds.test.len()), (25, 5, 12));
    assert_eq!(ds.classes.len(), 100);
    assert_eq!(ds.classes[99], "worm");
    for (i, &l) in ds.test.labels.iter().enumerate() {
        assert_eq!(l, (i * 7 % 100) as i64);
        assert_eq!(ds.test.image(i).at(31, 31, 0), i as u8);
    }
    // The file is gzip-tolerant too, and records are 3074 bytes.
    std::fs::write(tmp.path().join("test.bin"), vec![0u8; 3073]).unwrap();
    let msg = data_msg(load("cifar100", tmp.path(), "", 0).unwrap_err());
    assert!(
        msg.contains("test.bin: 3073 bytes is not a whole number of 3074-byte records"),
        "{msg}"
    );
}

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The fixtures' pixels: pixel p of image i is (i * 3072 + p) % 251.
fn fixture_pixels(n: usize) -> Vec<u8> {
    (0..n * 3072).map(|k| (k % 251) as u8).collect()
}

/// The records of [`record`] without their label bytes: CHW planes, as `data` rows.
fn planes(first: usize, n: usize) -> Vec<u8> {
    (first..first + n).flat_map(|i| record(i, &[])).collect()
}

fn write_cifar10_py(dir: &Path, per_batch: usize) {
    for b in 0..6 {
        let name = if b < 5 {
            format!("data_batch_{}", b + 1)
        } else {
            "test_batch".to_string()
        };
        let first = b * per_batch;
        let labels: Vec<i64> = (first..first + per_batch)
            .map(|i| (i % 10) as i64)
            .collect();
        let data = planes(first, per_batch);
        std::fs::write(dir.join(name), cifar_py_batch("labels", &labels, &data)).unwrap();
    }
}

#[test]
fn py2_pickler_writes_what_python2_cpickle_writes() {
    let expected = fixture("cifar10_py2_protocol2.pkl");
    let written = Py2Pickler::dict(&[
        (b"data", Py2::U8Array(&[2, 3072], &fixture_pixels(2))),
        (b"labels", Py2::Ints(&[3, 9])),
        (b"batch_label", Py2::Str(b"training batch 1 of 5")),
        (b"filenames", Py2::Strs(&[b"a.png", b"b.png"])),
    ]);
    assert_eq!(written.len(), expected.len());
    assert!(written == expected, "the pickles differ");
}

#[test]
fn real_python_pickles_of_every_protocol_decode() {
    let cases = [
        ("cifar10_py2_protocol2.pkl", 2, vec![3, 9]),
        ("cifar10_py3_protocol2.pkl", 1, vec![7]),
        ("cifar10_py3_protocol4.pkl", 1, vec![7]),
        ("cifar10_py3_protocol5.pkl", 1, vec![7]),
    ];
    for (name, n, labels) in cases {
        let v = pickle::load(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let Some(Value::Array(a)) = v.get("data") else {
            panic!("{name}: no data array in {v:?}")
        };
        assert_eq!(a.shape, vec![n, 3072], "{name}");
        assert_eq!(a.dtype.as_ref().unwrap().to_string(), "uint8", "{name}");
        assert!(!a.fortran_order, "{name}");
        assert!(*a.data == fixture_pixels(n), "{name}: pixels differ");
        assert_eq!(
            v.get("labels").unwrap().integers().unwrap(),
            labels,
            "{name}"
        );
    }
    // The Python 2 file's other entries: a byte string and a list of them.
    let v = pickle::load(&fixture("cifar10_py2_protocol2.pkl")).unwrap();
    assert_eq!(v.keys(), ["data", "labels", "batch_label", "filenames"]);
    assert_eq!(
        v.get("batch_label").unwrap().text().unwrap(),
        "training batch 1 of 5"
    );
    let Some(Value::List(names)) = v.get("filenames") else {
        panic!("filenames")
    };
    assert_eq!(names[1].text().unwrap(), "b.png");
}

#[test]
fn cifar10_python_version_reads_as_the_binary_one() {
    let bin = tempfile::tempdir().unwrap();
    let py = tempfile::tempdir().unwrap();
    write_cifar10(bin.path(), 8);
    write_cifar10_py(py.path(), 8);
    let names: Vec<Vec<u8>> = (0..10).map(|i| format!("name{i}").into_bytes()).collect();
    let names: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
    std::fs::write(
        py.path().join("batches.meta"),
        Py2Pickler::dict(&[
            (b"num_cases_per_batch", Py2::Ints(&[8])),
            (b"label_names", Py2::Strs(&names)),
        ]),
    )
    .unwrap();
    let extra = "val_size: 10\ntrain_size: 20\ntest_size: 4";
    let a = load("cifar10", bin.path(), extra, 3).unwrap();
    let b = load("cifar10", py.path(), extra, 3).unwrap();
    assert_eq!((b.train.len(), b.val.len(), b.test.len()), (20, 10, 4));
    assert_eq!(
        (b.train.height, b.train.width, b.train.channels),
        (32, 32, 3)
    );
    for (x, y) in [(&a.train, &b.train), (&a.val, &b.val), (&a.test, &b.test)] {
        assert_eq!(x.labels, y.labels);
        assert!(x.images == y.images);
    }
    assert_eq!(
        (a.mean.clone(), a.std.clone()),
        (b.mean.clone(), b.std.clone())
    );
    assert_eq!(b.classes[3], "name3");
    // Pixel (x=5, y=1) of image 13 of the whole training file, HWC.
    let whole = load("cifar10", py.path(), "", 0).unwrap();
    let img = whole.train.image(13);
    assert_eq!(
        (img.at(5, 1, 0), img.at(5, 1, 1), img.at(5, 1, 2)),
        (13, 37, 255 - 13)
    );

    // torchvision's root: the folder holding cifar-10-batches-py.
    let root = tempfile::tempdir().unwrap();
    std::fs::rename(py.path(), root.path().join("cifar-10-batches-py")).unwrap();
    let c = load("cifar10", root.path(), "", 0).unwrap();
    assert_eq!(c.train.labels, whole.train.labels);
    assert!(c.train.images == whole.train.images);
    std::fs::rename(root.path().join("cifar-10-batches-py"), py.path()).unwrap();

    // A folder with neither version names the binary files and both archives.
    let empty = tempfile::tempdir().unwrap();
    let msg = data_msg(load("cifar10", empty.path(), "", 0).unwrap_err());
    assert!(msg.contains("data_batch_1.bin[.gz]: not found"), "{msg}");
    assert!(msg.contains("cifar-10-python.tar.gz"), "{msg}");
}

#[test]
fn cifar100_python_version_batches_of_more_than_1000() {
    let tmp = tempfile::tempdir().unwrap();
    // 1001 training images: labels in a batch of 1000 then a lone APPEND; 1001 filenames
    // memoized past id 255 (LONG_BINPUT).
    let n = 1001;
    let fine: Vec<i64> = (0..n).map(|i| (i * 7 % 100) as i64).collect();
    let coarse: Vec<i64> = (0..n).map(|i| (i % 20) as i64).collect();
    let data = planes(0, n);
    let names: Vec<Vec<u8>> = (0..n).map(|i| format!("f{i}.png").into_bytes()).collect();
    let names: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
    let train = Py2Pickler::dict(&[
        (b"filenames", Py2::Strs(&names)),
        (b"batch_label", Py2::Str(b"training batch 1 of 1")),
        (b"fine_labels", Py2::Ints(&fine)),
        (b"coarse_labels", Py2::Ints(&coarse)),
        (b"data", Py2::U8Array(&[n, 3072], &data)),
    ]);
    assert!(
        train.windows(5).any(|w| w == [b'r', 0, 1, 0, 0]),
        "no LONG_BINPUT 256"
    );
    std::fs::write(tmp.path().join("train"), &train).unwrap();
    std::fs::write(
        tmp.path().join("test"),
        cifar_py_batch("fine_labels", &fine[..12], &planes(0, 12)),
    )
    .unwrap();
    let ds = load("cifar100", tmp.path(), "val_size: 1", 0).unwrap();
    assert_eq!((ds.train.len(), ds.val.len(), ds.test.len()), (1000, 1, 12));
    assert_eq!(ds.classes[99], "worm");
    let whole = load("cifar100", tmp.path(), "", 0).unwrap();
    assert_eq!(whole.train.labels, fine);
    assert_eq!(whole.train.image(1000).at(31, 31, 0), (1000 % 256) as u8);
    assert_eq!(whole.test.labels, &fine[..12]);

    // CIFAR-100's labels are `fine_labels`: a CIFAR-10-style batch is named as such.
    std::fs::write(
        tmp.path().join("test"),
        cifar_py_batch("labels", &[1, 2], &planes(0, 2)),
    )
    .unwrap();
    let msg = data_msg(load("cifar100", tmp.path(), "", 0).unwrap_err());
    assert!(msg.contains("/test: no `fine_labels` entry; the dict has [\"data\", \"labels\", \"batch_label\", \"filenames\"]"), "{msg}");
}

#[test]
fn cifar_python_version_errors_name_file_and_fault() {
    let tmp = tempfile::tempdir().unwrap();
    write_cifar10_py(tmp.path(), 2);
    let p = tmp.path().join("data_batch_2");
    let err = |bytes: Vec<u8>| {
        std::fs::write(&p, bytes).unwrap();
        data_msg(load("cifar10", tmp.path(), "", 0).unwrap_err())
    };
    let good = std::fs::read(&p).unwrap();

    let msg = err(good[..good.len() / 2].to_vec());
    assert!(msg.contains("data_batch_2: pickle byte "), "{msg}");
    assert!(
        msg.contains("truncated: the opcode needs 6144 more bytes"),
        "{msg}"
    );

    let msg = err(cifar_py_batch("labels", &[1, 10], &planes(0, 2)));
    assert!(
        msg.contains(
            "data_batch_2: label 10 of image 1 is out of range (the dataset has 10 classes)"
        ),
        "{msg}"
    );

    let msg = err(Py2Pickler::dict(&[
        (b"data", Py2::U8Array(&[2, 3072], &planes(0, 2))),
        (b"labels", Py2::Ints(&[1, 2, 3])),
    ]));
    assert!(
        msg.contains("data_batch_2: `labels` has 3 labels, but `data` holds 2 images"),
        "{msg}"
    );

    let msg = err(Py2Pickler::dict(&[
        (b"data", Py2::U8Array(&[2, 1024, 3], &planes(0, 2))),
        (b"labels", Py2::Ints(&[1, 2])),
    ]));
    assert!(msg.contains("data_batch_2: `data` is a uint8 array of shape [2, 1024, 3], expected a row-major uint8 array of shape [N, 3072]"), "{msg}");

    let msg = err(Py2Pickler::dict(&[(b"labels", Py2::Ints(&[1, 2]))]));
    assert!(
        msg.contains("data_batch_2: no `data` entry; the dict has [\"labels\"]"),
        "{msg}"
    );

    // A pickle calling anything but numpy's reconstruction is refused, not run.
    let msg = err(b"\x80\x02cos\nsystem\nq\x01U\x02lsq\x02\x85R.".to_vec());
    assert!(
        msg.contains("data_batch_2: pickle byte 2: unsupported global `os.system`"),
        "{msg}"
    );
}
