//! A streamed split over image files or tar shard members: where each image lies stays in
//! memory, the pixels are read, decoded and cropped by the loader's workers when a batch
//! needs them.

use super::codec;
use super::crop::{self, CropBox};
use super::shards::Member;
use rolekd_core::plugin::image::Image;
use rolekd_core::plugin::stream::ImageStream;
use rolekd_core::rng::StreamRng;
use rolekd_core::{Error, Result};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;

/// How a training image becomes the model's size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TrainCrop {
    /// torchvision's RandomResizedCrop with these area and aspect-ratio ranges.
    RandomResized { scale: [f64; 2], ratio: [f64; 2] },
    /// The evaluation view (resize + centre crop), no random crop.
    Center,
}

/// What a streamed split does with an image it cannot read or decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnBadImage {
    /// Leave it out of its batch, name it in the log once, count it.
    #[default]
    Skip,
    /// Stop the stage with an error naming it.
    Fail,
}

/// How every image of a streamed dataset is read and brought to size.
#[derive(Debug, Clone)]
pub struct Transform {
    /// Model input (height, width).
    pub size: (usize, usize),
    /// Evaluation: the shorter side is resized to this, then the centre is cropped.
    pub resize: usize,
    pub train_crop: TrainCrop,
    pub channels: usize,
    /// Whether JPEGs may be decoded at 1/2, 1/4, 1/8 when the crops allow it.
    pub reduced_decode: bool,
    pub on_bad_image: OnBadImage,
}

/// Where a stream's encoded images are.
#[derive(Debug)]
pub enum Source {
    /// One file per image.
    Files(Vec<PathBuf>),
    /// Members of tar shards.
    Shards {
        shards: Vec<PathBuf>,
        members: Vec<Member>,
    },
}

impl Source {
    fn len(&self) -> usize {
        match self {
            Source::Files(p) => p.len(),
            Source::Shards { members, .. } => members.len(),
        }
    }

    fn name(&self, i: usize) -> String {
        match self {
            Source::Files(p) => p[i].display().to_string(),
            Source::Shards { members, .. } => members[i].name.clone(),
        }
    }

    fn read(&self, i: usize) -> Result<Vec<u8>> {
        match self {
            Source::Files(p) => std::fs::read(&p[i]).map_err(|e| Error::io(&p[i], e)),
            Source::Shards { shards, members } => super::shards::read(shards, &members[i]),
        }
    }
}

/// Encoded images and how to read them.
#[derive(Debug)]
pub struct FileStream {
    source: Source,
    transform: Transform,
    skipped: Mutex<BTreeSet<usize>>,
}

impl FileStream {
    pub fn new(source: Source, transform: Transform) -> FileStream {
        FileStream {
            source,
            transform,
            skipped: Mutex::new(BTreeSet::new()),
        }
    }

    fn read(&self, i: usize) -> Result<Vec<u8>> {
        self.source.read(i)
    }

    fn bad(&self, i: usize, what: String) -> Error {
        Error::Data(format!(
            "{}: cannot decode image: {what}",
            self.source.name(i)
        ))
    }

    /// Decodes image `i` once for all `boxes` (in its own coordinates) and crops each.
    fn crops(
        &self,
        i: usize,
        bytes: &[u8],
        full: (usize, usize),
        boxes: &[CropBox],
    ) -> Result<Vec<Image>> {
        let t = &self.transform;
        let den = if t.reduced_decode {
            crop::decode_denominator(boxes, t.size)
        } else {
            1
        };
        let img = codec::decode(bytes, t.channels, den).map_err(|e| self.bad(i, e))?;
        let (h, w) = t.size;
        boxes
            .iter()
            .map(|b| {
                let b = b.scaled(full, (img.width, img.height));
                let data = crop::crop_resize(&img, b, t.size).map_err(|e| self.bad(i, e))?;
                Ok(Image::new(w, h, t.channels, data))
            })
            .collect()
    }

    fn eval_box(&self, full: (usize, usize)) -> CropBox {
        let t = &self.transform;
        crop::center_box(full.0, full.1, t.resize, t.size)
    }
}

impl ImageStream for FileStream {
    fn len(&self) -> usize {
        self.source.len()
    }

    fn shape(&self) -> (usize, usize, usize) {
        let t = &self.transform;
        (t.size.0, t.size.1, t.channels)
    }

    fn train_views(&self, i: usize, rngs: &mut [StreamRng]) -> Result<Vec<Image>> {
        let bytes = self.read(i)?;
        let full = codec::dimensions(&bytes).map_err(|e| self.bad(i, e))?;
        let boxes: Vec<CropBox> = match self.transform.train_crop {
            TrainCrop::RandomResized { scale, ratio } => rngs
                .iter_mut()
                .map(|rng| crop::random_resized_box(full.0, full.1, scale, ratio, rng))
                .collect(),
            TrainCrop::Center => vec![self.eval_box(full); rngs.len()],
        };
        self.crops(i, &bytes, full, &boxes)
    }

    fn eval_view(&self, i: usize) -> Result<Image> {
        let bytes = self.read(i)?;
        let full = codec::dimensions(&bytes).map_err(|e| self.bad(i, e))?;
        let b = self.eval_box(full);
        Ok(self.crops(i, &bytes, full, &[b])?.remove(0))
    }

    fn on_unreadable(&self, i: usize, error: Error) -> Result<()> {
        if self.transform.on_bad_image == OnBadImage::Fail {
            return Err(error);
        }
        let mut skipped = self.skipped.lock().unwrap_or_else(|p| p.into_inner());
        if skipped.insert(i) {
            eprintln!("warning: skipped (on_bad_image: skip): {error}");
        }
        Ok(())
    }

    fn skipped(&self) -> usize {
        self.skipped.lock().map(|s| s.len()).unwrap_or(0)
    }
}
