//! `metrics.csv` at the run root: every epoch of every stage (search trials and seeds
//! included) in one table, for spreadsheets, pandas and dashboards that import CSV.

use crate::trainer::{read_metrics, EpochMetrics};
use rolekd_core::error::{Error, Result};
use rolekd_core::files::csv_field;
use rolekd_core::files::write_atomic;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The file's name.
pub const METRICS_CSV: &str = "metrics.csv";

/// The fixed columns (then one `loss.<term>` column per loss term seen anywhere).
const COLUMNS: [&str; 18] = [
    "seed",
    "stage",
    "source",
    "role",
    "epoch",
    "lr",
    "train_acc",
    "val_acc",
    "test_acc",
    "test_loss",
    "test_top5",
    "test_ece",
    "test_agreement",
    "train_ce",
    "images_per_s",
    "seconds",
    "wall_time",
    "stalled",
];

/// Where a `metrics.jsonl` sits: `[seed-N/]stage[/source...]/metrics.jsonl`.
struct Found {
    seed: Option<u64>,
    stage: String,
    source: String,
    path: PathBuf,
}

fn find(run_dir: &Path) -> Vec<Found> {
    let mut out = Vec::new();
    let mut stack = vec![run_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.file_name().is_some_and(|n| n == "metrics.jsonl") {
                if let Some(f) = locate(run_dir, &p) {
                    out.push(f);
                }
            }
        }
    }
    out.sort_by(|a, b| (a.seed, &a.stage, &a.source).cmp(&(b.seed, &b.stage, &b.source)));
    out
}

fn locate(run_dir: &Path, file: &Path) -> Option<Found> {
    let rel = file.parent()?.strip_prefix(run_dir).ok()?;
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let seed = parts
        .first()
        .and_then(|p| p.strip_prefix("seed-"))
        .and_then(|s| s.parse().ok());
    if seed.is_some() {
        parts.remove(0);
    }
    if parts.is_empty() {
        return None;
    }
    let stage = parts.remove(0);
    Some(Found {
        seed,
        stage,
        source: parts.join("/"),
        path: file.to_path_buf(),
    })
}

fn num(v: Option<f64>) -> String {
    v.filter(|v| v.is_finite())
        .map(|v| format!("{v}"))
        .unwrap_or_default()
}

/// The rows of one epoch: one per trained role when the stage trains several, else one.
fn epoch_rows(m: &EpochMetrics) -> Vec<(String, EpochMetrics)> {
    if m.roles.is_empty() {
        return vec![(String::new(), m.clone())];
    }
    m.roles
        .keys()
        .filter_map(|name| m.for_role(name).map(|r| (name.clone(), r)))
        .collect()
}

/// The CSV text for every `metrics.jsonl` under `run_dir`; `default_seed` fills the seed
/// column of a one-seed run.
pub fn metrics_csv(run_dir: &Path, default_seed: u64) -> Result<String> {
    let mut tables = Vec::new();
    let mut terms = BTreeSet::new();
    for f in find(run_dir) {
        let history = read_metrics(&f.path)?;
        for m in &history {
            terms.extend(m.loss.keys().cloned());
        }
        tables.push((f, history));
    }
    let mut out: Vec<String> = COLUMNS.iter().map(|c| c.to_string()).collect();
    out.extend(terms.iter().map(|t| format!("loss.{t}")));
    let mut text = out.join(",") + "\n";
    for (f, history) in &tables {
        for m in history {
            for (role, r) in epoch_rows(m) {
                let x = &r.test_extras;
                let mut row = vec![
                    f.seed.unwrap_or(default_seed).to_string(),
                    csv_field(&f.stage),
                    csv_field(&f.source),
                    csv_field(&role),
                    r.epoch.to_string(),
                    num(Some(r.lr)),
                    num(Some(r.train_acc)),
                    num(r.val_acc),
                    num(r.test_acc),
                    num(r.test_loss),
                    num(x.test_top5),
                    num(x.test_ece),
                    num(x.test_agreement),
                    num(r.train_ce),
                    num(Some(r.images_per_s)),
                    num(Some(r.seconds)),
                    num(r.wall_time),
                    (if r.stall.is_some() { "1" } else { "0" }).to_string(),
                ];
                row.extend(terms.iter().map(|t| num(r.loss.get(t).copied())));
                text.push_str(&row.join(","));
                text.push('\n');
            }
        }
    }
    Ok(text)
}

/// Writes `run_dir/metrics.csv`.
pub fn write_metrics_csv(run_dir: &Path, default_seed: u64) -> Result<()> {
    let text = metrics_csv(run_dir, default_seed)
        .map_err(|e| Error::Data(format!("{}: {e}", run_dir.join(METRICS_CSV).display())))?;
    write_atomic(&run_dir.join(METRICS_CSV), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trainer::{write_metrics, RoleMetrics, TestExtras};
    use std::collections::BTreeMap;

    fn epoch(n: usize, terms: &[(&str, f64)]) -> EpochMetrics {
        EpochMetrics {
            epoch: n,
            lr: 0.1,
            loss: terms.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            train_acc: 0.5,
            test_acc: Some(0.25),
            test_loss: None,
            val_acc: None,
            test_extras: TestExtras {
                test_top5: Some(0.75),
                ..TestExtras::default()
            },
            images_per_s: 100.0,
            seconds: 2.0,
            wall_time: None,
            train_ce: None,
            stall: None,
            roles: BTreeMap::new(),
        }
    }

    #[test]
    fn one_row_per_epoch_and_role_with_every_loss_term() {
        let d = tempfile::tempdir().unwrap();
        let run = d.path();
        let teacher = run.join("seed-1/teacher");
        let trial = run.join("seed-1/search/trials/3");
        let dml = run.join("seed-2/dml");
        for p in [&teacher, &trial, &dml] {
            std::fs::create_dir_all(p).unwrap();
        }
        write_metrics(&teacher.join("metrics.jsonl"), &[epoch(1, &[("ce", 1.0)])]).unwrap();
        write_metrics(
            &trial.join("metrics.jsonl"),
            &[epoch(1, &[("kd", 2.0)]), epoch(2, &[("kd", 3.0)])],
        )
        .unwrap();
        let mut two = epoch(1, &[("ce", 0.5)]);
        let role = |acc| RoleMetrics {
            train_acc: acc,
            test_acc: None,
            test_loss: None,
            val_acc: None,
            test_extras: TestExtras::default(),
            train_ce: None,
            stall: None,
        };
        two.roles.insert("a".into(), role(0.1));
        two.roles.insert("b".into(), role(0.2));
        write_metrics(&dml.join("metrics.jsonl"), &[two]).unwrap();

        let text = metrics_csv(run, 0).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let header: Vec<&str> = lines[0].split(',').collect();
        assert_eq!(&header[..4], ["seed", "stage", "source", "role"]);
        assert_eq!(&header[header.len() - 2..], ["loss.ce", "loss.kd"]);
        assert_eq!(lines.len(), 1 + 3 + 2, "{text}");
        let col = |row: &str, name: &str| {
            let i = header.iter().position(|h| *h == name).unwrap();
            row.split(',').nth(i).unwrap().to_string()
        };
        let trial_rows: Vec<&&str> = lines.iter().filter(|l| l.contains("trials/3")).collect();
        assert_eq!(trial_rows.len(), 2);
        assert_eq!(col(trial_rows[1], "loss.kd"), "3");
        assert_eq!(col(trial_rows[1], "loss.ce"), "");
        assert_eq!(col(trial_rows[1], "seed"), "1");
        assert_eq!(col(trial_rows[1], "test_top5"), "0.75");
        let dml_rows: Vec<&&str> = lines.iter().filter(|l| l.starts_with("2,dml")).collect();
        assert_eq!(dml_rows.len(), 2);
        assert_eq!(col(dml_rows[1], "role"), "b");
        assert_eq!(col(dml_rows[1], "train_acc"), "0.2");
    }

    #[test]
    fn a_corrupt_metrics_file_is_named() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("teacher")).unwrap();
        std::fs::write(d.path().join("teacher/metrics.jsonl"), "{\n").unwrap();
        let e = metrics_csv(d.path(), 0).unwrap_err().to_string();
        assert!(e.contains("teacher/metrics.jsonl:1"), "{e}");
    }
}
