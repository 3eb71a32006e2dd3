//! `report.md`.

use crate::scan::{RunScan, StageScan};
use rolekd_core::runtime::mean_std;
use std::fmt::Write;
use std::path::Path;

/// A figure over seeds: `12.34%` for one value, `12.34 ± 0.56%` for several, `-` for none.
fn pct_over(values: &[f64]) -> String {
    match values.len() {
        0 => "-".into(),
        1 => format!("{:.2}%", values[0] * 100.0),
        _ => {
            let (m, sd) = mean_std(values);
            format!("{:.2} ± {:.2}%", m * 100.0, sd * 100.0)
        }
    }
}

fn values(run: &RunScan, i: usize, f: impl Fn(&StageScan) -> Option<f64>) -> Vec<f64> {
    run.across_seeds(i).filter_map(f).collect()
}

fn role(run: &RunScan, s: &StageScan) -> &'static str {
    match s.kind.as_str() {
        "search" => "search",
        "evaluate" => "evaluation",
        _ if run.is_teacher(&s.name) => "teacher",
        "train" | "distill" => "student",
        _ => "-",
    }
}

fn augmentation(s: &StageScan) -> String {
    if s.kind == "search" {
        return "(searched)".into();
    }
    let Some(kind) = s.plugin_type("augment") else {
        return "none".into();
    };
    let from = s
        .config
        .get("augment")
        .and_then(|a| a.get("schedule"))
        .and_then(|p| p.as_str())
        .and_then(|p| Path::new(p).parent()?.file_name())
        .map(|n| format!(" from {}", n.to_string_lossy()));
    format!("{kind}{}", from.unwrap_or_default())
}

/// The whole report; `pictures` are file names next to `report.md`.
pub fn render(run: &RunScan, pictures: &[String]) -> String {
    let mut s = String::new();
    let seeds: Vec<String> = run
        .seeds
        .iter()
        .filter_map(|(s, _)| s.map(|v| v.to_string()))
        .collect();
    let _ = writeln!(s, "# Report: {}\n", run.name);
    let _ = writeln!(s, "Run directory: `{}`.", run.run_dir.display());
    if !seeds.is_empty() {
        let _ = writeln!(
            s,
            "Seeds: {} (figures are mean ± sample std over the seeds that finished).",
            seeds.join(", ")
        );
    }
    let _ = writeln!(s, "\n## Stages\n");
    let _ = writeln!(
        s,
        "| stage | kind | role | augmentation | test acc | best test acc | val acc | seconds | finished |\n|---|---|---|---|---|---|---|---|---|"
    );
    let first: &[StageScan] = run.seeds.first().map(|(_, v)| v.as_slice()).unwrap_or(&[]);
    for (i, st) in first.iter().enumerate() {
        let finished = run.across_seeds(i).filter(|x| x.result.is_some()).count();
        let secs: f64 = values(run, i, |x| x.summary("stage_seconds")).iter().sum();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {:.0} | {finished}/{} |",
            st.name,
            st.kind,
            role(run, st),
            augmentation(st),
            pct_over(&values(run, i, StageScan::test_acc)),
            pct_over(&values(run, i, |x| x.summary("best_test_acc"))),
            pct_over(&values(run, i, |x| x.summary("final_val_acc"))),
            secs,
            run.seeds.len()
        );
    }

    // The students, best first: the comparison a role-wise pipeline is run for.
    let mut students: Vec<(usize, f64)> = first
        .iter()
        .enumerate()
        .filter(|(_, st)| role(run, st) == "student")
        .filter_map(|(i, _)| {
            let v = values(run, i, StageScan::test_acc);
            (!v.is_empty()).then(|| (i, mean_std(&v).0))
        })
        .collect();
    students.sort_by(|a, b| b.1.total_cmp(&a.1));
    if !students.is_empty() {
        let _ = writeln!(s, "\n## Students ranked by test accuracy\n");
        let _ = writeln!(
            s,
            "| rank | stage | kind | augmentation | test acc | vs best |\n|---|---|---|---|---|---|"
        );
        let top = students[0].1;
        for (rank, (i, mean)) in students.iter().enumerate() {
            let st = &first[*i];
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {:+.2} |",
                rank + 1,
                st.name,
                st.kind,
                augmentation(st),
                pct_over(&values(run, *i, StageScan::test_acc)),
                (mean - top) * 100.0
            );
        }
    }

    let searches: Vec<usize> = (0..first.len())
        .filter(|&i| first[i].kind == "search")
        .collect();
    if !searches.is_empty() {
        let _ = writeln!(s, "\n## Searches\n");
        let _ = writeln!(
            s,
            "| stage | strategy | searched role | members | best val acc | exploits | wall time (s) |\n|---|---|---|---|---|---|---|"
        );
        for &i in &searches {
            let st = &first[i];
            let searched = st
                .config
                .get("role")
                .and_then(|r| r.as_str())
                .unwrap_or("-");
            let members = values(run, i, |x| x.summary("population"));
            let exploits = values(run, i, |x| x.summary("exploits"));
            let wall = values(run, i, |x| x.summary("search_seconds"));
            let _ = writeln!(
                s,
                "| {} | {} | {searched} | {} | {} | {} | {:.0} |",
                st.name,
                st.plugin_type("strategy").unwrap_or_else(|| "-".into()),
                members.first().map(|m| m.to_string()).unwrap_or("-".into()),
                pct_over(&values(run, i, |x| x.summary("best_val_acc"))),
                exploits
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(" / "),
                wall.iter().sum::<f64>()
            );
        }
    }

    let _ = writeln!(s, "\n## Pictures\n");
    for p in pictures {
        let _ = writeln!(s, "![{p}]({p})\n");
    }
    for &i in &searches {
        let st = &first[i];
        if let Some(rewards) = st.output("rewards").filter(|p| p.is_file()) {
            let rel = rewards
                .strip_prefix(&run.run_dir)
                .unwrap_or(&rewards)
                .display()
                .to_string();
            let _ = writeln!(s, "{}: ![rewards of {}]({rel})\n", st.name, st.name);
        }
    }
    s
}
