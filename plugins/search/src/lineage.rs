//! A member's lineage (the chain of policies it inherited and explored, each with the
//! epoch it took effect) and its PBA log, the form the original code wrote it in.
//!
//! On an exploit, member `t` takes over donor `d`'s state after `d`'s epoch `e_d`: its
//! lineage becomes `d`'s lineage cut at `e_d` plus the explored policy from `e_d` on, and its
//! log becomes `d`'s log plus the line `[t, d, e_t, e_d, {"hp_policy": d's genes},
//! {"hp_policy": new genes}]` (Ray's PBT copied the donor's log file and appended). Every
//! log starts with the line `[k, k, 0, 0, initial, initial]`, so a member that was never
//! exploited has a log too, and PBA's `parse_log` (and
//! [`rolekd_augment::schedule::import_pba_log`]) decodes any member's log to its lineage.

use rolekd_augment::schedule::Schedule;
use rolekd_core::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A policy in force from epoch `start` until the next piece.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Piece {
    pub start: usize,
    pub genes: Vec<i64>,
}

/// The chain of policies of a member, in order of `start` (the first starts at 0).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage(pub Vec<Piece>);

impl Lineage {
    /// One policy from epoch 0.
    pub fn new(genes: Vec<i64>) -> Lineage {
        Lineage(vec![Piece { start: 0, genes }])
    }

    /// The policy in force now (the last piece's).
    pub fn current(&self) -> &[i64] {
        &self.0.last().expect("a lineage has a piece").genes
    }

    /// This lineage up to epoch `at`, then `genes` from `at` on (what a member inherits
    /// when it continues from this lineage's owner after `at` epochs).
    pub fn inherit(&self, at: usize, genes: Vec<i64>) -> Lineage {
        let mut pieces: Vec<Piece> = self.0.iter().filter(|p| p.start < at).cloned().collect();
        pieces.push(Piece { start: at, genes });
        Lineage(pieces)
    }

    /// (length, genes) pieces covering `0..epochs` (zero-length ones dropped).
    pub fn pieces(&self, epochs: usize) -> Vec<(usize, Vec<i64>)> {
        let mut out = Vec::new();
        for (i, p) in self.0.iter().enumerate() {
            let end = self
                .0
                .get(i + 1)
                .map(|n| n.start)
                .unwrap_or(epochs)
                .min(epochs);
            let start = p.start.min(epochs);
            if end > start {
                out.push((end - start, p.genes.clone()));
            }
        }
        out
    }

    /// The lineage as a PBA schedule of `epochs` epochs.
    pub fn schedule(&self, epochs: usize) -> Result<Schedule> {
        Schedule::from_pieces(&self.pieces(epochs))
    }

    /// Epochs at which the policy changed (exploits in its ancestry), after 0.
    pub fn changes(&self) -> Vec<usize> {
        self.0.iter().skip(1).map(|p| p.start).collect()
    }
}

/// One line of a PBA policy log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PbaLogLine {
    pub target: usize,
    pub clone: usize,
    pub target_iter: usize,
    pub clone_iter: usize,
    pub old: Vec<i64>,
    pub new: Vec<i64>,
}

impl PbaLogLine {
    /// The first line of every member's log: itself, at epoch 0, with its initial policy.
    pub fn start(member: usize, genes: &[i64]) -> PbaLogLine {
        PbaLogLine {
            target: member,
            clone: member,
            target_iter: 0,
            clone_iter: 0,
            old: genes.to_vec(),
            new: genes.to_vec(),
        }
    }

    /// `[target, clone, target_iter, clone_iter, {"hp_policy": old}, {"hp_policy": new}]`.
    pub fn to_json(&self) -> String {
        json!([
            self.target,
            self.clone,
            self.target_iter,
            self.clone_iter,
            {"hp_policy": self.old},
            {"hp_policy": self.new},
        ])
        .to_string()
    }
}

/// A log as the text of `pbt_policy_<k>.txt`.
pub fn log_text(lines: &[PbaLogLine]) -> String {
    lines.iter().map(|l| l.to_json() + "\n").collect()
}

/// The log of member `target` after it takes over `donor`'s state (donor log `donor_log`,
/// donor genes `donor_genes`) after `clone_iter` epochs, at its own `target_iter`.
pub fn inherit_log(
    donor_log: &[PbaLogLine],
    target: usize,
    donor: usize,
    target_iter: usize,
    clone_iter: usize,
    donor_genes: &[i64],
    new: &[i64],
) -> Vec<PbaLogLine> {
    let mut log = donor_log.to_vec();
    log.push(PbaLogLine {
        target,
        clone: donor,
        target_iter,
        clone_iter,
        old: donor_genes.to_vec(),
        new: new.to_vec(),
    });
    log
}

/// Checks a lineage: pieces in strictly increasing order from 0, each of `genes` genes.
pub fn check(lineage: &Lineage, genes: usize) -> Result<()> {
    let bad = |m: String| Err(Error::Invalid(format!("lineage: {m}")));
    if lineage.0.first().map(|p| p.start) != Some(0) {
        return bad("must start at epoch 0".into());
    }
    for w in lineage.0.windows(2) {
        if w[1].start < w[0].start {
            return bad(format!("piece at {} after {}", w[1].start, w[0].start));
        }
    }
    if let Some(p) = lineage.0.iter().find(|p| p.genes.len() != genes) {
        return bad(format!("{} genes, expected {genes}", p.genes.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rolekd_augment::schedule::{genes_from_entries, import_pba_log, GENES};

    fn g(k: usize, v: i64) -> Vec<i64> {
        let mut x = vec![0; GENES];
        x[k] = v;
        x
    }

    #[test]
    fn inherit_cuts_and_appends() {
        let a = Lineage::new(g(0, 1));
        let b = a.inherit(3, g(2, 4));
        let c = b.inherit(6, g(4, 5));
        assert_eq!(c.changes(), vec![3, 6]);
        // Cutting at 3 keeps only the first piece.
        let d = c.inherit(3, g(6, 7));
        assert_eq!(d.0.len(), 2);
        assert_eq!(d.current(), g(6, 7).as_slice());
        assert_eq!(
            c.pieces(10).iter().map(|(l, _)| *l).collect::<Vec<usize>>(),
            vec![3, 3, 4]
        );
        // A piece starting at the end is dropped.
        assert_eq!(c.inherit(10, g(8, 1)).pieces(10).len(), 3);
        check(&c, GENES).unwrap();
        assert!(check(&Lineage(vec![]), GENES).is_err());
    }

    /// Our own logs decode, through PBA's rule, to exactly the lineage's schedule, for a
    /// chain of exploits including a member that inherits from an already exploited donor.
    #[test]
    fn logs_decode_to_the_lineage() {
        let epochs = 12;
        let (i0, i2) = (g(0, 2), g(2, 4));
        let (l0, l2) = (Lineage::new(i0.clone()), Lineage::new(i2.clone()));
        let (log0, log2) = (
            vec![PbaLogLine::start(0, &i0)],
            vec![PbaLogLine::start(2, &i2)],
        );
        // Never exploited: a constant schedule.
        let s = import_pba_log(&log_text(&log2), epochs).unwrap();
        assert_eq!(s, l2.schedule(epochs).unwrap());
        // Epoch 3: 1 takes over 0.
        let n1 = g(5, 6);
        let log1 = inherit_log(&log0, 1, 0, 3, 3, l0.current(), &n1);
        let l1 = l0.inherit(3, n1);
        // Epoch 6: 0 takes over 1 (whose lineage already holds an exploit).
        let n0 = g(7, 8);
        let log0 = inherit_log(&log1, 0, 1, 6, 6, l1.current(), &n0);
        let l0 = l1.inherit(6, n0);
        // Epoch 9: 2 takes over 0, asynchronously: 0 is at epoch 8 already.
        let n2 = g(9, 9);
        let log2b = inherit_log(&log0, 2, 0, 9, 8, l0.current(), &n2);
        let l2b = l0.inherit(8, n2);
        for (log, lin) in [(&log0, &l0), (&log1, &l1), (&log2b, &l2b)] {
            let text = log_text(log);
            let s = import_pba_log(&text, epochs).unwrap();
            assert_eq!(s, lin.schedule(epochs).unwrap(), "{text}");
        }
        let s = l2b.schedule(epochs).unwrap();
        let bounds: Vec<(usize, usize)> = s.segments.iter().map(|x| (x.start, x.end)).collect();
        assert_eq!(bounds, vec![(0, 3), (3, 6), (6, 8), (8, 12)]);
        assert_eq!(genes_from_entries(&s.segments[1].policy).unwrap(), g(5, 6));
        // The lines are PBA's: 6 items, configs holding `hp_policy`.
        let v: serde_json::Value = serde_json::from_str(&log0[1].to_json()).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 6);
        assert_eq!(v[4]["hp_policy"].as_array().unwrap().len(), GENES);
    }
}
