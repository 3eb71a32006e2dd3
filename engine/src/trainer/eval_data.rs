//! The images an evaluation runs over: an in-memory split as one resident tensor (small
//! sets: no per-batch work), a streamed split decoded batch by batch on loader workers (so
//! an ImageNet validation set never has to fit in memory).

use super::loader::{for_each_batch, split_tensor, LoaderSpec, ViewSpec};
use super::roles::NoAugment;
use rolekd_core::error::Result;
use rolekd_core::plugin::data::DataSplit;
use rolekd_core::rng::Seed;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tch::{Device, Tensor};

/// A split ready to evaluate on.
pub enum EvalData {
    /// Images `x` [N, C, H, W] (normalised, laid out as the models want) and labels `y`.
    Resident { x: Tensor, y: Tensor },
    /// Decoded per batch by `workers` threads.
    Streamed {
        split: Arc<DataSplit>,
        mean: Vec<f32>,
        std: Vec<f32>,
        workers: usize,
        device: Device,
        channels_last: bool,
    },
}

impl EvalData {
    /// Decoding threads of a stage that only evaluates.
    pub const WORKERS: usize = 2;

    /// Evaluation data for `split`: resident when it is in memory, streamed otherwise.
    pub fn of(
        split: &Arc<DataSplit>,
        mean: &[f32],
        std: &[f32],
        device: Device,
        channels_last: bool,
        workers: usize,
    ) -> EvalData {
        if split.is_streamed() {
            return EvalData::Streamed {
                split: split.clone(),
                mean: mean.to_vec(),
                std: std.to_vec(),
                workers: workers.max(1),
                device,
                channels_last,
            };
        }
        let (x, y) = split_tensor(split, mean, std, device);
        let x = if channels_last {
            rolekd_core::layout::channels_last(&x)
        } else {
            x
        };
        EvalData::Resident { x, y }
    }

    /// Number of images (before any unreadable one is skipped).
    pub fn len(&self) -> usize {
        match self {
            EvalData::Resident { y, .. } => y.size()[0] as usize,
            EvalData::Streamed { split, .. } => split.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs `f` on consecutive batches of at most `batch` images and their labels, in the
    /// split's order.
    pub fn for_each_batch(&self, batch: usize, mut f: impl FnMut(&Tensor, &Tensor)) -> Result<()> {
        let batch = batch.max(1) as i64;
        match self {
            EvalData::Resident { x, y } => {
                let n = y.size()[0];
                let mut start = 0;
                while start < n {
                    let len = batch.min(n - start);
                    f(&x.narrow(0, start, len), &y.narrow(0, start, len));
                    start += len;
                }
                Ok(())
            }
            EvalData::Streamed {
                split,
                mean,
                std,
                workers,
                device,
                channels_last,
            } => {
                let spec = LoaderSpec {
                    split: split.clone(),
                    mean: mean.clone(),
                    std: std.clone(),
                    classes: 0,
                    batch_size: batch as usize,
                    views: vec![ViewSpec {
                        policy: Arc::new(NoAugment),
                        seed: Seed(0),
                        mixes: false,
                    }],
                    workers: *workers,
                    prefetch: 2,
                    shuffle_seed: Seed(0),
                    epochs: 1,
                    channels_last: *channels_last,
                    eval: true,
                };
                let never = AtomicBool::new(false);
                for_each_batch(&spec, 0, 0, *device, &never, |_, b| {
                    if b.len > 0 {
                        f(&b.views[0], &b.labels);
                    }
                    Ok(())
                })
                .map(|_| ())
            }
        }
    }
}
