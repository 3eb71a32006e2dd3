//! The frame every epoch chart shares.

use crate::canvas::{Canvas, BLACK};

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
