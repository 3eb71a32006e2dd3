//! The image type augmentation works on.

/// An 8-bit image in Pillow's interleaved layout (row-major, channels last), so ops can follow
/// Pillow's arithmetic exactly. `uncovered` marks pixels a geometric op or cutout exposed:
/// after normalisation they become the dataset mean (zero), as in PBA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: Vec<u8>,
    pub uncovered: Vec<bool>,
}

impl Image {
    /// An image with nothing uncovered.
    pub fn new(width: usize, height: usize, channels: usize, data: Vec<u8>) -> Self {
        assert_eq!(data.len(), width * height * channels, "image buffer size");
        Image {
            width,
            height,
            channels,
            data,
            uncovered: vec![false; width * height],
        }
    }

    pub fn pixels(&self) -> usize {
        self.width * self.height
    }

    /// The value of channel `c` at (x, y).
    pub fn at(&self, x: usize, y: usize, c: usize) -> u8 {
        self.data[(y * self.width + x) * self.channels + c]
    }

    /// Writes this image, normalised, into a CHW float buffer; uncovered pixels become 0
    /// (the mean).
    pub fn write_normalised(&self, out: &mut [f32], mean: &[f32], std: &[f32]) {
        let n = self.pixels();
        debug_assert_eq!(out.len(), n * self.channels);
        let any_uncovered = self.uncovered.iter().any(|&u| u);
        for c in 0..self.channels {
            let scale = 1.0 / (255.0 * std[c]);
            let shift = mean[c] / std[c];
            let dst = &mut out[c * n..(c + 1) * n];
            let src = self.data[c..].iter().step_by(self.channels);
            // The same arithmetic either way; without uncovered pixels the loop has no
            // branch and vectorises.
            if any_uncovered {
                for ((d, &v), &u) in dst.iter_mut().zip(src).zip(&self.uncovered) {
                    *d = if u { 0.0 } else { v as f32 * scale - shift };
                }
            } else {
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d = v as f32 * scale - shift;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_to_chw_and_uncovered_to_zero() {
        let mut img = Image::new(2, 1, 2, vec![0, 255, 255, 0]);
        img.uncovered[1] = true;
        let mut out = vec![9.0; 4];
        img.write_normalised(&mut out, &[0.5, 0.5], &[0.5, 0.5]);
        assert_eq!(out, vec![-1.0, 0.0, 1.0, 0.0]);
    }
}
