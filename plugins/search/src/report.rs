//! A finished search's outputs, all derived from the store:
//!
//! ```text
//! schedule.json              the best member's lineage (rolekd-schedule/1), `${stage.schedule}`
//! schedule.png               its plot (per-op probability and magnitude over epochs)
//! rewards.png                every member's reward over epochs, exploits marked
//! rewards.csv                its data (member, epoch, reward)
//! schedule.csv               the schedule plot's data (epoch, op, probability, magnitude)
//! results.jsonl              one line per member and epoch: reward (val acc), train acc, loss
//! members.json               per member: final reward, exploits, lineage
//! trials/<k>/schedule.json   every member's lineage
//! pba/pbt_policy_<k>.txt     PBA's per-member logs; pba/pbt_global.txt every exploit
//! events.out.tfevents.rolekd per member and epoch: reward, train acc, loss, policy strength
//! ```

use crate::lineage::{log_text, PbaLogLine};
use crate::population::Snapshot;
use crate::space::SearchSpace;
use crate::store::Event;
use crate::trials::trial_dir;
use rolekd_augment::plot::OP_COLOURS;
use rolekd_core::files::{write_atomic, write_json};
use rolekd_core::{Error, Result};
use rolekd_plot::{write_csv, Canvas, EpochChart, BLACK, WHITE};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;

/// Outputs (paths relative to the stage directory) and summary numbers.
pub struct Written {
    pub outputs: BTreeMap<String, String>,
    pub summary: BTreeMap<String, f64>,
    pub best: usize,
}

/// The global log line of an exploit (the line appended to the member's log).
pub fn event_line(e: &Event) -> PbaLogLine {
    PbaLogLine {
        target: e.member,
        clone: e.donor,
        target_iter: e.epoch,
        clone_iter: e.donor_epoch,
        old: e.donor_genes.clone(),
        new: e.new_genes.clone(),
    }
}

/// Writes every output of a finished search into `dir`.
pub fn write_outputs(
    dir: &Path,
    snap: &Snapshot,
    space: &dyn SearchSpace,
    epochs: usize,
) -> Result<Written> {
    let best = snap
        .best(epochs)
        .ok_or_else(|| Error::Invalid("the search has no members".into()))?;
    write_member_logs(dir, snap, space, epochs)?;
    let bm = snap
        .members
        .iter()
        .find(|m| m.id == best)
        .ok_or_else(|| Error::Invalid(format!("best member {best} is not a member")))?;
    space.write_schedule(&bm.lineage, epochs, &dir.join("schedule.json"))?;
    space.plot(&bm.lineage, epochs, &dir.join("schedule.png"))?;
    write_atomic(
        &dir.join("rewards.png"),
        &rewards_plot(snap, epochs).to_png(),
    )?;
    write_rewards(dir, snap)?;
    crate::member_scalars::write_member_events(dir, snap)?;
    write_members(dir, snap, best, epochs)?;
    Ok(Written {
        outputs: outputs_of(best),
        summary: summary_of(snap, best, epochs),
        best,
    })
}

/// Each member's schedule and PBA-format policy log, and the global exploit log.
fn write_member_logs(
    dir: &Path,
    snap: &Snapshot,
    space: &dyn SearchSpace,
    epochs: usize,
) -> Result<()> {
    let pba = dir.join("pba");
    for m in &snap.members {
        space.write_schedule(
            &m.lineage,
            epochs,
            &trial_dir(dir, m.id).join("schedule.json"),
        )?;
        write_atomic(
            &pba.join(format!("pbt_policy_{}.txt", m.id)),
            log_text(&m.log).as_bytes(),
        )?;
    }
    let global: Vec<PbaLogLine> = snap.events.iter().map(event_line).collect();
    write_atomic(&pba.join("pbt_global.txt"), log_text(&global).as_bytes())
}

/// Every reward, as `rewards.csv` and `results.jsonl`.
fn write_rewards(dir: &Path, snap: &Snapshot) -> Result<()> {
    let reward_rows: Vec<Vec<String>> = snap
        .results
        .iter()
        .map(|r| {
            vec![
                r.member.to_string(),
                r.epoch.to_string(),
                r.reward.to_string(),
            ]
        })
        .collect();
    write_csv(
        &dir.join("rewards.csv"),
        &["member", "epoch", "reward"],
        &reward_rows,
    )?;
    let mut lines = String::new();
    for r in &snap.results {
        lines.push_str(&serde_json::to_string(r).map_err(|e| Error::Invalid(e.to_string()))?);
        lines.push('\n');
    }
    write_atomic(&dir.join("results.jsonl"), lines.as_bytes())
}

/// `members.json`: each member's rewards, exploits and genes.
fn write_members(dir: &Path, snap: &Snapshot, best: usize, epochs: usize) -> Result<()> {
    let members: Vec<serde_json::Value> = snap
        .members
        .iter()
        .map(|m| {
            json!({
                "member": m.id,
                "final_reward": snap.reward_at(m.id, epochs),
                "best_reward": snap.results.iter().filter(|r| r.member == m.id)
                    .map(|r| r.reward).fold(f64::NAN, f64::max),
                "exploited": snap.events.iter().filter(|e| e.member == m.id).count(),
                "donated": snap.events.iter().filter(|e| e.donor == m.id).count(),
                "policy_changes": m.lineage.changes(),
                "genes": m.genes,
            })
        })
        .collect();
    write_json(
        &dir.join("members.json"),
        &json!({"best": best, "epochs": epochs, "members": members}),
    )
}

fn summary_of(snap: &Snapshot, best: usize, epochs: usize) -> BTreeMap<String, f64> {
    let final_reward = snap.reward_at(best, epochs).unwrap_or(f64::NAN);
    let mut summary = BTreeMap::new();
    summary.insert("best_val_acc".to_string(), final_reward);
    summary.insert("final_val_acc".to_string(), final_reward);
    summary.insert("best_member".to_string(), best as f64);
    summary.insert("search_seconds".to_string(), snap.wall_seconds);
    summary.insert("exploits".to_string(), snap.events.len() as f64);
    summary.insert("population".to_string(), snap.members.len() as f64);
    summary
}

fn outputs_of(best: usize) -> BTreeMap<String, String> {
    [
        ("schedule", "schedule.json".to_string()),
        ("schedule_plot", "schedule.png".to_string()),
        ("rewards", "rewards.png".to_string()),
        ("results", "results.jsonl".to_string()),
        ("pba_log", format!("pba/pbt_policy_{best}.txt")),
        ("checkpoint", format!("trials/{best}/checkpoint")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

const LINK: [u8; 3] = [150, 150, 150];

/// An X marker of half-size `r`.
fn cross(c: &mut Canvas, (x, y): (i64, i64), r: i64, col: [u8; 3]) {
    c.line((x - r, y - r), (x + r, y + r), col, 2);
    c.line((x - r, y + r), (x + r, y - r), col, 2);
}

/// Member `k`'s colour.
pub fn member_colour(k: usize) -> [u8; 3] {
    OP_COLOURS[k % OP_COLOURS.len()]
}

/// Every member's reward (validation accuracy) over epochs. After an exploit a member's
/// line continues from its donor's point (the state it took over); the exploit is an X at
/// the member's own reward, joined to the donor's point by a grey line.
pub fn rewards_plot(snap: &Snapshot, epochs: usize) -> Canvas {
    let (w, h) = (900usize, 520usize);
    let mut c = Canvas::new(w, h, WHITE);
    let chart = EpochChart::new(snap.results.iter().map(|r| r.reward), epochs);
    let (left, top, pw, ph) = (chart.left, chart.top, chart.width, chart.height);
    let px = |e: usize| chart.x(e);
    let py = |r: f64| chart.y(r);
    chart.draw_frame(&mut c, "REWARD (VAL ACC) PER MEMBER, X = EXPLOIT", |v| {
        format!("{v:.3}")
    });
    c.text(
        (left + pw / 2) as usize - Canvas::text_width("EPOCH", 2) / 2,
        (top + ph + 26) as usize,
        "EPOCH",
        2,
        BLACK,
    );

    for m in &snap.members {
        let col = member_colour(m.id);
        let mut rows: Vec<(usize, f64)> = snap
            .results
            .iter()
            .filter(|r| r.member == m.id && r.reward.is_finite())
            .map(|r| (r.epoch, r.reward))
            .collect();
        rows.dedup_by_key(|r| r.0);
        let mut prev: Option<(i64, i64)> = None;
        for (epoch, reward) in rows {
            let p = (px(epoch), py(reward));
            if let Some(q) = prev {
                c.line(q, p, col, 2);
            }
            prev = Some(p);
            // An exploit here: the line goes on from the donor's point.
            if let Some(ev) = snap
                .events
                .iter()
                .rev()
                .find(|e| e.member == m.id && e.epoch == epoch)
            {
                let d = (px(ev.donor_epoch), py(ev.donor_reward));
                c.line(p, d, LINK, 1);
                prev = Some(d);
            }
        }
    }
    for ev in &snap.events {
        cross(
            &mut c,
            (px(ev.epoch), py(ev.reward)),
            5,
            member_colour(ev.member),
        );
    }
    // Legend.
    let lx = (left + pw + 30) as usize;
    for (i, m) in snap.members.iter().enumerate().take(24) {
        let y = top as usize + i * 18;
        c.fill(lx, y, lx + 12, y + 12, member_colour(m.id));
        c.text(lx + 20, y + 1, &format!("M{}", m.id), 2, BLACK);
    }
    c
}
