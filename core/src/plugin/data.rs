//! Dataset plugins: load a labelled image set once, split it deterministically.

use super::image::Image;
use crate::config::Params;
use crate::error::Result;
use crate::rng::Seed;
use std::sync::Arc;

/// One split, held once in memory as uint8 HWC images and shared by every stage and trial.
#[derive(Debug)]
pub struct DataSplit {
    pub images: Vec<u8>,
    pub labels: Vec<i64>,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
}

impl DataSplit {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image_bytes(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// Image `i` as an augmentable [`Image`].
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
        let n = self.image_bytes();
        let mut images = Vec::with_capacity(indices.len() * n);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            images.extend_from_slice(&self.images[i * n..(i + 1) * n]);
            labels.push(self.labels[i]);
        }
        DataSplit {
            images,
            labels,
            height: self.height,
            width: self.width,
            channels: self.channels,
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
