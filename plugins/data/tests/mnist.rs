//! The IDX datasets: the real Fashion-MNIST, and small files written here in IDX format.

mod common;

use common::*;
use rolekd_core::Error;
use rolekd_data::idx;
use std::collections::BTreeSet;

#[test]
fn real_fashion_mnist_shapes_labels_and_stats() {
    let dir = std::env::var("ROLEKD_FASHION_MNIST")
        .unwrap_or_else(|_| "/usr/share/datasets/fashion-mnist".into());
    let ds = load("fashion-mnist", dir.as_ref(), "", 0).unwrap();
    assert_eq!(ds.name, "fashion-mnist");
    assert_eq!(ds.train.len(), 60000);
    assert_eq!(ds.test.len(), 10000);
    assert!(ds.val.is_empty());
    for s in [&ds.train, &ds.test] {
        assert_eq!((s.height, s.width, s.channels), (28, 28, 1));
        assert_eq!(s.images.len(), s.len() * 784);
        assert!(s.labels.iter().all(|&l| (0..10).contains(&l)));
    }
    // Without a split, file order is kept: the first labels of each file.
    assert_eq!(&ds.train.labels[..10], &[9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
    assert_eq!(&ds.test.labels[..10], &[9, 2, 1, 1, 6, 1, 4, 6, 5, 7]);
    // Balanced classes: 6000 / 1000 each.
    for c in 0..10 {
        assert_eq!(ds.train.labels.iter().filter(|&&l| l == c).count(), 6000);
        assert_eq!(ds.test.labels.iter().filter(|&&l| l == c).count(), 1000);
    }
    assert_eq!(ds.classes.len(), 10);
    assert_eq!(ds.classes[0], "T-shirt/top");
    assert_eq!(ds.classes[9], "Ankle boot");
    // numpy over the training file, pixel/255: mean 0.28604060, std 0.35302424.
    assert!((ds.mean[0] - 0.286_040_6).abs() < 1e-6, "{:?}", ds.mean);
    assert!((ds.std[0] - 0.353_024_2).abs() < 1e-6, "{:?}", ds.std);
}

#[test]
fn real_fashion_mnist_split_is_seeded() {
    let dir = std::env::var("ROLEKD_FASHION_MNIST")
        .unwrap_or_else(|_| "/usr/share/datasets/fashion-mnist".into());
    let extra = "val_size: 5000\ntrain_size: 10000\ntest_size: 2000";
    let a = load("fashion-mnist", dir.as_ref(), extra, 7).unwrap();
    let b = load("fashion-mnist", dir.as_ref(), extra, 7).unwrap();
    let c = load("fashion-mnist", dir.as_ref(), extra, 8).unwrap();
    assert_eq!(
        (a.train.len(), a.val.len(), a.test.len()),
        (10000, 5000, 2000)
    );
    assert_eq!(a.train.images, b.train.images);
    assert_eq!(a.val.labels, b.val.labels);
    assert_ne!(a.train.images, c.train.images);
    // The test subset does not depend on the seed.
    assert_eq!(a.test.images, c.test.images);
    // Normalisation comes from the training split actually used.
    assert!((a.mean[0] - 0.286).abs() < 0.01 && (a.std[0] - 0.353).abs() < 0.01);
}

#[test]
fn split_is_deterministic_disjoint_and_sized() {
    let tmp = tempfile::tempdir().unwrap();
    write_mnist_dir(tmp.path(), 500, 200, false);
    let extra = "val_size: 100\ntrain_size: 300\ntest_size: 50";
    let a = load("mnist", tmp.path(), extra, 1).unwrap();
    let b = load("mnist", tmp.path(), extra, 1).unwrap();
    let c = load("mnist", tmp.path(), extra, 2).unwrap();
    let (ta, va, sa) = (indices(&a.train), indices(&a.val), indices(&a.test));
    assert_eq!((ta.len(), va.len(), sa.len()), (300, 100, 50));
    assert_eq!(ta, indices(&b.train));
    assert_eq!(va, indices(&b.val));
    assert_ne!(ta, indices(&c.train));
    assert_ne!(va, indices(&c.val));
    // Disjoint, from the right files, in file order, labels travel with images.
    let tset: BTreeSet<_> = ta.iter().collect();
    assert!(va.iter().all(|i| !tset.contains(i)));
    assert!(ta.windows(2).all(|w| w[0] < w[1]));
    assert!(va.windows(2).all(|w| w[0] < w[1]));
    assert!(a.train.images.chunks(16).all(|im| im[2] == 1));
    assert!(a.test.images.chunks(16).all(|im| im[2] == 2));
    for (i, &l) in ta.iter().zip(&a.train.labels) {
        assert_eq!(l, (*i % 10) as i64);
    }
    // The validation split does not move when train_size changes.
    let d = load("mnist", tmp.path(), "val_size: 100\ntrain_size: 50", 1).unwrap();
    assert_eq!(indices(&d.val), va);
    assert!(indices(&d.train).iter().all(|i| tset.contains(i)));
    // Defaults: all the rest for training, the whole test file.
    let e = load("mnist", tmp.path(), "val_size: 100", 1).unwrap();
    assert_eq!((e.train.len(), e.val.len(), e.test.len()), (400, 100, 200));
    let all: BTreeSet<_> = indices(&e.train)
        .into_iter()
        .chain(indices(&e.val))
        .collect();
    assert_eq!(all.len(), 500);
}

#[test]
fn gz_and_raw_give_the_same_dataset() {
    let raw = tempfile::tempdir().unwrap();
    let gz = tempfile::tempdir().unwrap();
    write_mnist_dir(raw.path(), 120, 30, false);
    write_mnist_dir(gz.path(), 120, 30, true);
    assert!(gz.path().join("train-images-idx3-ubyte.gz").exists());
    let a = load("mnist", raw.path(), "val_size: 20", 3).unwrap();
    let b = load("mnist", gz.path(), "val_size: 20", 3).unwrap();
    assert_eq!(a.train.images, b.train.images);
    assert_eq!(a.val.labels, b.val.labels);
    assert_eq!(a.test.images, b.test.images);
    assert_eq!(a.mean, b.mean);
    // Gzip is detected by its magic, not the name: a gzipped file without `.gz` loads.
    let (images, _) = synthetic(120, 4, 1);
    std::fs::remove_file(raw.path().join("train-images-idx3-ubyte")).unwrap();
    std::fs::write(
        raw.path().join("train-images-idx3-ubyte"),
        gzip(&idx::encode(&[120, 4, 4], &images)),
    )
    .unwrap();
    let c = load("mnist", raw.path(), "val_size: 20", 3).unwrap();
    assert_eq!(a.train.images, c.train.images);
}

#[test]
fn missing_files_say_how_to_get_them() {
    let tmp = tempfile::tempdir().unwrap();
    let msg = data_msg(load("fashion-mnist", tmp.path(), "", 0).unwrap_err());
    assert!(
        msg.contains("train-images-idx3-ubyte[.gz]: not found"),
        "{msg}"
    );
    assert!(
        msg.contains("install Debian's dataset-fashion-mnist or set path"),
        "{msg}"
    );
    let msg = data_msg(load("mnist", tmp.path(), "", 0).unwrap_err());
    assert!(
        msg.contains("not found") && msg.contains("$ROLEKD_MNIST"),
        "{msg}"
    );
}

#[test]
fn truncated_files_report_expected_and_actual_bytes() {
    for gz in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        write_mnist_dir(tmp.path(), 50, 10, gz);
        let (images, _) = synthetic(50, 4, 1);
        let full = idx::encode(&[50, 4, 4], &images);
        write(
            tmp.path(),
            "train-images-idx3-ubyte",
            &full[..full.len() - 5],
            gz,
        );
        let msg = data_msg(load("mnist", tmp.path(), "", 0).unwrap_err());
        assert!(msg.contains("train-images-idx3-ubyte"), "{msg}");
        assert!(
            msg.contains("truncated: expected 816 bytes (16-byte header + 50x4x4 data), found 811"),
            "{msg}"
        );
    }
    // A cut gzip stream.
    let tmp = tempfile::tempdir().unwrap();
    write_mnist_dir(tmp.path(), 50, 10, true);
    let p = tmp.path().join("t10k-labels-idx1-ubyte.gz");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    let msg = data_msg(load("mnist", tmp.path(), "", 0).unwrap_err());
    assert!(
        msg.contains("t10k-labels-idx1-ubyte.gz: corrupt gzip stream"),
        "{msg}"
    );
}

#[test]
fn bad_magic_counts_and_labels_are_reported() {
    let tmp = tempfile::tempdir().unwrap();
    write_mnist_dir(tmp.path(), 50, 10, false);
    // Labels where images should be.
    let lbl = idx::encode(&[50], &[0; 50]);
    write(tmp.path(), "train-images-idx3-ubyte", &lbl, false);
    let msg = data_msg(load("mnist", tmp.path(), "", 0).unwrap_err());
    assert!(
        msg.contains(
            "train-images-idx3-ubyte: bad magic 0x00000801, expected 0x00000803 (IDX uint8 images)"
        ),
        "{msg}"
    );

    write_mnist_dir(tmp.path(), 50, 10, false);
    write(
        tmp.path(),
        "t10k-labels-idx1-ubyte",
        &idx::encode(&[9], &[0; 9]),
        false,
    );
    let msg = data_msg(load("mnist", tmp.path(), "", 0).unwrap_err());
    assert!(
        msg.contains("t10k-labels-idx1-ubyte: 9 labels, but"),
        "{msg}"
    );
    assert!(
        msg.contains("t10k-images-idx3-ubyte holds 10 images"),
        "{msg}"
    );

    let mut labels = vec![1u8; 10];
    labels[4] = 10;
    write(
        tmp.path(),
        "t10k-labels-idx1-ubyte",
        &idx::encode(&[10], &labels),
        false,
    );
    let msg = data_msg(load("mnist", tmp.path(), "", 0).unwrap_err());
    assert!(
        msg.contains("t10k-labels-idx1-ubyte: label 10 at index 4 is out of range (the dataset has 10 classes)"),
        "{msg}"
    );
}

#[test]
fn bad_params_are_located() {
    let tmp = tempfile::tempdir().unwrap();
    write_mnist_dir(tmp.path(), 50, 10, false);
    let cases = [
        ("val_size: 50", "val_size"),
        ("val_size: 10\ntrain_size: 41", "train_size"),
        ("train_size: 0", "train_size"),
        ("test_size: 11", "test_size"),
        (
            "normalize: {mean: [0.5, 0.5], std: [0.2]}",
            "normalize.mean",
        ),
        ("normalize: {mean: [0.5], std: [0]}", "normalize.std"),
        ("trian_size: 10", "trian_size"),
    ];
    for (extra, path) in cases {
        match load("mnist", tmp.path(), extra, 0).unwrap_err() {
            Error::Config(e) => assert_eq!(e.path, path, "{extra}: {e}"),
            other => panic!("{extra}: expected a config error, got {other}"),
        }
    }
    let ds = load(
        "mnist",
        tmp.path(),
        "normalize: {mean: [0.5], std: [0.25]}",
        0,
    )
    .unwrap();
    assert_eq!((ds.mean.clone(), ds.std.clone()), (vec![0.5], vec![0.25]));
}
