//! The report of a finished (or partly finished) run directory: `report.md` with the
//! results table (mean ± std when the pipeline ran over `seeds:`), the students ranked,
//! each search's figures, and PNG plots (accuracy curves per stage, every searched
//! schedule side by side). Everything is read back from the run directory, so a report can
//! be written for any run, at any time, by `rolekd-run report RUN_DIR`.

mod curves;
mod markdown;
pub mod paired;
mod scan;
mod summary;

pub use scan::{scan_run, RunScan, StageScan};
pub use summary::{final_acc, mean_std, summary_markdown, WARNED};

use rolekd_core::files::write_atomic;
use rolekd_core::Result;
use std::path::{Path, PathBuf};

/// The files a report consists of.
#[derive(Debug)]
pub struct ReportFiles {
    pub markdown: PathBuf,
    pub pictures: Vec<PathBuf>,
}

/// Writes `report.md`, `curves.png` (its data as `curves.csv` and `curves.svg`) and (when
/// the run searched schedules) `schedules.png` into `run_dir`.
pub fn write_report(run_dir: &Path) -> Result<ReportFiles> {
    let run = scan_run(run_dir)?;
    let mut pictures = Vec::new();
    let curves_path = run_dir.join("curves.png");
    if let Some(canvas) = curves::accuracy_curves(&run) {
        canvas.save(&curves_path)?;
        pictures.push(curves_path);
        curves::write_curve_data(&run, run_dir)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use rolekd_augment::schedule::{save, Schedule};
    use serde_json::json;

    /// A run directory by hand: one search stage per schedule, over `seeds`.
    fn fake_run(dir: &Path, seeds: &[u64], schedules: &[(&str, Vec<i64>)]) {
        let stages: Vec<String> = schedules
            .iter()
            .map(|(n, _)| format!("  {n}: {{kind: search}}"))
            .collect();
        std::fs::write(
            dir.join("pipeline.yaml"),
            format!(
                "name: fake\nseeds: {seeds:?}\nstages:\n{}\n",
                stages.join("\n")
            ),
        )
        .unwrap();
        for seed in seeds {
            for (name, genes) in schedules {
                let d = rolekd_engine::runtime::seed_dir(dir, *seed).join(name);
                std::fs::create_dir_all(&d).unwrap();
                save(
                    &Schedule::constant(genes, 6).unwrap(),
                    &d.join("schedule.json"),
                )
                .unwrap();
                let result = json!({"kind": "search", "result": {
                    "outputs": {"schedule": "schedule.json"},
                    "summary": {"best_val_acc": 0.8, "population": 4.0, "exploits": 2.0},
                }});
                std::fs::write(d.join("result.json"), result.to_string()).unwrap();
                std::fs::write(
                    d.join("config.yaml"),
                    "role: student\nstrategy: {type: pba}\n",
                )
                .unwrap();
            }
        }
    }

    #[test]
    fn an_empty_searched_schedule_is_flagged_and_counted() {
        let d = tempfile::tempdir().unwrap();
        let mut busy = vec![0i64; 60];
        (busy[0], busy[1], busy[6], busy[7]) = (5, 4, 10, 8);
        fake_run(
            d.path(),
            &[0, 1],
            &[("empty_search", vec![0; 60]), ("busy_search", busy)],
        );
        write_report(d.path()).unwrap();
        let report = std::fs::read_to_string(d.path().join("report.md")).unwrap();
        let row = |name: &str| {
            report
                .lines()
                .find(|l| l.starts_with(&format!("| {name} | pba")))
                .unwrap_or_else(|| panic!("{name}: {report}"))
                .to_string()
        };
        // Ops with p > 0 at the end, mean p, mean magnitude: per seed.
        assert!(
            row("empty_search").ends_with("| 0 / 0 | 0.00 / 0.00 | - / - |"),
            "{report}"
        );
        // Two entries fire (p 0.5 and 1.0, magnitudes 4 and 8): mean p 1.5 / 30.
        assert!(
            row("busy_search").ends_with("| 2 / 2 | 0.05 / 0.05 | 6.0 / 6.0 |"),
            "{report}"
        );
        let warning = report
            .lines()
            .find(|l| l.contains(markdown::EMPTY_SCHEDULE))
            .unwrap_or_else(|| panic!("no warning: {report}"));
        assert!(
            warning.contains("empty_search (seed 0), empty_search (seed 1)"),
            "{warning}"
        );
        assert!(!warning.contains("busy_search"), "{warning}");
    }

    /// A finished train stage: `config` as it ran, one epoch with loss `loss`, test `acc`.
    fn train_stage(dir: &Path, name: &str, config: &str, loss: f64, acc: f64) {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("config.yaml"), config).unwrap();
        let result = json!({"kind": "train", "result": {"outputs": {},
            "summary": {"final_test_acc": acc}}});
        std::fs::write(d.join("result.json"), result.to_string()).unwrap();
        let epoch = json!({"epoch": 1, "lr": 0.05, "loss": {"total": loss}, "train_acc": 0.9,
            "test_acc": acc, "images_per_s": 1.0, "seconds": 1.0});
        std::fs::write(d.join("metrics.jsonl"), format!("{epoch}\n")).unwrap();
    }

    #[test]
    fn augmented_stages_are_paired_with_their_twin_without_augmentation() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("pipeline.yaml"),
            "name: twins\nseeds: [0]\nstages:\n  plain: {}\n  padflip: {}\n  other: {}\n",
        )
        .unwrap();
        // Seed 1 ran in a later invocation whose pipeline.yaml said `seeds: [0]`.
        for (seed, shift) in [(0u64, 0.0), (1, 0.01)] {
            let dir = rolekd_engine::runtime::seed_dir(d.path(), seed);
            let model = "model: {type: resnet-cifar, depth: 20}\nepochs: 30\n";
            train_stage(&dir, "plain", model, 0.3, 0.80);
            let aug = format!("{model}augment: {{type: standard, pad: 2}}\n");
            train_stage(&dir, "padflip", &aug, 0.4, 0.81 + shift);
            // A different budget: not plain's twin, and no twin of its own.
            let other =
                "model: {type: resnet-cifar, depth: 20}\nepochs: 10\naugment: {type: standard}\n";
            train_stage(&dir, "other", other, 0.5, 0.70);
        }
        write_report(d.path()).unwrap();
        let report = std::fs::read_to_string(d.path().join("report.md")).unwrap();
        let row = report
            .lines()
            .find(|l| l.starts_with("| padflip minus plain |"))
            .unwrap_or_else(|| panic!("no twin row: {report}"));
        // Seeds 0 and 1: +1.00 and +2.00 points; t(0.975, 1) = 12.706.
        assert!(
            row.contains("+1.50 ± 0.71 | [-4.85, +7.85] | +1.00 / +2.00 | 2/2 | 0"),
            "{row}"
        );
        assert!(!report.contains("other minus"), "{report}");
    }
}
