//! PBA schedules: a policy per epoch range, as JSON (`rolekd-schedule/1`), imported from
//! PBA's `pbt_policy_<k>.txt` logs, stretched to runs of another length, and rendered as a
//! table.
//!
//! ```json
//! {"format": "rolekd-schedule/1", "space": "pba", "epochs": 200,
//!  "segments": [{"start": 0, "end": 3, "policy": [
//!     {"op": "Rotate", "slot": 1, "prob": 0.0, "magnitude": 0}, ...30 entries]}, ...]}
//! ```
//! Segments are `[start, end)`, in order, covering `0..epochs`; each holds all 30
//! (op, slot) entries in gene order (slot 1's 15 ops in [`PbaOp::ALL`] order, then slot 2's).

use crate::ops::pba::PbaOp;
use rolekd_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// The `format` tag of schedule files.
pub const FORMAT: &str = "rolekd-schedule/1";
/// The only policy space schedules use so far.
pub const SPACE: &str = "pba";
/// Genes in a PBA policy: 15 ops x 2 slots x (probability, magnitude).
pub const GENES: usize = 60;
/// Entries (op, slot) in a PBA policy.
pub const ENTRIES: usize = 30;

/// One (op, slot) of a PBA policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyEntry {
    /// The op's name (one of the 15 PBA ops).
    pub op: String,
    /// 1 or 2.
    pub slot: u8,
    /// Probability of applying the op when it comes up, 0..=1 (genes give tenths).
    pub prob: f64,
    /// PBA magnitude level, 0..=9.
    pub magnitude: u8,
}

/// A policy in force over epochs `[start, end)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    pub start: usize,
    pub end: usize,
    pub policy: Vec<PolicyEntry>,
}

impl Segment {
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// A policy per epoch range.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    pub format: String,
    pub space: String,
    /// The epochs the schedule was searched for.
    pub epochs: usize,
    pub segments: Vec<Segment>,
}

/// The policy entries of 60 genes: entry k = (op k % 15, slot k / 15 + 1) with
/// prob = genes[2k] / 10 and magnitude = genes[2k + 1].
pub fn entries_from_genes(genes: &[i64]) -> Result<Vec<PolicyEntry>> {
    if genes.len() != GENES {
        return Err(Error::Invalid(format!(
            "a PBA policy has {GENES} genes, got {}",
            genes.len()
        )));
    }
    (0..ENTRIES)
        .map(|k| {
            let (p, m) = (genes[2 * k], genes[2 * k + 1]);
            if !(0..=10).contains(&p) {
                return Err(Error::Invalid(format!(
                    "gene {}: probability gene {p} outside 0..=10",
                    2 * k
                )));
            }
            if !(0..=9).contains(&m) {
                return Err(Error::Invalid(format!(
                    "gene {}: magnitude gene {m} outside 0..=9",
                    2 * k + 1
                )));
            }
            Ok(PolicyEntry {
                op: PbaOp::ALL[k % 15].name().to_string(),
                slot: (k / 15 + 1) as u8,
                prob: p as f64 / 10.0,
                magnitude: m as u8,
            })
        })
        .collect()
}

/// The 60 genes of 30 entries in gene order (probabilities rounded to tenths).
pub fn genes_from_entries(entries: &[PolicyEntry]) -> Result<Vec<i64>> {
    check_entries(entries)?;
    let mut genes = Vec::with_capacity(GENES);
    for e in entries {
        genes.push((e.prob * 10.0).round() as i64);
        genes.push(e.magnitude as i64);
    }
    Ok(genes)
}

/// Checks that `entries` are the 30 (op, slot) pairs in gene order with valid values.
pub fn check_entries(entries: &[PolicyEntry]) -> Result<()> {
    if entries.len() != ENTRIES {
        return Err(Error::Invalid(format!(
            "a PBA policy has {ENTRIES} entries (15 ops x 2 slots), got {}",
            entries.len()
        )));
    }
    for (k, e) in entries.iter().enumerate() {
        let (op, slot) = (PbaOp::ALL[k % 15], k / 15 + 1);
        if e.op != op.name() || e.slot as usize != slot {
            return Err(Error::Invalid(format!(
                "entry {k} is {} slot {}, expected {} slot {slot} (gene order)",
                e.op,
                e.slot,
                op.name()
            )));
        }
        check_entry_values(e).map_err(|m| Error::Invalid(format!("entry {k} ({}): {m}", e.op)))?;
    }
    Ok(())
}

fn check_entry_values(e: &PolicyEntry) -> Result<(), String> {
    if !(0.0..=1.0).contains(&e.prob) {
        return Err(format!("prob {} outside 0..=1", e.prob));
    }
    if e.magnitude > 9 {
        return Err(format!("magnitude {} outside 0..=9", e.magnitude));
    }
    Ok(())
}

/// Entries given as a partial list (any order; missing pairs get probability 0 and
/// magnitude 0) put into gene order. Duplicates and unknown ops are errors.
pub fn entries_in_gene_order(list: &[PolicyEntry]) -> Result<Vec<PolicyEntry>> {
    let mut out = entries_from_genes(&[0; GENES])?;
    let mut seen = [false; ENTRIES];
    for e in list {
        let op = PbaOp::from_name(&e.op).ok_or_else(|| {
            Error::Invalid(format!(
                "unknown op `{}`; PBA's ops: {}",
                e.op,
                PbaOp::ALL.map(|o| o.name()).join(", ")
            ))
        })?;
        if e.slot != 1 && e.slot != 2 {
            return Err(Error::Invalid(format!(
                "{}: slot {} (1 or 2)",
                e.op, e.slot
            )));
        }
        check_entry_values(e)
            .map_err(|m| Error::Invalid(format!("{} slot {}: {m}", e.op, e.slot)))?;
        let k = (e.slot as usize - 1) * 15 + op.index();
        if seen[k] {
            return Err(Error::Invalid(format!(
                "{} slot {} given twice",
                e.op, e.slot
            )));
        }
        seen[k] = true;
        out[k] = e.clone();
    }
    Ok(out)
}

impl Schedule {
    /// A schedule from (length, genes) pieces, in order; zero-length pieces are dropped.
    pub fn from_pieces(pieces: &[(usize, Vec<i64>)]) -> Result<Schedule> {
        let mut segments = Vec::new();
        let mut start = 0;
        for (len, genes) in pieces {
            if *len == 0 {
                continue;
            }
            segments.push(Segment {
                start,
                end: start + len,
                policy: entries_from_genes(genes)?,
            });
            start += len;
        }
        let s = Schedule {
            format: FORMAT.into(),
            space: SPACE.into(),
            epochs: start,
            segments,
        };
        s.validate()?;
        Ok(s)
    }

    /// A schedule with one policy for all `epochs`.
    pub fn constant(genes: &[i64], epochs: usize) -> Result<Schedule> {
        Schedule::from_pieces(&[(epochs, genes.to_vec())])
    }

    /// Checks the format tag, the space, coverage of `0..epochs` without gaps or overlaps,
    /// and every segment's 30 entries; errors name the segment.
    pub fn validate(&self) -> Result<()> {
        if self.format != FORMAT {
            return Err(Error::Invalid(format!(
                "schedule format `{}`, expected `{FORMAT}`",
                self.format
            )));
        }
        if self.space != SPACE {
            return Err(Error::Invalid(format!(
                "schedule space `{}`, expected `{SPACE}`",
                self.space
            )));
        }
        if self.epochs == 0 {
            return Err(Error::Invalid("schedule: epochs must be at least 1".into()));
        }
        if self.segments.is_empty() {
            return Err(Error::Invalid("schedule has no segments".into()));
        }
        let mut expected = 0;
        for (i, s) in self.segments.iter().enumerate() {
            let name = format!("segment {i} (epochs {}..{})", s.start, s.end);
            if s.start != expected {
                let what = if s.start > expected {
                    "a gap"
                } else {
                    "an overlap"
                };
                return Err(Error::Invalid(format!(
                    "{name}: starts at {} but the previous one ends at {expected} ({what})",
                    s.start
                )));
            }
            if s.end <= s.start {
                return Err(Error::Invalid(format!("{name}: end must be after start")));
            }
            check_entries(&s.policy).map_err(|e| Error::Invalid(format!("{name}: {e}")))?;
            expected = s.end;
        }
        if expected != self.epochs {
            return Err(Error::Invalid(format!(
                "segment {} ends at {expected} but the schedule has {} epochs",
                self.segments.len() - 1,
                self.epochs
            )));
        }
        Ok(())
    }

    /// Parses and validates schedule JSON.
    pub fn from_json(text: &str) -> Result<Schedule> {
        let s: Schedule =
            serde_json::from_str(text).map_err(|e| Error::Invalid(format!("schedule: {e}")))?;
        s.validate()?;
        Ok(s)
    }

    /// The schedule as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a schedule serialises")
    }

    /// The index of the segment in force at `epoch` of a run of `run_epochs` epochs. When the
    /// run's length differs from the schedule's, PBA's stretch rule applies: segment i lasts
    /// `int(len_i * run_epochs / epochs)` epochs and any shortfall at the end uses the last
    /// policy. Epochs past the end use the last policy.
    pub fn segment_index_at(&self, epoch: usize, run_epochs: usize) -> usize {
        let last = self.segments.len() - 1;
        if run_epochs == self.epochs || run_epochs == 0 {
            return self
                .segments
                .iter()
                .position(|s| epoch < s.end)
                .unwrap_or(last);
        }
        let mut pos = 0;
        for (i, s) in self.segments.iter().enumerate() {
            pos += s.len() * run_epochs / self.epochs;
            if epoch < pos {
                return i;
            }
        }
        last
    }

    /// The segment in force at `epoch` of a run of `run_epochs` epochs (see
    /// [`Schedule::segment_index_at`]).
    pub fn policy_at(&self, epoch: usize, run_epochs: usize) -> &Segment {
        &self.segments[self.segment_index_at(epoch, run_epochs)]
    }

    /// The genes in force at `epoch` of a run of `run_epochs` epochs.
    pub fn genes_at(&self, epoch: usize, run_epochs: usize) -> Vec<i64> {
        genes_from_entries(&self.policy_at(epoch, run_epochs).policy).expect("validated schedule")
    }

    /// How much augmentation the schedule applies: a search that returns the empty schedule
    /// has chosen "no augmentation", which a report must say rather than leave to a blank plot.
    pub fn stats(&self) -> ScheduleStats {
        let entry_epochs: Vec<(&PolicyEntry, usize)> = self
            .segments
            .iter()
            .flat_map(|s| s.policy.iter().map(move |e| (e, s.len())))
            .collect();
        let epochs = self.epochs.max(1) as f64;
        let mean_prob = entry_epochs
            .iter()
            .map(|(e, len)| e.prob * *len as f64)
            .sum::<f64>()
            / (epochs * ENTRIES as f64);
        let (mag_sum, mag_weight) = entry_epochs
            .iter()
            .filter(|(e, _)| e.prob > 0.0)
            .fold((0.0, 0.0), |(s, w), (e, len)| {
                (s + e.magnitude as f64 * *len as f64, w + *len as f64)
            });
        ScheduleStats {
            active_final: self
                .segments
                .last()
                .map_or(0, |s| s.policy.iter().filter(|e| e.prob > 0.0).count()),
            mean_prob,
            mean_magnitude: (mag_weight > 0.0).then(|| mag_sum / mag_weight),
            applies_any_op: entry_epochs.iter().any(|(e, _)| e.prob > 0.0),
        }
    }
}

/// How strongly a policy augments, in 0..=1: the mean over its 30 (op, slot) entries of
/// probability x magnitude / 9 (0 for the empty policy, 1 when every op always applies at
/// full magnitude). One number per epoch lets a dashboard plot a member's policy beside
/// its reward.
pub fn policy_strength(entries: &[PolicyEntry]) -> f64 {
    if entries.is_empty() {
        return 0.0;
    }
    entries
        .iter()
        .map(|e| e.prob * e.magnitude as f64 / 9.0)
        .sum::<f64>()
        / entries.len() as f64
}

/// Summary figures of a [`Schedule`].
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleStats {
    /// (op, slot) entries with probability > 0 in the last segment (the final policy).
    pub active_final: usize,
    /// Probability averaged over the 30 entries and over epochs.
    pub mean_prob: f64,
    /// Magnitude averaged over epochs and over the entries with probability > 0 (None when
    /// no entry ever has one).
    pub mean_magnitude: Option<f64>,
    /// Whether any epoch's policy can apply an op at all.
    pub applies_any_op: bool,
}

/// Reads and validates a schedule file.
pub fn load(path: &Path) -> Result<Schedule> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Schedule::from_json(&text).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
}

/// Writes a schedule file (validated first).
pub fn save(schedule: &Schedule, path: &Path) -> Result<()> {
    schedule.validate()?;
    let mut text = schedule.to_json();
    text.push('\n');
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// One parsed line of a PBA policy log.
struct LogLine {
    line: usize,
    target: i64,
    clone: i64,
    clone_iter: i64,
    old: Vec<i64>,
    new: Vec<i64>,
}

fn parse_log_line(text: &str, line: usize) -> Result<LogLine> {
    let err = |m: String| Error::Invalid(format!("line {line}: {m}"));
    let v: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        // The logs are JSON; accept the Python-literal spelling too.
        Err(e) => serde_json::from_str(
            &text
                .replace('\'', "\"")
                .replace("True", "true")
                .replace("False", "false")
                .replace("None", "null"),
        )
        .map_err(|_| err(format!("not a JSON list: {e}")))?,
    };
    let items = v.as_array().ok_or_else(|| {
        err(
            "expected a list [target, clone, target_iter, clone_iter, old_config, new_config]"
                .into(),
        )
    })?;
    if items.len() != 6 {
        return Err(err(format!(
            "expected 6 items [target, clone, target_iter, clone_iter, old_config, new_config], got {}",
            items.len()
        )));
    }
    let int = |i: usize, what: &str| -> Result<i64> {
        match &items[i] {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .ok_or_else(|| err(format!("{what} must be an integer"))),
            Value::String(s) => s
                .trim()
                .parse()
                .map_err(|_| err(format!("{what} must be an integer, got \"{s}\""))),
            other => Err(err(format!("{what} must be an integer, got {other}"))),
        }
    };
    let policy = |i: usize, what: &str| -> Result<Vec<i64>> {
        let p = match &items[i] {
            Value::Object(m) => m
                .get("hp_policy")
                .ok_or_else(|| err(format!("{what} has no `hp_policy`")))?,
            // Old logs stored the policy list itself.
            list @ Value::Array(_) => list,
            other => return Err(err(format!("{what} must be an object, got {other}"))),
        };
        let genes: Vec<i64> = p
            .as_array()
            .ok_or_else(|| {
                err(format!(
                    "{what}.hp_policy must be a list of {GENES} integers"
                ))
            })?
            .iter()
            .map(|g| g.as_i64())
            .collect::<Option<_>>()
            .ok_or_else(|| err(format!("{what}.hp_policy must hold integers")))?;
        entries_from_genes(&genes).map_err(|e| err(format!("{what}.hp_policy: {e}")))?;
        Ok(genes)
    };
    int(2, "target iteration")?;
    Ok(LogLine {
        line,
        target: int(0, "target trial")?,
        clone: int(1, "clone trial")?,
        clone_iter: int(3, "clone iteration")?,
        old: policy(4, "old config")?,
        new: policy(5, "new config")?,
    })
}

/// Imports a PBA policy log (`pbt_policy_<k>.txt`) searched for `epochs` epochs, as PBA's
/// `parse_log` decodes it: the lines up to the last one whose target differs from the next
/// line's clone are stale and dropped; then the segments are (clone_iter of the first line,
/// its old policy), (clone_iter[i+1] - clone_iter[i], new policy of line i) for each line i,
/// and (epochs - clone_iter of the last line, its new policy). Malformed lines are errors
/// naming the line (1-based; blank lines are skipped).
pub fn import_pba_log(text: &str, epochs: usize) -> Result<Schedule> {
    let mut raw = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        raw.push(parse_log_line(l.trim(), i + 1)?);
    }
    if raw.is_empty() {
        return Err(Error::Invalid("PBA log: no lines".into()));
    }
    if let Some(i) = (0..raw.len() - 1)
        .rev()
        .find(|&i| raw[i].target != raw[i + 1].clone)
    {
        raw.drain(..=i);
    }
    let mut pieces: Vec<(i64, Vec<i64>, usize)> = Vec::new();
    pieces.push((raw[0].clone_iter, raw[0].old.clone(), raw[0].line));
    for w in raw.windows(2) {
        pieces.push((
            w[1].clone_iter - w[0].clone_iter,
            w[0].new.clone(),
            w[1].line,
        ));
    }
    let last = raw.last().expect("non-empty");
    pieces.push((epochs as i64 - last.clone_iter, last.new.clone(), last.line));
    for (len, _, line) in &pieces {
        if *len < 0 {
            return Err(Error::Invalid(format!(
                "line {line}: clone iteration goes backwards or past the {epochs} epochs (segment length {len})"
            )));
        }
    }
    let pieces: Vec<(usize, Vec<i64>)> = pieces
        .into_iter()
        .map(|(l, g, _)| (l as usize, g))
        .collect();
    Schedule::from_pieces(&pieces)
}

/// A plain-text table: per segment, its epochs, the ops with non-zero probability (prob,
/// magnitude, slot) and the total probability.
pub fn render_table(schedule: &Schedule) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "schedule: {} epochs, {} segments ({})",
        schedule.epochs,
        schedule.segments.len(),
        schedule.space
    );
    let _ = writeln!(
        out,
        "{:<13} {:>7}  ops (prob/magnitude, slot)",
        "epochs", "total p"
    );
    for s in &schedule.segments {
        let total: f64 = s.policy.iter().map(|e| e.prob).sum();
        let ops: Vec<String> = s
            .policy
            .iter()
            .filter(|e| e.prob > 0.0)
            .map(|e| format!("{} {:.1}/{} s{}", e.op, e.prob, e.magnitude, e.slot))
            .collect();
        let ops = if ops.is_empty() {
            "(none)".to_string()
        } else {
            ops.join(", ")
        };
        let _ = writeln!(
            out,
            "{:<13} {:>7.1}  {ops}",
            format!("{}..{}", s.start, s.end),
            total
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn genes_with(k: usize, p: i64, m: i64) -> Vec<i64> {
        let mut g = vec![0; GENES];
        g[2 * k] = p;
        g[2 * k + 1] = m;
        g
    }

    #[test]
    fn genes_round_trip_through_entries() {
        let genes: Vec<i64> = (0..60)
            .map(|i| {
                if i % 2 == 0 {
                    (i / 2 % 11) as i64
                } else {
                    (i % 10) as i64
                }
            })
            .collect();
        let entries = entries_from_genes(&genes).unwrap();
        assert_eq!(entries[0].op, "Rotate");
        assert_eq!(entries[14].op, "Contrast");
        assert_eq!((entries[15].op.as_str(), entries[15].slot), ("Rotate", 2));
        assert_eq!(entries[3].prob, 0.3);
        assert_eq!(genes_from_entries(&entries).unwrap(), genes);
        assert!(entries_from_genes(&genes_with(0, 11, 0)).is_err());
        assert!(entries_from_genes(&genes_with(0, 0, 10)).is_err());
        assert!(entries_from_genes(&genes[..58]).is_err());
    }

    #[test]
    fn stats_say_how_much_augmentation_a_schedule_applies() {
        let empty = Schedule::constant(&vec![0; GENES], 6).unwrap().stats();
        assert!(!empty.applies_any_op);
        assert_eq!((empty.active_final, empty.mean_prob), (0, 0.0));
        assert_eq!(empty.mean_magnitude, None);
        // Rotate p 0.4 m 6 for 2 of 8 epochs, then Cutout (entry 13) p 1.0 m 2 for 6.
        let s = Schedule::from_pieces(&[(2, genes_with(0, 4, 6)), (6, genes_with(13, 10, 2))])
            .unwrap()
            .stats();
        assert!(s.applies_any_op);
        assert_eq!(s.active_final, 1);
        let mean_prob = (0.4 * 2.0 + 1.0 * 6.0) / (8.0 * ENTRIES as f64);
        assert!((s.mean_prob - mean_prob).abs() < 1e-12, "{s:?}");
        assert_eq!(s.mean_magnitude, Some((6.0 * 2.0 + 2.0 * 6.0) / 8.0));
    }

    #[test]
    fn policy_strength_scales_probability_by_magnitude() {
        let none = entries_from_genes(&vec![0; GENES]).unwrap();
        assert_eq!(policy_strength(&none), 0.0);
        let full = entries_from_genes(&[10, 9].repeat(ENTRIES)).unwrap();
        assert!((policy_strength(&full) - 1.0).abs() < 1e-12);
        // Rotate p 0.4 m 6 only: 0.4 * 6/9 over 30 entries.
        let one = entries_from_genes(&genes_with(0, 4, 6)).unwrap();
        assert!((policy_strength(&one) - 0.4 * 6.0 / 9.0 / 30.0).abs() < 1e-12);
    }

    #[test]
    fn validation_names_the_segment() {
        let g = vec![0; GENES];
        let mut s = Schedule::from_pieces(&[(3, g.clone()), (4, g.clone())]).unwrap();
        assert_eq!(s.epochs, 7);
        s.segments[1].start = 4;
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("segment 1") && e.contains("gap"), "{e}");
        s.segments[1].start = 2;
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("overlap"), "{e}");
        s.segments[1].start = 3;
        s.segments[1].policy.pop();
        let e = s.validate().unwrap_err().to_string();
        assert!(
            e.contains("segment 1 (epochs 3..7)") && e.contains("29"),
            "{e}"
        );
        let mut t = Schedule::constant(&g, 5).unwrap();
        t.segments[0].policy.swap(0, 1);
        assert!(t.validate().unwrap_err().to_string().contains("gene order"));
        let mut t = Schedule::constant(&g, 5).unwrap();
        t.epochs = 6;
        assert!(t.validate().unwrap_err().to_string().contains("6 epochs"));
    }

    #[test]
    fn json_round_trip_and_format_check() {
        let s =
            Schedule::from_pieces(&[(2, genes_with(3, 7, 4)), (8, genes_with(20, 1, 9))]).unwrap();
        let back = Schedule::from_json(&s.to_json()).unwrap();
        assert_eq!(back, s);
        let v: Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(v["format"], "rolekd-schedule/1");
        assert_eq!(v["segments"][0]["policy"][3]["op"], "Brightness");
        assert_eq!(v["segments"][0]["policy"][3]["prob"], 0.7);
        let bad = s.to_json().replace("rolekd-schedule/1", "other/2");
        assert!(Schedule::from_json(&bad).is_err());
    }

    #[test]
    fn stretch_rule() {
        let g = |k| genes_with(k, 5, 5);
        // Lengths 3, 3, 4 over 10 epochs.
        let s = Schedule::from_pieces(&[(3, g(0)), (3, g(1)), (4, g(2))]).unwrap();
        let at = |e, run| s.segment_index_at(e, run);
        assert_eq!(
            (0..10).map(|e| at(e, 10)).collect::<Vec<_>>(),
            vec![0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
        );
        // 20 epochs: 6, 6, 8.
        let v: Vec<usize> = (0..20).map(|e| at(e, 20)).collect();
        assert_eq!(v, [vec![0; 6], vec![1; 6], vec![2; 8]].concat());
        // 5 epochs: int(1.5)=1, 1, 2 -> 4 epochs, the fifth padded with the last.
        assert_eq!(
            (0..5).map(|e| at(e, 5)).collect::<Vec<_>>(),
            vec![0, 1, 2, 2, 2]
        );
        // 4 epochs: int(1.2)=1, 1, int(1.6)=1 -> last padded.
        assert_eq!(
            (0..4).map(|e| at(e, 4)).collect::<Vec<_>>(),
            vec![0, 1, 2, 2]
        );
        assert_eq!(at(50, 10), 2);
        assert_eq!(s.genes_at(4, 10), g(1));
    }

    fn log_line(
        target: i64,
        clone: i64,
        titer: i64,
        citer: i64,
        old: &[i64],
        new: &[i64],
    ) -> String {
        format!(
            "[{target}, {clone}, {titer}, {citer}, {{\"hp_policy\": {old:?}, \"lr\": 0.1}}, {{\"hp_policy\": {new:?}}}]"
        )
    }

    #[test]
    fn import_follows_parse_log() {
        let (a, b, c, d) = (
            genes_with(0, 1, 1),
            genes_with(1, 2, 2),
            genes_with(2, 3, 3),
            genes_with(3, 4, 4),
        );
        // Line 1 is stale (its target 9 is not line 2's clone 5); lines 2.. are the ancestry.
        let text = [
            log_line(9, 4, 3, 3, &d, &d),
            log_line(5, 5, 3, 3, &a, &b),
            log_line(5, 5, 9, 9, &b, &c),
            String::new(),
            log_line(7, 5, 12, 15, &c, &d),
        ]
        .join("\n");
        let s = import_pba_log(&text, 20).unwrap();
        let lens: Vec<(usize, usize)> = s.segments.iter().map(|x| (x.start, x.end)).collect();
        assert_eq!(lens, vec![(0, 3), (3, 9), (9, 15), (15, 20)]);
        assert_eq!(genes_from_entries(&s.segments[0].policy).unwrap(), a);
        assert_eq!(genes_from_entries(&s.segments[1].policy).unwrap(), b);
        assert_eq!(genes_from_entries(&s.segments[2].policy).unwrap(), c);
        assert_eq!(genes_from_entries(&s.segments[3].policy).unwrap(), d);
    }

    #[test]
    fn import_errors_name_the_line() {
        let a = genes_with(0, 1, 1);
        let good = log_line(1, 1, 3, 3, &a, &a);
        let text = format!("{good}\n[1, 1, 3]\n");
        let e = import_pba_log(&text, 10).unwrap_err().to_string();
        assert!(e.starts_with("line 2:") && e.contains("6 items"), "{e}");
        let text = format!("{good}\nnot json\n");
        assert!(import_pba_log(&text, 10)
            .unwrap_err()
            .to_string()
            .starts_with("line 2:"));
        let short = log_line(1, 1, 3, 3, &a[..59], &a);
        let e = import_pba_log(&short, 10).unwrap_err().to_string();
        assert!(e.starts_with("line 1:") && e.contains("60 genes"), "{e}");
        // Past the epochs.
        let e = import_pba_log(&good, 2).unwrap_err().to_string();
        assert!(e.starts_with("line 1:"), "{e}");
        // Python-literal spelling is accepted.
        let py = good.replace('"', "'");
        assert_eq!(import_pba_log(&py, 10).unwrap().segments.len(), 2);
    }

    #[test]
    fn table_lists_active_ops_and_totals() {
        let mut g = genes_with(0, 3, 2);
        g[2 * 16] = 5; // TranslateX slot 2
        g[2 * 16 + 1] = 7;
        let s = Schedule::from_pieces(&[(3, vec![0; 60]), (7, g)]).unwrap();
        let t = render_table(&s);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[2].starts_with("0..3") && lines[2].contains("(none)"),
            "{t}"
        );
        assert!(
            lines[3].contains("Rotate 0.3/2 s1") && lines[3].contains("TranslateX 0.5/7 s2"),
            "{t}"
        );
        assert!(lines[3].contains(" 0.8 "), "{t}");
    }
}
