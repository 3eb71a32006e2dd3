//! Pictures without a plotting stack: a small PNG encoder, a 3x5 pixel font, PBA's two
//! schedule plots (per-op probability and magnitude over epochs, stacked) and a preview
//! grid of augmented images.

use crate::ops::pba::PbaOp;
use crate::schedule::Schedule;
use flate2::write::ZlibEncoder;
use flate2::Compression;
use rolekd_core::plugin::image::Image;
use rolekd_core::Result;
use std::io::Write;
use std::path::Path;

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
            let rows = glyph(ch.to_ascii_uppercase());
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
        encode_png_rgb(self.width, self.height, &self.data)
    }

    /// Writes the canvas as a PNG file (atomically: a reader never sees half a picture).
    pub fn save(&self, path: &Path) -> Result<()> {
        rolekd_core::rundir::write_atomic(path, &self.to_png())
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

/// The frame of a line chart of values in [0, 1] over epochs (a run's accuracy curves, a
/// search's rewards): the value range padded around the data, the pixel mapping, grid,
/// axes, tick labels and title.
#[derive(Clone, Copy, Debug)]
pub struct EpochChart {
    pub left: i64,
    pub top: i64,
    pub width: i64,
    pub height: i64,
    pub epochs: usize,
    pub lo: f64,
    pub hi: f64,
}

impl EpochChart {
    /// A 640x400 plot area at (70, 40) whose value range covers the finite `values`.
    pub fn new(values: impl IntoIterator<Item = f64>, epochs: usize) -> EpochChart {
        let (mut lo, mut hi) = values
            .into_iter()
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                (a.min(v), b.max(v))
            });
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        let pad = ((hi - lo) * 0.08).max(0.005);
        lo = (lo - pad).max(0.0);
        hi = (hi + pad).min(1.0).max(lo + 0.01);
        EpochChart {
            left: 70,
            top: 40,
            width: 640,
            height: 400,
            epochs: epochs.max(1),
            lo,
            hi,
        }
    }

    /// The x pixel of epoch `e`.
    pub fn x(&self, e: usize) -> i64 {
        self.left + (e as i64 * self.width) / self.epochs as i64
    }

    /// The y pixel of value `v`.
    pub fn y(&self, v: f64) -> i64 {
        self.top + self.height
            - ((v - self.lo) / (self.hi - self.lo) * self.height as f64).round() as i64
    }

    /// Grid, axes, six value ticks labelled by `label`, up to eleven epoch ticks, `title`.
    pub fn draw_frame(&self, c: &mut Canvas, title: &str, label: impl Fn(f64) -> String) {
        const FRAME_GRID: [u8; 3] = [228, 228, 228];
        let (left, top, pw, ph) = (self.left, self.top, self.width, self.height);
        for k in 0..=5 {
            let v = self.lo + (self.hi - self.lo) * k as f64 / 5.0;
            let y = self.y(v);
            c.line((left, y), (left + pw, y), FRAME_GRID, 1);
            let text = label(v);
            let x = (left as usize).saturating_sub(Canvas::text_width(&text, 2) + 6);
            c.text(x, (y - 5).max(0) as usize, &text, 2, BLACK);
        }
        let step = self.epochs.div_ceil(10).max(1);
        for e in (0..=self.epochs).step_by(step) {
            let x = self.x(e);
            c.line((x, top), (x, top + ph), FRAME_GRID, 1);
            let text = e.to_string();
            let lx = (x as usize).saturating_sub(Canvas::text_width(&text, 2) / 2);
            c.text(lx, (top + ph + 8) as usize, &text, 2, BLACK);
        }
        c.line((left, top + ph), (left + pw, top + ph), BLACK, 1);
        c.line((left, top), (left, top + ph), BLACK, 1);
        c.text(left as usize, 12, title, 2, BLACK);
    }
}

/// 3x5 glyphs, one row per entry, bit 2 = left column.
fn glyph(c: char) -> [u8; 5] {
    match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        'A' => [2, 5, 7, 5, 5],
        'B' => [6, 5, 6, 5, 6],
        'C' => [3, 4, 4, 4, 3],
        'D' => [6, 5, 5, 5, 6],
        'E' => [7, 4, 6, 4, 7],
        'F' => [7, 4, 6, 4, 4],
        'G' => [3, 4, 5, 5, 3],
        'H' => [5, 5, 7, 5, 5],
        'I' => [7, 2, 2, 2, 7],
        'J' => [1, 1, 1, 5, 2],
        'K' => [5, 5, 6, 5, 5],
        'L' => [4, 4, 4, 4, 7],
        'M' => [5, 7, 7, 5, 5],
        'N' => [6, 5, 5, 5, 5],
        'O' => [2, 5, 5, 5, 2],
        'P' => [6, 5, 6, 4, 4],
        'Q' => [2, 5, 5, 6, 3],
        'R' => [6, 5, 6, 5, 5],
        'S' => [3, 4, 2, 1, 6],
        'T' => [7, 2, 2, 2, 2],
        'U' => [5, 5, 5, 5, 7],
        'V' => [5, 5, 5, 5, 2],
        'W' => [5, 5, 7, 7, 5],
        'X' => [5, 5, 2, 5, 5],
        'Y' => [5, 5, 2, 2, 2],
        'Z' => [7, 1, 2, 4, 7],
        '.' => [0, 0, 0, 0, 2],
        ',' => [0, 0, 0, 2, 4],
        '-' => [0, 0, 7, 0, 0],
        ':' => [0, 2, 0, 2, 0],
        '/' => [1, 1, 2, 4, 4],
        '(' => [2, 4, 4, 4, 2],
        ')' => [2, 1, 1, 1, 2],
        '=' => [0, 7, 0, 7, 0],
        '+' => [0, 2, 7, 2, 0],
        '_' => [0, 0, 0, 0, 7],
        _ => [0; 5],
    }
}

fn crc32(chunks: &[&[u8]]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for data in chunks {
        for &b in *data {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
    }
    !crc
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc32(&[kind, data]).to_be_bytes());
}

/// Encodes 8-bit RGB pixels (row-major) as a PNG (filter 0 on every row, zlib).
pub fn encode_png_rgb(width: usize, height: usize, rgb: &[u8]) -> Vec<u8> {
    assert_eq!(rgb.len(), width * height * 3, "RGB buffer size");
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::with_capacity(13);
    ihdr.extend_from_slice(&(width as u32).to_be_bytes());
    ihdr.extend_from_slice(&(height as u32).to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
    for row in rgb.chunks(width * 3) {
        z.write_all(&[0]).expect("in-memory write");
        z.write_all(row).expect("in-memory write");
    }
    chunk(&mut out, b"IDAT", &z.finish().expect("in-memory zlib"));
    chunk(&mut out, b"IEND", &[]);
    out
}

/// 15 distinguishable colours, one per PBA op in gene order.
pub const OP_COLOURS: [[u8; 3]; 15] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
    [174, 199, 232],
    [255, 187, 120],
    [152, 223, 138],
    [255, 152, 150],
    [197, 176, 213],
];

const WHITE: [u8; 3] = [255, 255, 255];
const BLACK: [u8; 3] = [0, 0, 0];
const GRID: [u8; 3] = [225, 225, 225];

/// Where the plots sit on the canvas (pixels).
#[derive(Clone, Copy, Debug)]
pub struct PlotLayout {
    pub width: usize,
    pub height: usize,
    /// Left edge of both panels' drawing areas.
    pub left: usize,
    /// Width of the drawing areas.
    pub plot_width: usize,
    /// Top of the probability panel's and the magnitude panel's drawing areas.
    pub tops: [usize; 2],
    /// Height of each drawing area.
    pub plot_height: usize,
}

/// The layout [`plot_png`] uses.
pub const LAYOUT: PlotLayout = PlotLayout {
    width: 1000,
    height: 640,
    left: 70,
    plot_width: 700,
    tops: [40, 350],
    plot_height: 230,
};

/// Per-op totals over both slots at each epoch: (probabilities, magnitudes of the
/// entries with non-zero probability).
pub fn per_op_series(schedule: &Schedule) -> (Vec<[f64; 15]>, Vec<[f64; 15]>) {
    let mut probs = Vec::with_capacity(schedule.epochs);
    let mut mags = Vec::with_capacity(schedule.epochs);
    for e in 0..schedule.epochs {
        let seg = schedule.policy_at(e, schedule.epochs);
        let (mut p, mut m) = ([0.0; 15], [0.0; 15]);
        for entry in &seg.policy {
            if let Some(op) = PbaOp::from_name(&entry.op) {
                p[op.index()] += entry.prob;
                if entry.prob > 0.0 {
                    m[op.index()] += entry.magnitude as f64;
                }
            }
        }
        probs.push(p);
        mags.push(m);
    }
    (probs, mags)
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for k in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= k * p {
            return k * p;
        }
    }
    10.0 * p
}

fn fmt_tick(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

fn draw_panel(
    c: &mut Canvas,
    l: &PlotLayout,
    top: usize,
    title: &str,
    series: &[[f64; 15]],
    epochs: usize,
) {
    let (x0, w, h) = (l.left, l.plot_width, l.plot_height);
    let ymax = nice_max(
        series
            .iter()
            .map(|s| s.iter().sum::<f64>())
            .fold(0.0, f64::max),
    );
    c.text(x0, top - 22, title, 3, BLACK);
    // Horizontal grid lines and y ticks at quarters.
    for q in 0..=4 {
        let y = top + h - q * h / 4;
        c.fill(x0, y, x0 + w, y + 1, GRID);
        let label = fmt_tick(ymax * q as f64 / 4.0);
        let tw = Canvas::text_width(&label, 2);
        c.text(
            x0.saturating_sub(tw + 6),
            y.saturating_sub(5),
            &label,
            2,
            BLACK,
        );
    }
    // Stacked columns: each pixel column shows the epoch under it.
    for px in 0..w {
        let e = (px * epochs / w).min(epochs - 1);
        let mut base = 0.0;
        for (k, &v) in series[e].iter().enumerate() {
            if v <= 0.0 {
                continue;
            }
            let ya = top + h - ((base / ymax) * h as f64).round() as usize;
            base += v;
            let yb = top + h - ((base / ymax) * h as f64).round().min(h as f64) as usize;
            c.fill(x0 + px, yb, x0 + px + 1, ya, OP_COLOURS[k]);
        }
    }
    // Axes and x ticks.
    c.fill(x0 - 1, top, x0, top + h + 1, BLACK);
    c.fill(x0 - 1, top + h, x0 + w, top + h + 1, BLACK);
    let ticks = 5.min(epochs);
    for t in 0..=ticks {
        let e = t * epochs / ticks.max(1);
        let x = x0 + e * w / epochs;
        c.fill(
            x.min(x0 + w - 1),
            top + h,
            x.min(x0 + w - 1) + 1,
            top + h + 5,
            BLACK,
        );
        let label = e.to_string();
        let tw = Canvas::text_width(&label, 2);
        c.text(x.saturating_sub(tw / 2), top + h + 8, &label, 2, BLACK);
    }
    c.text(
        x0 + w / 2 - Canvas::text_width("EPOCH", 2) / 2,
        top + h + 22,
        "EPOCH",
        2,
        BLACK,
    );
}

/// Draws PBA's two schedule plots into one PNG: the per-op probability (both slots summed)
/// stacked over epochs on top, the per-op magnitude (summed over the slots that can fire)
/// below, and a legend of coloured boxes.
pub fn plot_canvas(schedule: &Schedule) -> Canvas {
    let l = LAYOUT;
    let mut c = Canvas::new(l.width, l.height, WHITE);
    let (probs, mags) = per_op_series(schedule);
    let epochs = schedule.epochs.max(1);
    if !probs.is_empty() {
        draw_panel(
            &mut c,
            &l,
            l.tops[0],
            "OPERATION PROBABILITY",
            &probs,
            epochs,
        );
        draw_panel(&mut c, &l, l.tops[1], "OPERATION MAGNITUDE", &mags, epochs);
    }
    if !schedule.stats().applies_any_op {
        // An empty schedule is a result (the search chose no augmentation), not a blank.
        for (top, line) in l.tops.iter().zip(NO_OP_LINES) {
            let x = l.left + l.plot_width / 2 - Canvas::text_width(line, 3) / 2;
            c.text(x, top + l.plot_height / 2 - 10, line, 3, NO_OP_COLOUR);
        }
    }
    let lx = l.left + l.plot_width + 30;
    for (k, op) in PbaOp::ALL.iter().enumerate() {
        let y = l.tops[0] + k * 22;
        c.fill(lx, y, lx + 14, y + 14, OP_COLOURS[k]);
        c.text(lx + 22, y + 2, op.name(), 2, BLACK);
    }
    c
}

/// What an empty schedule's panels say instead of staying blank.
pub const NO_OP_LINES: [&str; 2] = ["NO OP APPLIED IN ANY EPOCH", "(NO AUGMENTATION)"];
const NO_OP_COLOUR: [u8; 3] = [200, 0, 0];

/// Writes [`plot_canvas`] as a PNG file.
pub fn plot_png(schedule: &Schedule, path: &Path) -> Result<()> {
    schedule.validate()?;
    plot_canvas(schedule).save(path)
}

/// The colour uncovered pixels are drawn in by the preview grid.
pub const UNCOVERED_COLOUR: [u8; 3] = [255, 0, 255];
/// Preview cells magnify each image pixel this many times.
pub const PREVIEW_SCALE: usize = 3;
/// Gap between preview cells.
pub const PREVIEW_GAP: usize = 4;

/// A grid: the originals in the first row, then one row per entry of `augmented_rows`
/// (row r, column i: an augmented version of original i). Images are magnified
/// [`PREVIEW_SCALE`] times, grayscale shown as gray, uncovered pixels in magenta.
pub fn preview_grid(originals: &[Image], augmented_rows: &[Vec<Image>]) -> Canvas {
    let rows: Vec<&[Image]> = std::iter::once(originals)
        .chain(augmented_rows.iter().map(|r| r.as_slice()))
        .collect();
    let cols = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let cw = rows
        .iter()
        .flat_map(|r| r.iter())
        .map(|i| i.width)
        .max()
        .unwrap_or(0)
        * PREVIEW_SCALE;
    let ch = rows
        .iter()
        .flat_map(|r| r.iter())
        .map(|i| i.height)
        .max()
        .unwrap_or(0)
        * PREVIEW_SCALE;
    let width = PREVIEW_GAP + cols * (cw + PREVIEW_GAP);
    let height = PREVIEW_GAP + rows.len() * (ch + PREVIEW_GAP);
    let mut c = Canvas::new(width.max(1), height.max(1), WHITE);
    for (r, row) in rows.iter().enumerate() {
        // A thin rule under the originals.
        if r == 1 {
            let y = PREVIEW_GAP + ch + PREVIEW_GAP / 2 - 1;
            c.fill(0, y, width, y + 1, BLACK);
        }
        for (i, img) in row.iter().enumerate() {
            let (ox, oy) = (
                PREVIEW_GAP + i * (cw + PREVIEW_GAP),
                PREVIEW_GAP + r * (ch + PREVIEW_GAP),
            );
            for y in 0..img.height {
                for x in 0..img.width {
                    let colour = if img.uncovered[y * img.width + x] {
                        UNCOVERED_COLOUR
                    } else if img.channels >= 3 {
                        [img.at(x, y, 0), img.at(x, y, 1), img.at(x, y, 2)]
                    } else {
                        [img.at(x, y, 0); 3]
                    };
                    let (px, py) = (ox + x * PREVIEW_SCALE, oy + y * PREVIEW_SCALE);
                    c.fill(px, py, px + PREVIEW_SCALE, py + PREVIEW_SCALE, colour);
                }
            }
        }
    }
    c
}

/// Writes [`preview_grid`] as a PNG file.
pub fn preview_grid_png(
    originals: &[Image],
    augmented_rows: &[Vec<Image>],
    path: &Path,
) -> Result<()> {
    preview_grid(originals, augmented_rows).save(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::ZlibDecoder;
    use std::io::Read;

    /// Decodes what [`encode_png_rgb`] writes (filter 0, one IDAT), checking CRCs.
    fn decode(png: &[u8]) -> (usize, usize, Vec<u8>) {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let (mut at, mut w, mut h, mut idat) = (8, 0, 0, Vec::new());
        while at < png.len() {
            let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
            let kind = &png[at + 4..at + 8];
            let data = &png[at + 8..at + 8 + len];
            let crc = u32::from_be_bytes(png[at + 8 + len..at + 12 + len].try_into().unwrap());
            assert_eq!(crc, crc32(&[kind, data]));
            match kind {
                b"IHDR" => {
                    w = u32::from_be_bytes(data[0..4].try_into().unwrap()) as usize;
                    h = u32::from_be_bytes(data[4..8].try_into().unwrap()) as usize;
                    assert_eq!(&data[8..], &[8, 2, 0, 0, 0]);
                }
                b"IDAT" => idat.extend_from_slice(data),
                _ => {}
            }
            at += 12 + len;
        }
        let mut raw = Vec::new();
        ZlibDecoder::new(&idat[..]).read_to_end(&mut raw).unwrap();
        let mut rgb = Vec::new();
        for row in raw.chunks(w * 3 + 1) {
            assert_eq!(row[0], 0);
            rgb.extend_from_slice(&row[1..]);
        }
        assert_eq!(rgb.len(), w * h * 3);
        (w, h, rgb)
    }

    #[test]
    fn crc_of_known_input() {
        // The standard check value of CRC-32.
        assert_eq!(crc32(&[b"123456789"]), 0xCBF4_3926);
        // IEND's fixed CRC.
        assert_eq!(crc32(&[b"IEND"]), 0xAE42_6082);
    }

    #[test]
    fn png_round_trips() {
        let rgb: Vec<u8> = (0..5 * 3 * 3).map(|i| (i * 17) as u8).collect();
        let (w, h, back) = decode(&encode_png_rgb(5, 3, &rgb));
        assert_eq!((w, h), (5, 3));
        assert_eq!(back, rgb);
    }

    #[test]
    fn schedule_plot_stacks_the_right_ops_in_the_right_epochs() {
        // Epochs 0..5: nothing; 5..10: Rotate slot 1 p=0.5 m=4 and Solarize slot 2 p=0.5 m=8.
        let mut g = vec![0i64; 60];
        g[0] = 5;
        g[1] = 4;
        g[2 * (15 + 9)] = 5;
        g[2 * (15 + 9) + 1] = 8;
        let s = Schedule::from_pieces(&[(5, vec![0; 60]), (5, g)]).unwrap();
        let (probs, mags) = per_op_series(&s);
        assert_eq!(probs[7][0], 0.5);
        assert_eq!(mags[7][9], 8.0);
        assert_eq!(probs[2].iter().sum::<f64>(), 0.0);
        let c = plot_canvas(&s);
        let l = LAYOUT;
        let (w, h, rgb) = decode(&c.to_png());
        assert_eq!((w, h), (l.width, l.height));
        let px = |x: usize, y: usize| -> [u8; 3] {
            rgb[(y * w + x) * 3..(y * w + x) * 3 + 3]
                .try_into()
                .unwrap()
        };
        let bottom = l.tops[0] + l.plot_height - 2;
        // Left half: no ops; right half: Rotate at the bottom of the probability panel.
        assert!(!OP_COLOURS.contains(&px(l.left + l.plot_width / 4, bottom)));
        assert_eq!(px(l.left + 3 * l.plot_width / 4, bottom), OP_COLOURS[0]);
        // Total probability 1.0 fills the panel (y max 1): Solarize on top of Rotate.
        assert_eq!(
            px(l.left + 3 * l.plot_width / 4, l.tops[0] + 2),
            OP_COLOURS[9]
        );
        // Magnitude panel: 4 + 8 = 12 -> axis max 20; Rotate takes the bottom 4/20.
        let mb = l.tops[1] + l.plot_height;
        let x = l.left + 3 * l.plot_width / 4;
        assert_eq!(px(x, mb - 2), OP_COLOURS[0]);
        assert_eq!(px(x, mb - l.plot_height * 4 / 20 - 3), OP_COLOURS[9]);
        assert!(!OP_COLOURS.contains(&px(x, mb - l.plot_height * 12 / 20 - 3)));
        // The legend holds every colour.
        for (k, col) in OP_COLOURS.iter().enumerate() {
            assert_eq!(px(l.left + l.plot_width + 35, l.tops[0] + k * 22 + 5), *col);
        }
    }

    #[test]
    fn an_empty_schedule_says_so_in_both_panels() {
        let red_in = |c: &Canvas, top: usize| {
            let l = LAYOUT;
            (top..top + l.plot_height)
                .flat_map(|y| (l.left..l.left + l.plot_width).map(move |x| (x, y)))
                .any(|(x, y)| c.get(x, y) == NO_OP_COLOUR)
        };
        let empty = plot_canvas(&Schedule::constant(&[0; 60], 4).unwrap());
        assert!(LAYOUT.tops.iter().all(|&t| red_in(&empty, t)));
        let mut g = vec![0i64; 60];
        g[0] = 3;
        let busy = plot_canvas(&Schedule::constant(&g, 4).unwrap());
        assert!(LAYOUT.tops.iter().all(|&t| !red_in(&busy, t)));
    }

    #[test]
    fn preview_grid_places_cells_and_marks() {
        let mut a = Image::new(
            2,
            2,
            3,
            vec![10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120],
        );
        let g = Image::new(2, 2, 1, vec![5, 6, 7, 8]);
        let orig = vec![a.clone(), g.clone()];
        a.uncovered[3] = true;
        let c = preview_grid(&orig, &[vec![a, g]]);
        let s = PREVIEW_SCALE;
        let cell = 2 * s + PREVIEW_GAP;
        assert_eq!(
            (c.width, c.height),
            (PREVIEW_GAP + 2 * cell, PREVIEW_GAP + 2 * cell)
        );
        assert_eq!(c.get(PREVIEW_GAP, PREVIEW_GAP), [10, 20, 30]);
        assert_eq!(c.get(PREVIEW_GAP + cell + s, PREVIEW_GAP), [6, 6, 6]);
        // Row 2, column 1, pixel (1, 1) is uncovered.
        assert_eq!(
            c.get(PREVIEW_GAP + s, PREVIEW_GAP + cell + s),
            UNCOVERED_COLOUR
        );
        assert_eq!(c.get(PREVIEW_GAP, PREVIEW_GAP + cell), [10, 20, 30]);
    }
}
