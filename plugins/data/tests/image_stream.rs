//! `image-stream` on small trees the tests write: ImageNet's layouts, random image sizes,
//! JPEG and PNG, an unreadable file; per-view crops from the per-image streams; the same
//! pixels as the in-memory `image-folder` where no crop is drawn.

mod common;

use common::params;
use rolekd_core::plugin::data::Dataset;
use rolekd_core::rng::{Seed, StreamRng};
use rolekd_data::stream::build_image_stream;
use std::path::Path;

/// A smooth picture (so JPEG keeps it) that differs by `k`.
fn picture(w: u32, h: u32, k: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            ((x * 255 / w + k * 40) % 256) as u8,
            ((y * 255 / h + k * 17) % 256) as u8,
            ((x + y + k * 9) % 256) as u8,
        ])
    })
}

fn save(path: &Path, img: &image::RgbImage, jpeg: bool) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    if jpeg {
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(img)
            .unwrap();
        std::fs::write(path, out).unwrap();
    } else {
        img.save_with_format(path, image::ImageFormat::Png).unwrap();
    }
}

/// `root/<split>/<class>/` with `per_class` images of random sizes (40..90), JPEG and PNG
/// alternating (the PNGs named `.JPEG`, as ImageNet has one).
fn write_tree(root: &Path, split: &str, classes: usize, per_class: usize) {
    for c in 0..classes {
        for i in 0..per_class {
            let k = (c * per_class + i) as u32;
            let (w, h) = (40 + (k * 37) % 50, 40 + (k * 23) % 50);
            let path = root.join(format!("{split}/n0{c}/img_{i}.JPEG"));
            save(&path, &picture(w, h, k), i % 2 == 0);
        }
    }
}

fn rngs(seed: u64, views: usize) -> Vec<StreamRng> {
    (0..views)
        .map(|v| Seed(seed).index(v as u64).rng())
        .collect()
}

fn stream(root: &Path, extra: &str) -> Dataset {
    build_image_stream(&params(root, extra), Seed(1)).unwrap()
}

#[test]
fn the_imagenet_layout_streams_crops_of_the_set_size() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), "train", 3, 5);
    write_tree(dir.path(), "val", 3, 2);
    let d = stream(dir.path(), "size: 32");
    assert_eq!(d.classes, ["n00", "n01", "n02"]);
    assert_eq!((d.train.len(), d.val.len(), d.test.len()), (15, 0, 6));
    assert!(d.train.is_streamed() && d.train.images.is_empty());
    assert_eq!(
        (d.train.height, d.train.width, d.train.channels),
        (32, 32, 3)
    );
    assert_eq!(
        d.mean,
        [0.485, 0.456, 0.406],
        "ImageNet's normalisation by default"
    );
    for i in 0..d.train.len() {
        let views = d
            .train
            .fetch(i, &mut rngs(i as u64, 2), true)
            .unwrap()
            .unwrap();
        assert_eq!(views.len(), 2);
        assert!(views
            .iter()
            .all(|v| (v.width, v.height, v.data.len()) == (32, 32, 32 * 32 * 3)));
    }
    // The same streams draw the same crops; another position draws others.
    let a = d.train.fetch(3, &mut rngs(7, 1), true).unwrap().unwrap();
    let b = d.train.fetch(3, &mut rngs(7, 1), true).unwrap().unwrap();
    let c = d.train.fetch(3, &mut rngs(8, 1), true).unwrap().unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    // Evaluation views draw nothing.
    let e1 = d.test.fetch(0, &mut rngs(1, 1), false).unwrap().unwrap();
    let e2 = d.test.fetch(0, &mut rngs(2, 1), false).unwrap().unwrap();
    assert_eq!(e1, e2);
}

#[test]
fn an_unreadable_image_is_skipped_and_counted_or_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), "train", 2, 3);
    write_tree(dir.path(), "val", 2, 1);
    let good = std::fs::read(dir.path().join("train/n00/img_0.JPEG")).unwrap();
    let bad = dir.path().join("train/n00/img_9.JPEG");
    std::fs::write(&bad, &good[..good.len() / 2]).unwrap();
    let d = stream(dir.path(), "size: 24");
    let stream = d.train.stream.clone().unwrap();
    let i = (0..d.train.len())
        .find(|&i| d.train.fetch(i, &mut rngs(0, 1), true).unwrap().is_none())
        .expect("the truncated file is skipped");
    assert_eq!(stream.skipped(), 1);
    assert!(d.train.fetch(i, &mut rngs(0, 1), false).unwrap().is_none());
    assert_eq!(stream.skipped(), 1, "counted once");

    let d = stream_with_fail(dir.path());
    let err = (0..d.train.len())
        .find_map(|i| d.train.fetch(i, &mut rngs(0, 1), true).err())
        .expect("on_bad_image: fail stops");
    assert!(err.to_string().contains("img_9.JPEG"), "{err}");
}

fn stream_with_fail(root: &Path) -> Dataset {
    stream(root, "size: 24\non_bad_image: fail")
}

#[test]
fn a_flat_val_folder_takes_its_labels_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), "train", 2, 2);
    let val = dir.path().join("val");
    save(
        &val.join("ILSVRC2012_val_00000001.JPEG"),
        &picture(50, 40, 1),
        true,
    );
    save(
        &val.join("ILSVRC2012_val_00000002.JPEG"),
        &picture(60, 45, 2),
        true,
    );
    let labels = dir.path().join("LOC_val_solution.csv");
    std::fs::write(
        &labels,
        "ImageId,PredictionString\nILSVRC2012_val_00000002,n00 1 2 3 4\nILSVRC2012_val_00000001,n01 1 2 3 4\n",
    )
    .unwrap();
    let extra = format!("size: 16\nval_labels: '{}'", labels.display());
    let d = stream(dir.path(), &extra);
    assert_eq!(d.test.labels, [1, 0]);
    // Without the file: a located error saying what is missing.
    let err = build_image_stream(&params(dir.path(), "size: 16"), Seed(1)).unwrap_err();
    assert!(err.to_string().contains("val_labels"), "{err}");
}

#[test]
fn without_a_crop_the_stream_hands_out_the_in_memory_pixels() {
    // Images already at the model's size, no random crop: the streamed split must give
    // exactly what `image-folder` holds in memory, so the two train identically.
    let dir = tempfile::tempdir().unwrap();
    for c in 0..2 {
        for i in 0..4 {
            let p = dir.path().join(format!("train/c{c}/{i}.png"));
            save(&p, &picture(20, 20, (c * 4 + i) as u32), false);
        }
        let p = dir.path().join(format!("test/c{c}/0.png"));
        save(&p, &picture(20, 20, 50 + c as u32), false);
    }
    let norm = "normalize: {mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25]}";
    let streamed = stream(
        dir.path(),
        &format!("size: 20\nresize: 20\ntrain_crop: center\nval_size: 2\n{norm}"),
    );
    let folder = rolekd_data::folder::build_image_folder(
        &params(dir.path(), &format!("val_size: 2\n{norm}")),
        Seed(1),
    )
    .unwrap();
    for (s, m) in [
        (&streamed.train, &folder.train),
        (&streamed.val, &folder.val),
        (&streamed.test, &folder.test),
    ] {
        assert_eq!(s.labels, m.labels);
        for i in 0..s.len() {
            let views = s.fetch(i, &mut rngs(i as u64, 1), true).unwrap().unwrap();
            assert_eq!(views[0], m.image(i), "image {i}");
        }
    }
}

/// Writes the files under `dir/<split>/` as a WebDataset shard per class folder.
fn shard_tree(dir: &Path, split: &str, out: &Path) -> Vec<i64> {
    let mut labels = Vec::new();
    let mut classes: Vec<_> = std::fs::read_dir(dir.join(split))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    classes.sort();
    for (label, class) in classes.iter().enumerate() {
        let tar_path = out.join(format!("{split}-{label:03}.tar"));
        let mut b = tar::Builder::new(std::fs::File::create(tar_path).unwrap());
        let mut files: Vec<_> = std::fs::read_dir(class)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for f in files {
            let key = f.file_stem().unwrap().to_string_lossy().into_owned();
            b.append_path_with_name(&f, format!("{key}.jpg")).unwrap();
            let text = format!("{label}");
            let mut h = tar::Header::new_gnu();
            h.set_size(text.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, format!("{key}.cls"), text.as_bytes())
                .unwrap();
            labels.push(label as i64);
        }
        b.finish().unwrap();
    }
    labels
}

#[test]
fn webdataset_shards_stream_the_same_images_as_their_files() {
    let dir = tempfile::tempdir().unwrap();
    write_tree(dir.path(), "train", 3, 4);
    write_tree(dir.path(), "val", 3, 2);
    let out = dir.path().join("shards");
    std::fs::create_dir_all(&out).unwrap();
    let train_labels = shard_tree(dir.path(), "train", &out);
    let test_labels = shard_tree(dir.path(), "val", &out);
    let yaml = format!(
        "size: 24\nshards: '{0}/train-{{000..002}}.tar'\ntest_shards: '{0}/val-{{000..002}}.tar'\nclasses: [n00, n01, n02]",
        out.display()
    );
    let sharded = build_image_stream(
        &rolekd_core::config::Params::from_yaml(&yaml).unwrap(),
        Seed(1),
    )
    .unwrap();
    let files = stream(dir.path(), "size: 24");
    assert_eq!(sharded.classes, files.classes);
    assert_eq!(sharded.train.labels, train_labels);
    assert_eq!(sharded.test.labels, test_labels);
    assert_eq!(sharded.train.labels, files.train.labels);
    for (s, f) in [(&sharded.train, &files.train), (&sharded.test, &files.test)] {
        for i in 0..s.len() {
            let a = s.fetch(i, &mut rngs(i as u64, 2), true).unwrap().unwrap();
            let b = f.fetch(i, &mut rngs(i as u64, 2), true).unwrap().unwrap();
            assert_eq!(a, b, "image {i}");
        }
    }
    // A pattern that names no shard is a located error.
    let bad = format!("size: 24\nshards: '{}/nothing-{{0..1}}.tar'", out.display());
    let err = build_image_stream(
        &rolekd_core::config::Params::from_yaml(&bad).unwrap(),
        Seed(1),
    )
    .unwrap_err();
    assert!(err.to_string().contains("nothing-0.tar"), "{err}");
}
