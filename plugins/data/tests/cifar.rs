//! CIFAR loaders on small files written here in the CIFAR binary format.

mod common;

use common::*;
use rolekd_core::Error;
use std::path::Path;

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

fn data_msg(e: Error) -> String {
    match e {
        Error::Data(m) => m,
        other => panic!("expected a data error, got {other:?}"),
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
