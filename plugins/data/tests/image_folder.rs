//! `image-folder` on small PNG, BMP and JPEG files written here.

mod common;

use common::*;
use image::{GrayImage, RgbImage};
use std::path::Path;

/// A `w`x`h` RGB image whose pixel (x, y) is (tag, 10x + y, 255 - tag).
fn rgb(w: u32, h: u32, tag: u8) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([tag, (10 * x + y) as u8, 255 - tag])
    })
}

fn save_rgb(path: &Path, img: &RgbImage) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    img.save(path).unwrap();
}

/// train/{cat,dog} and test/{cat,dog} of 4x3 images; the tag of each image is its
/// position: train cat 1, 2 (PNG), dog 3 (BMP), 4 (PNG, in a subfolder); test cat 5, dog 6.
fn write_tree(root: &Path) {
    save_rgb(&root.join("train/cat/a.png"), &rgb(4, 3, 1));
    save_rgb(&root.join("train/cat/b.PNG"), &rgb(4, 3, 2));
    save_rgb(&root.join("train/dog/c.bmp"), &rgb(4, 3, 3));
    save_rgb(&root.join("train/dog/more/d.png"), &rgb(4, 3, 4));
    save_rgb(&root.join("test/cat/e.png"), &rgb(4, 3, 5));
    save_rgb(&root.join("test/dog/f.png"), &rgb(4, 3, 6));
    // Skipped: other files, hidden files and folders.
    std::fs::write(root.join("train/cat/notes.txt"), "not an image").unwrap();
    std::fs::write(root.join("train/dog/.hidden.png"), "not an image").unwrap();
    std::fs::create_dir_all(root.join("train/.cache")).unwrap();
}

#[test]
fn train_and_test_folders_round_trip_pixels() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path());
    let ds = load("image-folder", tmp.path(), "", 0).unwrap();
    assert_eq!(ds.name, "image-folder");
    assert_eq!(ds.classes, ["cat", "dog"]);
    assert_eq!((ds.train.len(), ds.val.len(), ds.test.len()), (4, 0, 2));
    assert_eq!(
        (ds.train.height, ds.train.width, ds.train.channels),
        (3, 4, 3)
    );
    assert_eq!(ds.train.labels, [0, 0, 1, 1]);
    assert_eq!(ds.test.labels, [0, 1]);
    for (split, tags) in [(&ds.train, vec![1, 2, 3, 4]), (&ds.test, vec![5, 6])] {
        for (i, tag) in tags.into_iter().enumerate() {
            let want = rgb(4, 3, tag).into_raw();
            assert_eq!(split.image(i).data, want, "image {i} tag {tag}");
        }
    }
    // Normalisation from the training split: red is 1..4, mean 2.5/255.
    assert!((ds.mean[0] - 2.5 / 255.0).abs() < 1e-6, "{:?}", ds.mean);

    // Grey, and the shared split params.
    let g = load(
        "image-folder",
        tmp.path(),
        "channels: 1\nval_size: 1\ntest_size: 1",
        0,
    )
    .unwrap();
    assert_eq!((g.train.len(), g.val.len(), g.test.len()), (3, 1, 1));
    assert_eq!(g.train.channels, 1);
    assert_eq!(g.train.images.len(), 3 * 12);
    // Pillow's grey of (1, 10x + y, 254): (19595 + 38470 (10x + y) + 7471 * 254 + 0x8000) >> 16.
    let grey = load("image-folder", tmp.path(), "channels: 1", 0).unwrap();
    for (i, tag) in [(0, 1u32), (3, 4)] {
        let im = grey.train.image(i);
        for (x, y) in [(0u32, 0u32), (3, 2), (1, 1)] {
            let want = (19595 * tag + 38470 * (10 * x + y) + 7471 * (255 - tag) + 0x8000) >> 16;
            assert_eq!(
                im.at(x as usize, y as usize, 0) as u32,
                want,
                "image {i} at ({x}, {y})"
            );
        }
    }
}

#[test]
fn class_folders_without_test_hold_out_test_size() {
    let tmp = tempfile::tempdir().unwrap();
    for c in 0..3u8 {
        for i in 0..5u8 {
            let img = GrayImage::from_fn(2, 2, |x, y| {
                image::Luma([c * 50 + i * 5 + (x + 2 * y) as u8])
            });
            let p = tmp.path().join(format!("class{c}/{i}.png"));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            img.save(&p).unwrap();
        }
    }
    let (path, msg) = config_err(load("image-folder", tmp.path(), "channels: 1", 0).unwrap_err());
    assert_eq!(path, "test_size");
    assert!(msg.contains("required: there is no"), "{msg}");
    assert!(msg.contains("test folder"), "{msg}");

    let extra = "channels: 1\ntest_size: 4\nval_size: 2";
    let a = load("image-folder", tmp.path(), extra, 1).unwrap();
    let b = load("image-folder", tmp.path(), extra, 2).unwrap();
    assert_eq!((a.train.len(), a.val.len(), a.test.len()), (9, 2, 4));
    assert_eq!(a.classes, ["class0", "class1", "class2"]);
    // The held-out test split is the same for every seed; validation moves with it.
    assert!(a.test.images == b.test.images);
    assert_eq!(a.test.labels, b.test.labels);
    assert!(a.val.images != b.val.images || a.train.images != b.train.images);
    // Every image's label matches its pixels (class c's pixels lie in 50c..50c+24).
    for s in [&a.train, &a.val, &a.test] {
        for i in 0..s.len() {
            assert_eq!(s.image(i).data[0] as i64 / 50, s.labels[i]);
        }
    }
}

#[test]
fn letterbox_pads_with_the_training_mean_and_stretch_fills() {
    let tmp = tempfile::tempdir().unwrap();
    // A flat 8x4 (wide) and a flat 2x4 (tall) training image, a 4x4 JPEG to test.
    let flat = |w, h, v: [u8; 3]| RgbImage::from_pixel(w, h, image::Rgb(v));
    save_rgb(
        &tmp.path().join("train/a/wide.png"),
        &flat(8, 4, [200, 100, 0]),
    );
    save_rgb(
        &tmp.path().join("train/b/tall.png"),
        &flat(2, 4, [0, 40, 80]),
    );
    save_rgb(
        &tmp.path().join("test/b/square.jpg"),
        &flat(4, 4, [90, 90, 90]),
    );

    // Without size, the sizes must agree.
    let msg = data_msg(load("image-folder", tmp.path(), "", 0).unwrap_err());
    assert!(
        msg.contains("train/b/tall.png: 2x4 pixels (width x height), but "),
        "{msg}"
    );
    assert!(
        msg.contains("train/a/wide.png is 8x4; set size: [H, W]"),
        "{msg}"
    );

    let ds = load("image-folder", tmp.path(), "size: [4, 4]", 0).unwrap();
    assert_eq!((ds.train.height, ds.train.width), (4, 4));
    let (wide, tall, square) = (ds.train.image(0), ds.train.image(1), ds.test.image(0));
    // The mean of the covered training pixels: 8 of (200, 100, 0), 8 of (0, 40, 80).
    let fill = [100, 70, 40];
    let px = |im: &rolekd_core::plugin::image::Image, x, y| -> [u8; 3] {
        [im.at(x, y, 0), im.at(x, y, 1), im.at(x, y, 2)]
    };
    // The wide image is scaled to 4x2 and fills rows 1 and 2.
    for x in 0..4 {
        assert_eq!(px(&wide, x, 0), fill);
        assert_eq!(px(&wide, x, 1), [200, 100, 0]);
        assert_eq!(px(&wide, x, 2), [200, 100, 0]);
        assert_eq!(px(&wide, x, 3), fill);
    }
    // The tall one keeps its 2x4 and fills columns 1 and 2.
    for y in 0..4 {
        assert_eq!(px(&tall, 0, y), fill);
        assert_eq!(px(&tall, 1, y), [0, 40, 80]);
        assert_eq!(px(&tall, 2, y), [0, 40, 80]);
        assert_eq!(px(&tall, 3, y), fill);
    }
    // The JPEG is 4x4 already: no padding, about its colour everywhere.
    for (x, y) in [(0, 0), (3, 3), (1, 2)] {
        assert!(
            px(&square, x, y).iter().all(|&v| v.abs_diff(90) <= 2),
            "{:?}",
            px(&square, x, y)
        );
    }

    // Stretch: no padding, every pixel is the image's own colour.
    let s = load("image-folder", tmp.path(), "size: [4, 4]\nfit: stretch", 0).unwrap();
    let (wide, tall) = (s.train.image(0), s.train.image(1));
    for x in 0..4 {
        for y in 0..4 {
            assert_eq!(px(&wide, x, y), [200, 100, 0]);
            assert_eq!(px(&tall, x, y), [0, 40, 80]);
        }
    }
}

#[test]
fn errors_name_the_file_and_the_fault() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path());
    let root = tmp.path();

    // An unreadable image.
    std::fs::write(root.join("train/dog/broken.png"), b"not a png").unwrap();
    let msg = data_msg(load("image-folder", root, "", 0).unwrap_err());
    assert!(
        msg.contains("train/dog/broken.png: cannot decode image"),
        "{msg}"
    );
    std::fs::remove_file(root.join("train/dog/broken.png")).unwrap();

    // An empty class folder (only a non-image file).
    std::fs::create_dir_all(root.join("train/emu")).unwrap();
    std::fs::write(root.join("train/emu/readme.txt"), "x").unwrap();
    let msg = data_msg(load("image-folder", root, "", 0).unwrap_err());
    assert!(
        msg.contains("train/emu: empty class folder: no png/jpg/jpeg/bmp images"),
        "{msg}"
    );
    std::fs::remove_dir_all(root.join("train/emu")).unwrap();

    // A test class that training does not have.
    save_rgb(&root.join("test/fox/g.png"), &rgb(4, 3, 7));
    let msg = data_msg(load("image-folder", root, "", 0).unwrap_err());
    assert!(
        msg.contains("test/fox: class `fox` is not among the training classes [\"cat\", \"dog\"]"),
        "{msg}"
    );
    std::fs::remove_dir_all(root.join("test/fox")).unwrap();

    // Mixed sizes between train and test.
    save_rgb(&root.join("test/dog/f.png"), &rgb(5, 3, 6));
    let msg = data_msg(load("image-folder", root, "", 0).unwrap_err());
    assert!(
        msg.contains("test/dog/f.png: 5x3 pixels (width x height), but "),
        "{msg}"
    );
    assert!(msg.contains("train/cat/a.png is 4x3"), "{msg}");

    // No images at all: no class folders.
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(empty.path().join("train")).unwrap();
    let msg = data_msg(load("image-folder", empty.path(), "", 0).unwrap_err());
    assert!(msg.contains("train: no class folders; expected one subfolder per class holding png/jpg/jpeg/bmp images"), "{msg}");
    let msg = data_msg(load("image-folder", &empty.path().join("nowhere"), "", 0).unwrap_err());
    assert!(msg.contains("nowhere: not found, or not a folder"), "{msg}");

    // Params.
    for (extra, path, what) in [
        ("channels: 2", "channels", "must be 1 or 3, found 2"),
        ("size: [0, 4]", "size", "both sides must be at least 1"),
        ("fit: crop", "fit", "unknown variant `crop`"),
        (
            "sise: [4, 4]",
            "sise",
            "or one of `path`, `train_size`, `val_size`, `test_size`, `normalize`",
        ),
    ] {
        let (p, msg) = config_err(load("image-folder", root, extra, 0).unwrap_err());
        assert_eq!(p, path, "{extra}: {msg}");
        assert!(msg.contains(what), "{extra}: {msg}");
    }
    rolekd_data::link();
    let f = rolekd_core::registry::dataset("image-folder").unwrap();
    let params = rolekd_core::config::Params::from_yaml("channels: 3").unwrap();
    let (p, msg) = config_err(f(&params, rolekd_core::rng::Seed(0)).unwrap_err());
    assert_eq!(p, "path");
    assert!(msg.starts_with("required"), "{msg}");
}
