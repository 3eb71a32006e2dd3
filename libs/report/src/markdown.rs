//! `report.md`.

use crate::paired::{self, Paired};
use crate::scan::{RunScan, StageScan};
use crate::summary::{mean_std, WARNED};
use rolekd_augment::schedule::{self, ScheduleStats};
use std::fmt::Write;
use std::path::Path;

/// The words a report flags an empty searched schedule with.
pub const EMPTY_SCHEDULE: &str = "searched schedule applies no op in any epoch";

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
        _ if s.trained_roles().len() > 1 => "peers",
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

/// Top-5 accuracy, calibration (ECE, lower is better) and agreement with the teacher, for
/// the stages that recorded them (runs before these figures existed show none).
fn beyond_top1(run: &RunScan, first: &[StageScan]) -> String {
    let mut rows = String::new();
    for (i, st) in first.iter().enumerate() {
        let cells: Vec<String> = ["top5", "ece", "agreement"]
            .iter()
            .map(|k| pct_over(&values(run, i, |x| x.test_extra(k))))
            .collect();
        if cells.iter().all(|c| c == "-") {
            continue;
        }
        let _ = writeln!(rows, "| {} | {} |", st.name, cells.join(" | "));
    }
    if rows.is_empty() {
        return rows;
    }
    format!(
        "\n## Beyond top-1 (test split)\n\nECE: expected calibration error over 15 confidence \
         bins (lower is better). Agreement: share of test images on which the model predicts \
         its teacher's class.\n\n| stage | top-5 acc | ECE | agreement with teacher |\n\
         |---|---|---|---|\n{rows}"
    )
}

/// The whole report; `pictures` are file names next to `report.md`.
pub fn render(run: &RunScan, pictures: &[String]) -> String {
    let first: &[StageScan] = run.seeds.first().map(|(_, v)| v.as_slice()).unwrap_or(&[]);
    let mut s = title(run);
    s.push_str(&stages_table(run, first));
    s.push_str(&beyond_top1(run, first));
    s.push_str(&warnings(run));
    s.push_str(&students_ranked(run, first));
    s.push_str(&augmentation_effects(run, first));
    if let Some(reference) = role_wise_reference(run, first) {
        s.push_str(&paired_differences(run, first, reference));
    }
    s.push_str(&searches_table(run, first));
    let searches: Vec<usize> = (0..first.len())
        .filter(|&i| first[i].kind == "search")
        .collect();
    s.push_str(&picture_links(run, first, &searches, pictures));
    s
}

/// The title, the run directory and the seeds.
fn title(run: &RunScan) -> String {
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
    s
}

/// One row per stage (and per further trained role), figures over seeds.
fn stages_table(run: &RunScan, first: &[StageScan]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n## Stages\n");
    let _ = writeln!(
        s,
        "| stage | kind | role | augmentation | test acc | best test acc | val acc | seconds | finished |\n|---|---|---|---|---|---|---|---|---|"
    );
    for (i, st) in first.iter().enumerate() {
        let finished = run.across_seeds(i).filter(|x| x.result.is_some()).count();
        let secs: f64 = values(run, i, |x| x.summary("stage_seconds")).iter().sum();
        let warned = run
            .across_seeds(i)
            .any(|x| x.result.as_ref().is_some_and(|r| !r.warnings.is_empty()));
        let _ = writeln!(
            s,
            "| {}{} | {} | {} | {} | {} | {} | {} | {:.0} | {finished}/{} |",
            st.name,
            if warned { WARNED } else { "" },
            st.kind,
            role(run, st),
            augmentation(st),
            pct_over(&values(run, i, StageScan::test_acc)),
            pct_over(&values(run, i, |x| x.summary("best_test_acc"))),
            pct_over(&values(run, i, |x| x.summary("final_val_acc"))),
            secs,
            run.seeds.len()
        );
        // Each further trained role of the stage (peers), with its own figures.
        for r in st.trained_roles().iter().skip(1) {
            let key = |k: &str| format!("{r}.{k}");
            let _ = writeln!(
                s,
                "| {} · {r} | {} | peer | {} | {} | {} | {} | | |",
                st.name,
                st.kind,
                augmentation(st),
                pct_over(&values(run, i, |x| x.summary(&key("final_test_acc")))),
                pct_over(&values(run, i, |x| x.summary(&key("best_test_acc")))),
                pct_over(&values(run, i, |x| x.summary(&key("final_val_acc")))),
            );
        }
    }

    s
}

/// Every stage's warnings, per seed.
fn warnings(run: &RunScan) -> String {
    let mut s = String::new();
    let mut warnings = String::new();
    for (seed, stages) in &run.seeds {
        for st in stages {
            for w in st.result.iter().flat_map(|r| &r.warnings) {
                let at = seed.map(|v| format!(" (seed {v})")).unwrap_or_default();
                let _ = writeln!(warnings, "- **{}{at}**: {w}", st.name);
            }
        }
    }
    if !warnings.is_empty() {
        let _ = write!(s, "\n## Warnings\n\n{warnings}");
    }

    s
}

/// The students, best first: the comparison a role-wise pipeline is run for.
fn students_ranked(run: &RunScan, first: &[StageScan]) -> String {
    let mut s = String::new();
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

    s
}

/// Each search's figures: members, best reward, exploits, time, what its schedule does.
fn searches_table(run: &RunScan, first: &[StageScan]) -> String {
    let searches: Vec<usize> = (0..first.len())
        .filter(|&i| first[i].kind == "search")
        .collect();
    if searches.is_empty() {
        return String::new();
    }
    let mut s = String::new();
    let _ = writeln!(s, "\n## Searches\n");
    let _ = writeln!(
        s,
        "| stage | strategy | searched role | members | best val acc | exploits | wall time (s) | ops with p > 0 at the end | mean p | mean magnitude |\n|---|---|---|---|---|---|---|---|---|---|"
    );
    let mut empty: Vec<String> = Vec::new();
    for &i in &searches {
        let (row, empties) = search_row(run, &first[i], i);
        s.push_str(&row);
        empty.extend(empties);
    }
    let total: f64 = (0..first.len())
        .flat_map(|i| values(run, i, |x| x.summary("stage_seconds")))
        .sum();
    let searching: f64 = searches
        .iter()
        .flat_map(|&i| values(run, i, |x| x.summary("stage_seconds")))
        .sum();
    if total > 0.0 {
        let _ = writeln!(
            s,
            "\nSearches took {searching:.0} s of the {total:.0} s all stages took ({:.0}%{}).",
            100.0 * searching / total,
            if run.seeds.len() > 1 {
                ", all seeds"
            } else {
                ""
            }
        );
    }
    if !empty.is_empty() {
        let _ = writeln!(
            s,
            "\n**Warning: {EMPTY_SCHEDULE}:** {}. A stage trained with such a schedule saw no augmentation at all.",
            empty.join(", ")
        );
    }
    s
}

/// Search stage `i`'s row, and the seeds whose searched schedule applies no op.
fn search_row(run: &RunScan, st: &StageScan, i: usize) -> (String, Vec<String>) {
    let searched = st
        .config
        .get("role")
        .and_then(|r| r.as_str())
        .unwrap_or("-");
    let members = values(run, i, |x| x.summary("population"));
    let exploits = values(run, i, |x| x.summary("exploits"));
    let wall = values(run, i, |x| x.summary("search_seconds"));
    let stats: Vec<(Option<u64>, ScheduleStats)> = run
        .seeds
        .iter()
        .filter_map(|(seed, stages)| {
            let path = stages.get(i)?.output("schedule")?;
            Some((*seed, schedule::load(&path).ok()?.stats()))
        })
        .collect();
    let per_seed = |f: &dyn Fn(&ScheduleStats) -> String| {
        let v: Vec<String> = stats.iter().map(|(_, x)| f(x)).collect();
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(" / ")
        }
    };
    let row = format!(
        "| {} | {} | {searched} | {} | {} | {} | {:.0} | {} | {} | {} |\n",
        st.name,
        st.plugin_type("strategy").unwrap_or_else(|| "-".into()),
        members.first().map(|m| m.to_string()).unwrap_or("-".into()),
        pct_over(&values(run, i, |x| x.summary("best_val_acc"))),
        exploits
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(" / "),
        wall.iter().sum::<f64>(),
        per_seed(&|x| x.active_final.to_string()),
        per_seed(&|x| format!("{:.2}", x.mean_prob)),
        per_seed(&|x| x
            .mean_magnitude
            .map_or("-".to_string(), |m| format!("{m:.1}"))),
    );
    let empty = stats
        .iter()
        .filter(|(_, x)| !x.applies_any_op)
        .map(|(seed, _)| match seed {
            Some(seed) => format!("{} (seed {seed})", st.name),
            None => st.name.clone(),
        })
        .collect();
    (row, empty)
}

/// The plots next to the report and each search's rewards plot.
fn picture_links(
    run: &RunScan,
    first: &[StageScan],
    searches: &[usize],
    pictures: &[String],
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n## Pictures\n");
    for p in pictures {
        let _ = writeln!(s, "![{p}]({p})\n");
    }
    for &i in searches {
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

/// The search stage a distill stage's `pba-schedule` comes from, if any.
fn schedule_source<'a>(first: &'a [StageScan], st: &StageScan) -> Option<&'a StageScan> {
    let dir = st
        .config
        .get("augment")?
        .get("schedule")?
        .as_str()
        .map(Path::new)?
        .parent()?
        .file_name()?
        .to_string_lossy()
        .into_owned();
    first.iter().find(|s| s.name == dir && s.kind == "search")
}

/// The role-wise student: the first distill stage trained with the schedule a PBA search
/// found for the student role.
fn role_wise_reference(run: &RunScan, first: &[StageScan]) -> Option<usize> {
    first.iter().position(|st| {
        st.kind == "distill"
            && role(run, st) == "student"
            && schedule_source(first, st).is_some_and(|src| {
                let strategy = src.plugin_type("strategy").unwrap_or_else(|| "pba".into());
                src.config.get("role").and_then(|r| r.as_str()) == Some("student")
                    && strategy == "pba"
            })
    })
}

/// Per-seed paired differences (reference minus baseline, test accuracy) of the role-wise
/// student against every other student stage, with 95% intervals; pairs that are the same
/// run are marked and left out of the statistics.
fn paired_differences(run: &RunScan, first: &[StageScan], reference: usize) -> String {
    let mut s = String::new();
    let name = &first[reference].name;
    let _ = writeln!(
        s,
        "\n## Paired differences: {name} minus each baseline\n\nTest accuracy, per seed \
         (seeds where both finished); positive: {name} is better. {PAIRED_NOTE}\n"
    );
    let _ = writeln!(s, "{}", paired::header("baseline", name));
    for (j, st) in first.iter().enumerate() {
        if j == reference || role(run, st) != "student" {
            continue;
        }
        let p = Paired::of(run, reference, j);
        if !p.pairs.is_empty() {
            let _ = writeln!(s, "| {} | {} |", st.name, paired::row_cells(&p));
        }
    }
    s
}

/// What a table of paired differences shows beside mean ± std.
const PAIRED_NOTE: &str = "The interval is the mean's 95% t-interval; `=` marks a seed \
     where both stages are the same run (every per-epoch figure equal), left out of the \
     mean, std, interval and wins.";

/// Each augmented stage against its twin without augmentation (the same kind, model,
/// teacher and budget: the config equal but for `augment`): whether each role gains from
/// augmentation, the premise of role-wise augmentation.
fn augmentation_effects(run: &RunScan, first: &[StageScan]) -> String {
    let without_augment = |st: &StageScan| {
        let mut c = st.config.clone();
        if let Some(m) = c.as_mapping_mut() {
            m.remove("augment");
        }
        c
    };
    let mut rows = String::new();
    for (i, st) in first.iter().enumerate() {
        if st.kind == "search" || st.config.get("augment").is_none() {
            continue;
        }
        let plain = without_augment(st);
        let twin = first.iter().position(|o| {
            o.kind == st.kind && o.config.get("augment").is_none() && o.config == plain
        });
        if let Some(j) = twin {
            let p = Paired::of(run, i, j);
            if !p.pairs.is_empty() {
                let _ = writeln!(
                    rows,
                    "| {} minus {} | {} |",
                    st.name,
                    first[j].name,
                    paired::row_cells(&p)
                );
            }
        }
    }
    if rows.is_empty() {
        return rows;
    }
    format!(
        "\n## Augmentation against none, paired\n\nEach augmented stage minus the same stage \
         without augmentation, test accuracy in points; positive: the augmentation helps. \
         {PAIRED_NOTE}\n\n{}\n{rows}",
        paired::header("stages", "augmented")
    )
}
