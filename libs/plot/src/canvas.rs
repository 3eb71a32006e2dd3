//! An RGB canvas with lines, rectangles and text.

use rolekd_core::Result;
use std::path::Path;

pub const WHITE: [u8; 3] = [255, 255, 255];
pub const BLACK: [u8; 3] = [0, 0, 0];

/// An RGB canvas.
#[derive(Clone, Debug)]
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Canvas {
    pub fn new(width: usize, height: usize, background: [u8; 3]) -> Canvas {
        Canvas {
            width,
            height,
            data: background.repeat(width * height),
        }
    }

    pub fn get(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    pub fn set(&mut self, x: usize, y: usize, c: [u8; 3]) {
        if x < self.width && y < self.height {
            let i = (y * self.width + x) * 3;
            self.data[i..i + 3].copy_from_slice(&c);
        }
    }

    /// Fills `[x0, x1) x [y0, y1)` (clipped).
    pub fn fill(&mut self, x0: usize, y0: usize, x1: usize, y1: usize, c: [u8; 3]) {
        for y in y0..y1.min(self.height) {
            for x in x0..x1.min(self.width) {
                self.set(x, y, c);
            }
        }
    }

    /// Writes `text` (upper-cased; unknown characters as blanks) with its top-left corner at
    /// (x, y), each font pixel `scale` pixels wide.
    pub fn text(&mut self, x: usize, y: usize, text: &str, scale: usize, c: [u8; 3]) {
        for (k, ch) in text.chars().enumerate() {
            let rows = crate::font::glyph(ch.to_ascii_uppercase());
            let gx = x + k * 4 * scale;
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..3 {
                    if bits & (0b100 >> col) != 0 {
                        self.fill(
                            gx + col * scale,
                            y + r * scale,
                            gx + (col + 1) * scale,
                            y + (r + 1) * scale,
                            c,
                        );
                    }
                }
            }
        }
    }

    /// The width in pixels of `text` at `scale`.
    pub fn text_width(text: &str, scale: usize) -> usize {
        text.chars().count() * 4 * scale
    }

    /// The canvas as PNG bytes.
    pub fn to_png(&self) -> Vec<u8> {
        crate::png::encode_rgb(self.width, self.height, &self.data)
    }

    /// Writes the canvas as a PNG file (atomically: a reader never sees half a picture).
    pub fn save(&self, path: &Path) -> Result<()> {
        rolekd_core::files::write_atomic(path, &self.to_png())
    }

    /// A straight line `width` pixels thick (Bresenham), clipped to the canvas.
    pub fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), col: [u8; 3], width: i64) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            for ox in 0..width {
                for oy in 0..width {
                    let (px, py) = (x + ox - width / 2, y + oy - width / 2);
                    if px >= 0 && py >= 0 {
                        self.set(px as usize, py as usize, col);
                    }
                }
            }
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Copies `other` onto this canvas with its top-left corner at (x, y), clipped.
    pub fn blit(&mut self, other: &Canvas, x: usize, y: usize) {
        for oy in 0..other.height {
            for ox in 0..other.width {
                self.set(x + ox, y + oy, other.get(ox, oy));
            }
        }
    }
}
