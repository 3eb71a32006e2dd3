//! Streamed splits: images decoded when a batch needs them, so the memory a run uses does
//! not grow with the number of images (file lists and labels aside).
//!
//! A dataset plugin implements [`ImageStream`] over its own storage (files, tar shards,
//! objects). The loader calls it from its worker threads, once per image and batch, with
//! the image's per-view random streams (`seed / view / epoch / position`): every random
//! choice of a training crop comes from those, so a streamed run is as reproducible and as
//! exactly resumable as an in-memory one, with any number of workers.

use super::image::Image;
use crate::error::Result;
use crate::rng::StreamRng;
use std::fmt::Debug;
use std::sync::Arc;

/// A split's images, read and decoded on demand.
pub trait ImageStream: Send + Sync + Debug {
    /// Number of images.
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `(height, width, channels)` of every image this stream hands out.
    fn shape(&self) -> (usize, usize, usize);

    /// Image `i` once per view, each cropped with draws from its own view's stream (the
    /// training transform, e.g. RandomResizedCrop). Decoding once for all views is the
    /// stream's business.
    fn train_views(&self, i: usize, rngs: &mut [StreamRng]) -> Result<Vec<Image>>;

    /// Image `i` as evaluation sees it (e.g. resize + centre crop); deterministic.
    fn eval_view(&self, i: usize) -> Result<Image>;

    /// What to do when image `i` could not be read or decoded (`error`): `Ok(())` skips it
    /// (the stream logs and counts it), an error stops the stage.
    fn on_unreadable(&self, i: usize, error: crate::Error) -> Result<()>;

    /// Images skipped as unreadable so far.
    fn skipped(&self) -> usize {
        0
    }
}

/// Some of another stream's images, in the given order.
#[derive(Debug)]
pub struct Subset {
    inner: Arc<dyn ImageStream>,
    indices: Vec<usize>,
}

impl Subset {
    pub fn of(inner: &Arc<dyn ImageStream>, indices: Vec<usize>) -> Arc<dyn ImageStream> {
        Arc::new(Subset {
            inner: inner.clone(),
            indices,
        })
    }
}

impl ImageStream for Subset {
    fn len(&self) -> usize {
        self.indices.len()
    }
    fn shape(&self) -> (usize, usize, usize) {
        self.inner.shape()
    }
    fn train_views(&self, i: usize, rngs: &mut [StreamRng]) -> Result<Vec<Image>> {
        self.inner.train_views(self.indices[i], rngs)
    }
    fn eval_view(&self, i: usize) -> Result<Image> {
        self.inner.eval_view(self.indices[i])
    }
    fn on_unreadable(&self, i: usize, error: crate::Error) -> Result<()> {
        self.inner.on_unreadable(self.indices[i], error)
    }
    fn skipped(&self) -> usize {
        self.inner.skipped()
    }
}

/// One stream's images followed by another's (train + validation for a final run).
#[derive(Debug)]
pub struct Concat {
    first: Arc<dyn ImageStream>,
    second: Arc<dyn ImageStream>,
}

impl Concat {
    pub fn of(first: Arc<dyn ImageStream>, second: Arc<dyn ImageStream>) -> Arc<dyn ImageStream> {
        Arc::new(Concat { first, second })
    }

    fn locate(&self, i: usize) -> (&dyn ImageStream, usize) {
        let n = self.first.len();
        if i < n {
            (self.first.as_ref(), i)
        } else {
            (self.second.as_ref(), i - n)
        }
    }
}

impl ImageStream for Concat {
    fn len(&self) -> usize {
        self.first.len() + self.second.len()
    }
    fn shape(&self) -> (usize, usize, usize) {
        self.first.shape()
    }
    fn train_views(&self, i: usize, rngs: &mut [StreamRng]) -> Result<Vec<Image>> {
        let (s, j) = self.locate(i);
        s.train_views(j, rngs)
    }
    fn eval_view(&self, i: usize) -> Result<Image> {
        let (s, j) = self.locate(i);
        s.eval_view(j)
    }
    fn on_unreadable(&self, i: usize, error: crate::Error) -> Result<()> {
        let (s, j) = self.locate(i);
        s.on_unreadable(j, error)
    }
    fn skipped(&self) -> usize {
        self.first.skipped().max(self.second.skipped())
    }
}
