//! The report of a finished (or partly finished) run directory: `report.md` with the
//! results table (mean ± std when the pipeline ran over `seeds:`), the students ranked,
//! each search's figures, and PNG plots (accuracy curves per stage, every searched
//! schedule side by side). Everything is read back from the run directory, so a report can
//! be written for any run, at any time, by `rolekd-run report RUN_DIR`.

mod curves;
mod markdown;
mod scan;

pub use scan::{scan_run, RunScan, StageScan};

use rolekd_core::rundir::write_atomic;
use rolekd_core::Result;
use std::path::{Path, PathBuf};

/// The files a report consists of.
#[derive(Debug)]
pub struct ReportFiles {
    pub markdown: PathBuf,
    pub pictures: Vec<PathBuf>,
}

/// Writes `report.md`, `curves.png` and (when the run searched schedules) `schedules.png`
/// into `run_dir`.
pub fn write_report(run_dir: &Path) -> Result<ReportFiles> {
    let run = scan_run(run_dir)?;
    let mut pictures = Vec::new();
    let curves_path = run_dir.join("curves.png");
    if let Some(canvas) = curves::accuracy_curves(&run) {
        canvas.save(&curves_path)?;
        pictures.push(curves_path);
    }
    let schedules_path = run_dir.join("schedules.png");
    if let Some(canvas) = curves::schedules_side_by_side(&run)? {
        canvas.save(&schedules_path)?;
        pictures.push(schedules_path);
    }
    let names: Vec<String> = pictures
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let text = markdown::render(&run, &names);
    let markdown = run_dir.join("report.md");
    write_atomic(&markdown, text.as_bytes())?;
    Ok(ReportFiles { markdown, pictures })
}
