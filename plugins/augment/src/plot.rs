//! PBA's two schedule plots (per-op probability and magnitude over epochs, stacked, with
//! their data as CSV beside the PNG) and a preview grid of augmented images, drawn with
//! `rolekd-plot`.

use crate::ops::pba::PbaOp;
use crate::schedule::Schedule;
use rolekd_core::plugin::image::Image;
use rolekd_core::Result;
pub use rolekd_plot::{Canvas, EpochChart};
use rolekd_plot::{BLACK, WHITE};
use std::path::Path;

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
    plot_canvas(schedule).save(path)?;
    write_series_csv(schedule, &path.with_extension("csv"))
}

/// What the plot draws, as `epoch, op, probability, magnitude` (both slots summed; only
/// the ops applied in that epoch).
pub fn write_series_csv(schedule: &Schedule, path: &Path) -> Result<()> {
    let (probs, mags) = per_op_series(schedule);
    let mut rows = Vec::new();
    for (e, (p, m)) in probs.iter().zip(&mags).enumerate() {
        for (k, op) in PbaOp::ALL.iter().enumerate() {
            if p[k] > 0.0 {
                rows.push(vec![
                    e.to_string(),
                    op.name().to_string(),
                    format!("{}", p[k]),
                    format!("{}", m[k]),
                ]);
            }
        }
    }
    rolekd_plot::write_csv(path, &["epoch", "op", "probability", "magnitude"], &rows)
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

    fn decode(png: &[u8]) -> (usize, usize, Vec<u8>) {
        rolekd_plot::png::decode_rgb(png).unwrap()
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
