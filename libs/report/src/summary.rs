//! `summary.md`, the table a run prints and leaves when it ends: every stage's final and
//! best test accuracy, or for a `seeds:` run the mean ± sample std over the seeds, and the
//! stages' warnings. The runtime calls [`summary_markdown`] through its run options.

use rolekd_engine::runtime::{RunReport, StageReport, StageStatus};

fn pct(v: Option<&f64>) -> String {
    v.map(|x| format!("{:.2}%", x * 100.0))
        .unwrap_or_else(|| "-".into())
}

/// The summary table: every stage's final and best test accuracy; for a `seeds:` run,
/// mean ± sample std over the seeds.
pub fn summary_markdown(name: &str, report: &RunReport) -> String {
    if !report.seeds.is_empty() {
        return seeds_markdown(name, report);
    }
    let mut s = format!("# {name}\n\n| stage | kind | final test acc | best test acc (epoch) | val acc | seconds | status |\n|---|---|---|---|---|---|---|\n");
    for st in &report.stages {
        let summary = st.result.as_ref().map(|r| &r.summary);
        let get = |k: &str| summary.and_then(|m| m.get(k));
        let best = match (get("best_test_acc"), get("best_epoch")) {
            (Some(a), Some(e)) => format!("{:.2}% ({})", a * 100.0, *e as usize),
            (Some(a), None) => format!("{:.2}%", a * 100.0),
            _ => "-".into(),
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            st.name,
            st.kind,
            pct(final_acc(st)),
            best,
            pct(get("final_val_acc")),
            get("stage_seconds")
                .map(|t| format!("{t:.0}"))
                .unwrap_or_else(|| "-".into()),
            status_word(&st.status).to_string() + warned(st)
        ));
    }
    s.push_str(&warnings_section(
        report.stages.iter().map(|st| (st.name.clone(), st)),
    ));
    s
}

/// The mark a stage with warnings gets in a results table.
pub const WARNED: &str = " ⚠ see warnings";

fn warned(st: &StageReport) -> &'static str {
    match &st.result {
        Some(r) if !r.warnings.is_empty() => WARNED,
        _ => "",
    }
}

/// `## Warnings`: every warning of every stage (empty when there are none).
fn warnings_section<'a>(stages: impl Iterator<Item = (String, &'a StageReport)>) -> String {
    let mut out = String::new();
    for (label, st) in stages {
        for w in st.result.iter().flat_map(|r| &r.warnings) {
            out.push_str(&format!("- **{label}**: {w}\n"));
        }
    }
    if out.is_empty() {
        out
    } else {
        format!("\n## Warnings\n\n{out}")
    }
}

fn status_word(s: &StageStatus) -> &'static str {
    match s {
        StageStatus::Ran => "ran",
        StageStatus::Cached => "reused",
        StageStatus::Planned => "planned",
    }
}

/// A stage's final test accuracy (train/distill: last epoch; evaluate: its figure).
pub fn final_acc(st: &StageReport) -> Option<&f64> {
    let summary = st.result.as_ref().map(|r| &r.summary)?;
    summary
        .get("final_test_acc")
        .or_else(|| summary.get("test_acc"))
}

/// Mean and sample standard deviation (0 for one value).
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

fn seeds_markdown(name: &str, report: &RunReport) -> String {
    let seeds: Vec<String> = report.seeds.iter().map(|(s, _)| s.to_string()).collect();
    let mut s = format!(
        "# {name} (seeds {})\n\n| stage | kind | final test acc, mean ± std | per seed | seconds (sum) |\n|---|---|---|---|---|\n",
        seeds.join(", ")
    );
    for (i, st) in report.stages.iter().enumerate() {
        let per: Vec<Option<f64>> = report
            .seeds
            .iter()
            .map(|(_, r)| r.stages.get(i).and_then(final_acc).copied())
            .collect();
        let have: Vec<f64> = per.iter().flatten().copied().collect();
        let mean = if have.is_empty() {
            "-".to_string()
        } else {
            let (m, sd) = mean_std(&have);
            format!("{:.2} ± {:.2}%", m * 100.0, sd * 100.0)
        };
        let each: Vec<String> = per.iter().map(|v| pct(v.as_ref())).collect();
        let secs: f64 = report
            .seeds
            .iter()
            .filter_map(|(_, r)| {
                r.stages
                    .get(i)
                    .and_then(|x| x.result.as_ref())
                    .and_then(|r| r.summary.get("stage_seconds"))
            })
            .sum();
        let any_warned = report
            .seeds
            .iter()
            .filter_map(|(_, r)| r.stages.get(i))
            .any(|x| !warned(x).is_empty());
        s.push_str(&format!(
            "| {}{} | {} | {mean} | {} | {secs:.0} |\n",
            st.name,
            if any_warned { WARNED } else { "" },
            st.kind,
            each.join(" / ")
        ));
    }
    s.push_str(&warnings_section(report.seeds.iter().flat_map(
        |(seed, r)| {
            r.stages
                .iter()
                .map(move |st| (format!("{} (seed {seed})", st.name), st))
        },
    )));
    s
}
