//! Dataset plugins: load a labelled image set once, split it deterministically.
//!
//! A split either holds its images decoded in memory (small sets: fastest), or streams them:
//! it keeps the labels and where each image's bytes are, and the loader's workers decode
//! and crop each image when a batch needs it ([`super::stream`]).

use super::image::Image;
use super::stream::{Concat, ImageStream, Subset};
use crate::config::Params;
use crate::error::Result;
use crate::rng::{Seed, StreamRng};
use std::sync::Arc;

/// One split, shared by every stage and trial: uint8 HWC images held in memory, or a
/// stream that decodes them on demand (then `images` is empty, and `height`, `width` are
/// the size the stream brings every image to).
#[derive(Debug)]
pub struct DataSplit {
    pub images: Vec<u8>,
    pub labels: Vec<i64>,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub stream: Option<Arc<dyn ImageStream>>,
}

impl DataSplit {
    /// A split held in memory.
    pub fn in_memory(
        images: Vec<u8>,
        labels: Vec<i64>,
        height: usize,
        width: usize,
        channels: usize,
    ) -> Self {
        DataSplit {
            images,
            labels,
            height,
            width,
            channels,
            stream: None,
        }
    }

    /// A streamed split: the labels here, the pixels read through `stream`.
    pub fn streamed(stream: Arc<dyn ImageStream>, labels: Vec<i64>) -> Self {
        let (height, width, channels) = stream.shape();
        DataSplit {
            images: Vec::new(),
            labels,
            height,
            width,
            channels,
            stream: Some(stream),
        }
    }

    /// Whether the images are decoded on demand.
    pub fn is_streamed(&self) -> bool {
        self.stream.is_some()
    }

    /// Image `i` once per view (`rngs`, one stream per view), brought to the split's size:
    /// a training crop drawn from each view's stream (`train`), or the evaluation view.
    /// `None` for an unreadable image the stream was told to skip. In-memory splits draw
    /// nothing, so their augmentation streams are what they always were.
    pub fn fetch(
        &self,
        i: usize,
        rngs: &mut [StreamRng],
        train: bool,
    ) -> Result<Option<Vec<Image>>> {
        match &self.stream {
            None => Ok(Some(rngs.iter().map(|_| self.image(i)).collect())),
            Some(stream) => {
                let picked = if train {
                    stream.train_views(i, rngs)
                } else {
                    stream.eval_view(i).map(|img| vec![img; rngs.len().max(1)])
                };
                match picked {
                    Ok(images) => Ok(Some(images)),
                    Err(e) => stream.on_unreadable(i, e).map(|()| None),
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image_bytes(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// Image `i` of an in-memory split as an augmentable [`Image`].
    pub fn image(&self, i: usize) -> Image {
        let n = self.image_bytes();
        Image::new(
            self.width,
            self.height,
            self.channels,
            self.images[i * n..(i + 1) * n].to_vec(),
        )
    }

    /// The images at `indices`, as a new split.
    pub fn subset(&self, indices: &[usize]) -> DataSplit {
        if let Some(stream) = &self.stream {
            let labels = indices.iter().map(|&i| self.labels[i]).collect();
            return DataSplit::streamed(Subset::of(stream, indices.to_vec()), labels);
        }
        let n = self.image_bytes();
        let mut images = Vec::with_capacity(indices.len() * n);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            images.extend_from_slice(&self.images[i * n..(i + 1) * n]);
            labels.push(self.labels[i]);
        }
        DataSplit::in_memory(images, labels, self.height, self.width, self.channels)
    }

    /// `self`'s images followed by `other`'s (a final run trains on train + validation).
    pub fn concat(&self, other: &DataSplit) -> DataSplit {
        let mut labels = self.labels.clone();
        labels.extend_from_slice(&other.labels);
        match (&self.stream, &other.stream) {
            (Some(a), Some(b)) => DataSplit::streamed(Concat::of(a.clone(), b.clone()), labels),
            (Some(a), None) => DataSplit::streamed(a.clone(), self.labels.clone()),
            (None, Some(b)) => DataSplit::streamed(b.clone(), other.labels.clone()),
            (None, None) => {
                let mut images = self.images.clone();
                images.extend_from_slice(&other.images);
                DataSplit::in_memory(images, labels, self.height, self.width, self.channels)
            }
        }
    }
}

/// A dataset ready for training: train / validation / test splits and normalisation.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: String,
    pub train: Arc<DataSplit>,
    /// Held out of the training file (for search rewards); may be empty.
    pub val: Arc<DataSplit>,
    pub test: Arc<DataSplit>,
    pub classes: Vec<String>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Dataset {
    pub fn num_classes(&self) -> usize {
        self.classes.len()
    }
}

/// Loads a dataset. `seed` is the stream for the train/validation split and subsets.
pub type DatasetFactory = fn(&Params, Seed) -> Result<Dataset>;
