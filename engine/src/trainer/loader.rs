//! Batches for training, built off the training thread.
//!
//! Each epoch's order is a seeded permutation. Worker `w` builds batches `w, w+W, w+2W...`
//! and hands them over a bounded channel (prefetch); the training thread takes them
//! round-robin, so the order never depends on thread timing. Every image of every view draws
//! its augmentation from its own stream `seed / view / epoch / position`.

use rand::seq::SliceRandom;
use rolekd_core::error::{Error, Result};
use rolekd_core::plugin::augment::{AugmentCtx, AugmentPolicy, MixBatch};
use rolekd_core::plugin::data::DataSplit;
use rolekd_core::rng::{Seed, StreamRng};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tch::{Device, Kind, Tensor};

/// One augmentation view of the batch (a role's policy).
pub struct ViewSpec {
    pub policy: Arc<dyn AugmentPolicy>,
    pub seed: Seed,
    /// Whether this view's policy may mix the batch (only the trained role's view).
    pub mixes: bool,
}

/// A training batch: one image tensor per view, labels, and the images' split indices.
pub struct Batch {
    pub views: Vec<Tensor>,
    pub labels: Tensor,
    pub soft_targets: Option<Tensor>,
    pub indices: Tensor,
    pub len: usize,
}

/// Everything the workers share.
pub struct LoaderSpec {
    pub split: Arc<DataSplit>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub classes: usize,
    pub batch_size: usize,
    pub views: Vec<ViewSpec>,
    pub workers: usize,
    pub prefetch: usize,
    pub shuffle_seed: Seed,
    pub epochs: usize,
    /// Batches laid out channels-last ([`rolekd_core::layout`]).
    pub channels_last: bool,
    /// Evaluation batches: the split in its own order, each image's evaluation view, no
    /// augmentation.
    pub eval: bool,
}

/// The seeded order of an epoch.
pub fn epoch_order(n: usize, seed: Seed, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut seed.index(epoch as u64).rng());
    order
}

/// Number of batches in an epoch (the last one may be partial).
pub fn batches_per_epoch(n: usize, batch_size: usize) -> usize {
    n.div_ceil(batch_size)
}

/// How a pass over an epoch's batches ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// Every batch was consumed.
    Finished,
    /// `stop` was set; batches `0..done` of the epoch have been consumed.
    Stopped { done: usize },
}

/// Runs `consume` on batches `first..` of `epoch`, in order, while workers prepare the next
/// ones (`first` > 0 resumes an epoch stopped part-way: the batches are the same, as each
/// is a function of the seed, the epoch and its position). Stops early when `stop` is set.
pub fn for_each_batch(
    spec: &LoaderSpec,
    epoch: usize,
    first: usize,
    device: Device,
    stop: &AtomicBool,
    mut consume: impl FnMut(usize, Batch) -> Result<()>,
) -> Result<Pass> {
    let order = if spec.eval {
        (0..spec.split.len()).collect()
    } else {
        epoch_order(spec.split.len(), spec.shuffle_seed, epoch)
    };
    let nb = batches_per_epoch(order.len(), spec.batch_size);
    let first = first.min(nb);
    let workers = spec.workers.max(1).min((nb - first).max(1));
    let cancel = AtomicBool::new(false);
    let pool = BufferPool::new(workers * (spec.prefetch.max(1) + 2) * spec.views.len().max(1));
    std::thread::scope(|scope| -> Result<Pass> {
        let mut receivers = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = crossbeam_channel::bounded::<Result<RawBatch>>(spec.prefetch.max(1));
            receivers.push(rx);
            let order = &order;
            let cancel = &cancel;
            let pool = &pool;
            scope.spawn(move || {
                let mut b = first + w;
                while b < nb && !cancel.load(Ordering::Relaxed) {
                    let start = b * spec.batch_size;
                    let end = (start + spec.batch_size).min(order.len());
                    let batch = build_batch(spec, pool, epoch, start, &order[start..end]);
                    let failed = batch.is_err();
                    if tx.send(batch).is_err() || failed {
                        return;
                    }
                    b += workers;
                }
            });
        }
        let mut result = Ok(Pass::Finished);
        for b in first..nb {
            if stop.load(Ordering::Relaxed) {
                result = Ok(Pass::Stopped { done: b });
                break;
            }
            let raw = match receivers[(b - first) % workers].recv() {
                Ok(Ok(raw)) => raw,
                Ok(Err(e)) => {
                    result = Err(e);
                    break;
                }
                Err(_) => {
                    result = Err(Error::Invalid(format!(
                        "the loader worker of batch {b} stopped"
                    )));
                    break;
                }
            };
            if let Err(e) = consume(b, raw.into_batch(spec, device, &pool)) {
                result = Err(e);
                break;
            }
        }
        cancel.store(true, Ordering::Relaxed);
        drop(receivers);
        result
    })
}

/// Batch buffers handed back after their tensors are made, for the next batches. A
/// 224x224 RGB batch of 64 is 38 MB, past the size glibc keeps in its heap (32 MiB): a new
/// buffer per batch is mapped and zero-faulted page by page each time, which cost a fifth of
/// the streamed loader's time.
struct BufferPool {
    free: std::sync::Mutex<Vec<Vec<f32>>>,
    keep: usize,
}

impl BufferPool {
    fn new(keep: usize) -> Self {
        BufferPool {
            free: std::sync::Mutex::new(Vec::new()),
            keep,
        }
    }

    /// An empty buffer with room for `len` values.
    fn take(&self, len: usize) -> Vec<f32> {
        let reused = self.free.lock().ok().and_then(|mut f| f.pop());
        let mut buf = reused.unwrap_or_default();
        buf.clear();
        buf.reserve(len);
        buf
    }

    fn give(&self, buf: Vec<f32>) {
        if let Ok(mut free) = self.free.lock() {
            if free.len() < self.keep {
                free.push(buf);
            }
        }
    }
}

/// A batch as plain buffers. Workers build these and the training thread makes the
/// tensors. libtorch ops on a worker thread can run parallel loops, which gives that
/// thread an OpenMP team of its own; libgomp, managing more threads than there are cores,
/// then lets every team sleep between parallel regions instead of spinning, which cost
/// ResNet-20 about 15% of its training speed (the figures: docs/benchmarks.md, "Where
/// batches become tensors").
struct RawBatch {
    views: Vec<Vec<f32>>,
    labels: Vec<i64>,
    soft_targets: Option<Vec<f32>>,
    indices: Vec<i64>,
    shape: [i64; 4],
}

impl RawBatch {
    /// The batch as tensors; its buffers go back to `pool` for the next batches.
    fn into_batch(self, spec: &LoaderSpec, device: Device, pool: &BufferPool) -> Batch {
        let n = self.shape[0];
        let views = self
            .views
            .into_iter()
            .map(|buf| {
                let x = Tensor::from_slice(&buf).view(self.shape).to_device(device);
                pool.give(buf);
                if spec.channels_last {
                    rolekd_core::layout::channels_last(&x)
                } else {
                    x
                }
            })
            .collect();
        Batch {
            views,
            labels: Tensor::from_slice(&self.labels).to_device(device),
            soft_targets: self.soft_targets.map(|s| {
                Tensor::from_slice(&s)
                    .view([n, spec.classes as i64])
                    .to_device(device)
            }),
            indices: Tensor::from_slice(&self.indices).to_device(device),
            len: n as usize,
        }
    }
}

/// Builds the batch of images `idx` (positions `start..` of the epoch). Each image is
/// fetched once for all views (a streamed split decodes it once), then every view
/// augments its own copy with its own stream. Unreadable images the split skips leave the
/// batch smaller; positions, and so every other image's streams, stay as they were.
fn build_batch(
    spec: &LoaderSpec,
    pool: &BufferPool,
    epoch: usize,
    start: usize,
    idx: &[usize],
) -> Result<RawBatch> {
    let split = &spec.split;
    let (c, h, w) = (split.channels, split.height, split.width);
    let per = c * h * w;
    let ctx = AugmentCtx {
        epoch,
        epochs: spec.epochs,
    };
    let epoch_seeds: Vec<Seed> = spec
        .views
        .iter()
        .map(|v| v.seed.index(epoch as u64))
        .collect();
    let mut bufs: Vec<Vec<f32>> = spec
        .views
        .iter()
        .map(|_| pool.take(idx.len() * per))
        .collect();
    let mut kept = Vec::with_capacity(idx.len());
    for (k, &i) in idx.iter().enumerate() {
        let mut rngs: Vec<StreamRng> = epoch_seeds
            .iter()
            .map(|s| s.index((start + k) as u64).rng())
            .collect();
        let Some(images) = split.fetch(i, &mut rngs, !spec.eval)? else {
            continue;
        };
        for (((view, mut img), rng), buf) in
            spec.views.iter().zip(images).zip(&mut rngs).zip(&mut bufs)
        {
            if !spec.eval {
                view.policy.augment(&mut img, &ctx, rng);
            }
            let at = buf.len();
            buf.resize(at + per, 0.0);
            img.write_normalised(&mut buf[at..], &spec.mean, &spec.std);
        }
        kept.push(i);
    }
    let soft = mix_views(spec, &ctx, &epoch_seeds, start, &kept, &mut bufs);
    Ok(RawBatch {
        views: bufs,
        labels: kept.iter().map(|&i| split.labels[i]).collect(),
        soft_targets: soft,
        indices: kept.iter().map(|&i| i as i64).collect(),
        shape: [kept.len() as i64, c as i64, h as i64, w as i64],
    })
}

/// Lets the views that may mix the batch (the trained role's) do so; their soft targets.
fn mix_views(
    spec: &LoaderSpec,
    ctx: &AugmentCtx,
    epoch_seeds: &[Seed],
    start: usize,
    kept: &[usize],
    bufs: &mut [Vec<f32>],
) -> Option<Vec<f32>> {
    let split = &spec.split;
    let mut soft = None;
    for ((view, seed), buf) in spec.views.iter().zip(epoch_seeds).zip(bufs) {
        if !view.mixes || spec.eval || kept.is_empty() {
            continue;
        }
        let mut targets = one_hot(kept, split, spec.classes);
        let mut rng = seed.child("batch").index(start as u64).rng();
        let mut mb = MixBatch {
            images: buf,
            targets: &mut targets,
            shape: [kept.len(), split.channels, split.height, split.width],
            classes: spec.classes,
        };
        if view.policy.mix_batch(&mut mb, ctx, &mut rng) {
            soft = Some(targets);
        }
    }
    soft
}

fn one_hot(idx: &[usize], split: &DataSplit, classes: usize) -> Vec<f32> {
    let mut t = vec![0f32; idx.len() * classes];
    for (k, &i) in idx.iter().enumerate() {
        t[k * classes + split.labels[i] as usize] = 1.0;
    }
    t
}

/// A whole split, normalised, as one [N, C, H, W] tensor (evaluation needs no augmentation).
pub fn split_tensor(
    split: &DataSplit,
    mean: &[f32],
    std: &[f32],
    device: Device,
) -> (Tensor, Tensor) {
    let per = split.image_bytes();
    let mut buf = vec![0f32; split.len() * per];
    for i in 0..split.len() {
        split
            .image(i)
            .write_normalised(&mut buf[i * per..(i + 1) * per], mean, std);
    }
    let x = Tensor::from_slice(&buf)
        .view([
            split.len() as i64,
            split.channels as i64,
            split.height as i64,
            split.width as i64,
        ])
        .to_device(device);
    let y = Tensor::from_slice(&split.labels)
        .to_kind(Kind::Int64)
        .to_device(device);
    (x, y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;
    use rolekd_core::plugin::image::Image;
    use rolekd_core::rng::StreamRng;

    struct Noise;
    impl AugmentPolicy for Noise {
        fn augment(&self, img: &mut Image, _: &AugmentCtx, rng: &mut StreamRng) {
            for p in img.data.iter_mut() {
                *p = rng.random();
            }
        }
    }

    fn spec(workers: usize) -> LoaderSpec {
        let n = 37;
        LoaderSpec {
            split: Arc::new(DataSplit {
                images: (0..n * 4).map(|i| i as u8).collect(),
                labels: (0..n as i64).map(|i| i % 3).collect(),
                height: 2,
                width: 2,
                channels: 1,
                stream: None,
            }),
            mean: vec![0.0],
            std: vec![1.0],
            classes: 3,
            batch_size: 8,
            views: vec![ViewSpec {
                policy: Arc::new(Noise),
                seed: Seed(3),
                mixes: false,
            }],
            workers,
            prefetch: 2,
            shuffle_seed: Seed(9),
            epochs: 1,
            channels_last: false,
            eval: false,
        }
    }

    fn collect_from(workers: usize, first: usize) -> Vec<(Vec<f32>, Vec<i64>)> {
        let mut out = Vec::new();
        let stop = AtomicBool::new(false);
        let pass = for_each_batch(&spec(workers), 0, first, Device::Cpu, &stop, |_, b| {
            let v: Vec<f32> = Vec::try_from(b.views[0].flatten(0, -1)).unwrap();
            let l: Vec<i64> = Vec::try_from(&b.indices).unwrap();
            out.push((v, l));
            Ok(())
        })
        .unwrap();
        assert_eq!(pass, Pass::Finished);
        out
    }

    fn collect(workers: usize) -> Vec<(Vec<f32>, Vec<i64>)> {
        collect_from(workers, 0)
    }

    #[test]
    fn a_resumed_epoch_yields_the_batches_it_had_left() {
        let whole = collect(1);
        for workers in [1, 2, 3] {
            assert_eq!(collect_from(workers, 2), whole[2..], "{workers} workers");
        }
        assert!(collect_from(2, 5).is_empty());
    }

    #[test]
    fn a_stop_reports_the_batches_consumed() {
        let stop = AtomicBool::new(false);
        let mut seen = Vec::new();
        let pass = for_each_batch(&spec(2), 0, 1, Device::Cpu, &stop, |b, _| {
            seen.push(b);
            if b == 3 {
                stop.store(true, Ordering::Relaxed);
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, [1, 2, 3]);
        assert_eq!(pass, Pass::Stopped { done: 4 });
    }

    #[test]
    fn batches_do_not_depend_on_worker_count() {
        let one = collect(1);
        let three = collect(3);
        assert_eq!(one.len(), 5);
        assert_eq!(one[4].1.len(), 5, "last batch is partial");
        assert_eq!(one, three);
        let mut all: Vec<i64> = one.iter().flat_map(|(_, l)| l.clone()).collect();
        all.sort();
        assert_eq!(
            all,
            (0..37).collect::<Vec<i64>>(),
            "every image exactly once"
        );
    }

    #[test]
    fn epochs_are_shuffled_differently() {
        assert_ne!(epoch_order(50, Seed(1), 0), epoch_order(50, Seed(1), 1));
        assert_eq!(epoch_order(50, Seed(1), 2), epoch_order(50, Seed(1), 2));
    }

    type Views = Vec<(Vec<Vec<f32>>, Vec<i64>, Vec<i64>)>;

    /// Each batch's views, labels and indices, with Noise views seeded `seeds`.
    fn views_of(seeds: &[u64]) -> Views {
        let mut spec = spec(2);
        spec.views = seeds
            .iter()
            .map(|&s| ViewSpec {
                policy: Arc::new(Noise),
                seed: Seed(s),
                mixes: false,
            })
            .collect();
        let mut out = Vec::new();
        let stop = AtomicBool::new(false);
        for_each_batch(&spec, 0, 0, Device::Cpu, &stop, |_, b| {
            let views = b
                .views
                .iter()
                .map(|v| Vec::try_from(v.flatten(0, -1)).unwrap())
                .collect();
            let labels = Vec::try_from(&b.labels).unwrap();
            let indices = Vec::try_from(&b.indices).unwrap();
            out.push((views, labels, indices));
            Ok(())
        })
        .unwrap();
        out
    }

    /// A teacher's own view (a second view with its own stream) leaves the student's view
    /// untouched, shows other pixels, and pairs them with the same images and labels.
    #[test]
    fn a_second_view_sees_the_same_images_differently_and_leaves_the_first_alone() {
        let one = views_of(&[3]);
        let two = views_of(&[3, 4]);
        assert_eq!(one.len(), two.len());
        for ((v1, l1, i1), (v2, l2, i2)) in one.iter().zip(&two) {
            assert_eq!(v1[0], v2[0], "view 0 changed when a second view was added");
            assert_ne!(v2[0], v2[1], "the two views drew the same augmentation");
            assert_eq!((l1, i1), (l2, i2));
        }
    }
}
