//! The report's pictures: test accuracy per epoch of every training stage, and every
//! searched schedule's plot side by side.

use crate::scan::RunScan;
use rolekd_augment::plot::{plot_canvas, OP_COLOURS};
use rolekd_augment::schedule;
use rolekd_core::Result;
use rolekd_plot::{svg_lines, write_csv, Canvas, EpochChart, Line, BLACK, WHITE};
use std::path::{Path, PathBuf};

/// (stage, [(epoch, test accuracy)]) of every train/distill stage of the first seed that
/// has per-epoch test accuracy.
fn accuracy_series(run: &RunScan) -> Vec<(&str, Vec<(usize, f64)>)> {
    let Some((_, stages)) = run.seeds.first() else {
        return Vec::new();
    };
    stages
        .iter()
        .map(|s| {
            let points = s
                .metrics
                .iter()
                .filter_map(|m| m.test_acc.map(|a| (m.epoch, a)))
                .collect::<Vec<_>>();
            (s.name.as_str(), points)
        })
        .filter(|(_, p)| !p.is_empty())
        .collect()
}

/// The curves' data beside `curves.png`: `curves.csv` (stage, epoch, test_acc) and
/// `curves.svg` (the same chart, zoomable). Returns the files written.
pub fn write_curve_data(run: &RunScan, dir: &Path) -> Result<Vec<PathBuf>> {
    let series = accuracy_series(run);
    if series.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<Vec<String>> = series
        .iter()
        .flat_map(|(name, pts)| {
            pts.iter()
                .map(move |(e, a)| vec![name.to_string(), e.to_string(), a.to_string()])
        })
        .collect();
    let csv = dir.join("curves.csv");
    write_csv(&csv, &["stage", "epoch", "test_acc"], &rows)?;
    let chart = EpochChart::new(series.iter().flat_map(|(_, p)| p.iter().map(|x| x.1)), 1);
    let epochs = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.0))
        .max()
        .unwrap_or(1);
    let lines: Vec<Line> = series
        .iter()
        .enumerate()
        .map(|(k, (name, pts))| Line {
            name: name.to_string(),
            colour: OP_COLOURS[k % OP_COLOURS.len()],
            points: pts.iter().map(|&(e, a)| (e as f64, a)).collect(),
        })
        .collect();
    let svg = dir.join("curves.svg");
    let text = svg_lines(
        "Test accuracy per epoch",
        "epoch",
        &lines,
        epochs as f64,
        chart.lo,
        chart.hi,
    );
    rolekd_core::files::write_atomic(&svg, text.as_bytes())?;
    Ok(vec![csv, svg])
}

/// Test accuracy over epochs, one line per train/distill stage (first seed), with a legend.
/// None when no stage has per-epoch test accuracy yet.
pub fn accuracy_curves(run: &RunScan) -> Option<Canvas> {
    let series = accuracy_series(run);
    if series.is_empty() {
        return None;
    }
    let epochs = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.0))
        .max()
        .unwrap_or(1)
        .max(1);
    let chart = EpochChart::new(
        series.iter().flat_map(|(_, p)| p.iter().map(|x| x.1)),
        epochs,
    );
    let (left, top, pw, ph) = (chart.left, chart.top, chart.width, chart.height);
    let legend_rows = series.len();
    let height = (top + ph + 50).max(top + 18 * legend_rows as i64 + 20) as usize;
    let mut c = Canvas::new(1000, height, WHITE);
    let px = |e: usize| chart.x(e);
    let py = |a: f64| chart.y(a);
    chart.draw_frame(&mut c, "TEST ACCURACY PER EPOCH, PERCENT", |v| {
        format!("{:.1}", v * 100.0)
    });
    for (k, (name, points)) in series.iter().enumerate() {
        let col = OP_COLOURS[k % OP_COLOURS.len()];
        let mut prev = None;
        for &(e, a) in points {
            let p = (px(e), py(a));
            if let Some(q) = prev {
                c.line(q, p, col, 2);
            } else {
                c.fill(
                    p.0 as usize - 2,
                    p.1 as usize - 2,
                    p.0 as usize + 3,
                    p.1 as usize + 3,
                    col,
                );
            }
            prev = Some(p);
        }
        let ly = top as usize + k * 18;
        let lx = (left + pw + 24) as usize;
        c.fill(lx, ly, lx + 12, ly + 12, col);
        c.text(lx + 20, ly + 1, name, 2, BLACK);
    }
    Some(c)
}

/// The schedule of every finished search stage (first seed), side by side with its stage
/// name above. None when the run has no finished search.
pub fn schedules_side_by_side(run: &RunScan) -> Result<Option<Canvas>> {
    let Some((_, stages)) = run.seeds.first() else {
        return Ok(None);
    };
    let mut plots = Vec::new();
    for s in stages {
        if let Some(path) = s.output("schedule").filter(|p| p.is_file()) {
            plots.push((s.name.clone(), plot_canvas(&schedule::load(&path)?)));
        }
    }
    if plots.is_empty() {
        return Ok(None);
    }
    let width = plots.iter().map(|(_, p)| p.width).sum::<usize>();
    let height = plots.iter().map(|(_, p)| p.height).max().unwrap_or(0) + 40;
    let mut c = Canvas::new(width, height, WHITE);
    let mut x = 0;
    for (name, p) in &plots {
        c.text(x + 20, 12, name, 3, BLACK);
        c.blit(p, x, 40);
        x += p.width;
    }
    Ok(Some(c))
}
