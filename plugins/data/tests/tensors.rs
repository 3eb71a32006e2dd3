//! `tensors` on small safetensors files written here.

mod common;

use common::*;
use safetensors::tensor::TensorView;
use safetensors::Dtype;
use std::path::Path;

/// `n` images of `h`x`w`x`c` whose first byte is the image's index and the rest a pattern.
fn pixels(n: usize, h: usize, w: usize, c: usize) -> Vec<u8> {
    let size = h * w * c;
    (0..n * size)
        .map(|k| {
            if k % size == 0 {
                (k / size) as u8
            } else {
                (k * 31 % 256) as u8
            }
        })
        .collect()
}

fn le_bytes(labels: &[i64]) -> Vec<u8> {
    labels.iter().flat_map(|l| l.to_le_bytes()).collect()
}

/// Writes a safetensors file of the given tensors: (name, dtype, shape, data).
fn write(path: &Path, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(name, dt, shape, data)| {
            (
                name.to_string(),
                TensorView::new(*dt, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, &None, path).unwrap();
}

/// Writes a valid file of `n` 3x2x`c` images labelled `i % classes`.
fn write_set(path: &Path, n: usize, c: usize, classes: i64) -> Vec<i64> {
    let labels: Vec<i64> = (0..n as i64).map(|i| i % classes).collect();
    write(
        path,
        &[
            ("images", Dtype::U8, vec![n, 3, 2, c], pixels(n, 3, 2, c)),
            ("labels", Dtype::I64, vec![n], le_bytes(&labels)),
            ("extra", Dtype::F32, vec![1], vec![0; 4]),
        ],
    );
    labels
}

#[test]
fn train_and_test_files_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let train_labels = write_set(&tmp.path().join("train.safetensors"), 12, 3, 4);
    let test_labels = write_set(&tmp.path().join("test.safetensors"), 5, 3, 4);
    let ds = load("tensors", tmp.path(), "", 0).unwrap();
    assert_eq!(ds.name, "tensors");
    assert_eq!((ds.train.len(), ds.val.len(), ds.test.len()), (12, 0, 5));
    assert_eq!(
        (ds.train.height, ds.train.width, ds.train.channels),
        (3, 2, 3)
    );
    assert_eq!(ds.train.labels, train_labels);
    assert_eq!(ds.test.labels, test_labels);
    assert!(ds.train.images == pixels(12, 3, 2, 3));
    assert!(ds.test.images == pixels(5, 3, 2, 3));
    // By default the classes are 0..=max label, named by number.
    assert_eq!(ds.classes, ["0", "1", "2", "3"]);

    let named = load(
        "tensors",
        tmp.path(),
        "classes: [a, b, c, d, e]\nval_size: 2\ntrain_size: 6\ntest_size: 3",
        4,
    )
    .unwrap();
    assert_eq!(named.classes, ["a", "b", "c", "d", "e"]);
    assert_eq!(
        (named.train.len(), named.val.len(), named.test.len()),
        (6, 2, 3)
    );
    // Images keep their labels through the split (first byte = index in the file).
    for s in [&named.train, &named.val] {
        for i in 0..s.len() {
            let index = s.image(i).data[0] as i64;
            assert_eq!(s.labels[i], index % 4);
        }
    }
    let normalize = "normalize: {mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]}";
    let n = load("tensors", tmp.path(), normalize, 0).unwrap();
    assert_eq!((n.mean[0], n.std[2]), (0.5, 0.25));
}

#[test]
fn one_file_holds_out_a_fixed_test_split() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("all.safetensors");
    write_set(&file, 20, 1, 5);
    let (path, msg) = config_err(load("tensors", &file, "", 0).unwrap_err());
    assert_eq!(path, "test_size");
    assert!(msg.contains("required: there is no test file"), "{msg}");
    let (path, msg) = config_err(load("tensors", &file, "test_size: 20", 0).unwrap_err());
    assert_eq!(path, "test_size");
    assert!(msg.contains("leaves no training images"), "{msg}");

    let extra = "test_size: 5\nval_size: 3\nnum_classes: 5";
    let a = load("tensors", &file, extra, 1).unwrap();
    let b = load("tensors", &file, extra, 2).unwrap();
    assert_eq!((a.train.len(), a.val.len(), a.test.len()), (12, 3, 5));
    assert_eq!(a.train.channels, 1);
    assert!(a.test.images == b.test.images);
    let index = |s: &rolekd_core::plugin::data::DataSplit| -> Vec<u8> {
        (0..s.len()).map(|i| s.image(i).data[0]).collect()
    };
    assert_ne!(index(&a.val), index(&b.val));
    // Train, validation and test partition the file.
    let mut all: Vec<u8> = [index(&a.train), index(&a.val), index(&a.test)].concat();
    all.sort_unstable();
    assert_eq!(all, (0..20).collect::<Vec<u8>>());
}

#[test]
fn errors_name_the_file_and_the_fault() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("d.safetensors");
    let img = |n: usize| ("images", Dtype::U8, vec![n, 2, 2, 1], vec![0u8; n * 4]);
    let lbl = |labels: &[i64]| ("labels", Dtype::I64, vec![labels.len()], le_bytes(labels));
    let err = |tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)], extra: &str| {
        write(&f, tensors);
        data_msg(load("tensors", &f, &format!("test_size: 1\n{extra}"), 0).unwrap_err())
    };

    let msg = err(&[img(2)], "");
    assert!(
        msg.contains("d.safetensors: no tensor `labels`; the file holds [\"images\"]"),
        "{msg}"
    );
    let msg = err(
        &[
            ("images", Dtype::F32, vec![2, 2, 2, 1], vec![0; 32]),
            lbl(&[0, 1]),
        ],
        "",
    );
    assert!(
        msg.contains("d.safetensors: `images` is F32, expected U8 (uint8 pixels)"),
        "{msg}"
    );
    let msg = err(&[img(2), ("labels", Dtype::I32, vec![2], vec![0; 8])], "");
    assert!(
        msg.contains("d.safetensors: `labels` is I32, expected I64 (int64 class ids)"),
        "{msg}"
    );
    let msg = err(
        &[
            ("images", Dtype::U8, vec![2, 4, 1], vec![0; 8]),
            lbl(&[0, 1]),
        ],
        "",
    );
    assert!(
        msg.contains("d.safetensors: `images` has shape [2, 4, 1], expected [N, H, W, C]"),
        "{msg}"
    );
    let msg = err(&[img(2), lbl(&[0, 1, 1])], "");
    assert!(
        msg.contains("d.safetensors: `labels` has shape [3], expected [2] (one per image)"),
        "{msg}"
    );
    let msg = err(&[img(3), lbl(&[0, 7, 1])], "num_classes: 5");
    assert!(
        msg.contains("d.safetensors: label 7 at index 1 is out of range 0..5 (num_classes)"),
        "{msg}"
    );
    let msg = err(&[img(3), lbl(&[0, 1, -1])], "");
    assert!(
        msg.contains(
            "d.safetensors: label -1 at index 2 is out of range 0..2 (labels must not be negative)"
        ),
        "{msg}"
    );

    std::fs::write(&f, b"definitely not safetensors").unwrap();
    let msg = data_msg(load("tensors", &f, "test_size: 1", 0).unwrap_err());
    assert!(
        msg.contains("d.safetensors: not a valid safetensors file"),
        "{msg}"
    );

    // Train and test must hold images of one shape.
    let dir = tempfile::tempdir().unwrap();
    write_set(&dir.path().join("train.safetensors"), 4, 3, 2);
    write_set(&dir.path().join("test.safetensors"), 4, 1, 2);
    let msg = data_msg(load("tensors", dir.path(), "", 0).unwrap_err());
    assert!(
        msg.contains("test.safetensors: images are [H, W, C] = [3, 2, 1], but "),
        "{msg}"
    );
    assert!(msg.contains("train.safetensors holds [3, 2, 3]"), "{msg}");
    // A folder without train.safetensors.
    let empty = tempfile::tempdir().unwrap();
    let msg = data_msg(load("tensors", empty.path(), "", 0).unwrap_err());
    assert!(
        msg.contains("train.safetensors: not found; expected a .safetensors file"),
        "{msg}"
    );

    // Params.
    let (path, msg) =
        config_err(load("tensors", dir.path(), "classes: [a, b]\nnum_classes: 3", 0).unwrap_err());
    assert_eq!(path, "num_classes");
    assert!(msg.contains("3, but `classes` lists 2 names"), "{msg}");
}
