//! A search's members as TensorBoard scalars: `member_<k>/reward`, `member_<k>/train_acc`,
//! `member_<k>/loss` and `member_<k>/policy_strength` per epoch, written once the search
//! ends into the stage directory's event file (each trial directory has its own file with
//! the trainer's figures).

use crate::population::Snapshot;
use crate::store::Event;
use rolekd_augment::schedule::{entries_from_genes, policy_strength};
use rolekd_core::Result;
use rolekd_engine::tensorboard::{unix_now, EventFile, Scalar};
use std::path::Path;

/// The genes member `member` trained with in epoch `epoch` (1-based): its own first policy
/// until its first exploit, then each exploit's explored genes from the epoch after it.
pub fn genes_in_epoch<'a>(
    events: &'a [Event],
    member: usize,
    epoch: usize,
    current: &'a [i64],
) -> &'a [i64] {
    let mut own: Vec<&Event> = events.iter().filter(|e| e.member == member).collect();
    own.sort_by_key(|e| e.seq);
    match own.iter().rev().find(|e| e.epoch < epoch) {
        Some(e) => &e.new_genes,
        None => own.first().map_or(current, |e| &e.old_genes),
    }
}

/// The scalars of every member's every epoch, in result order.
pub fn member_scalars(snap: &Snapshot) -> Vec<Scalar> {
    let wall_time = unix_now();
    let mut out = Vec::new();
    for r in &snap.results {
        let Some(m) = snap.members.iter().find(|m| m.id == r.member) else {
            continue;
        };
        let genes = genes_in_epoch(&snap.events, r.member, r.epoch, &m.genes);
        let strength = entries_from_genes(genes).map(|e| policy_strength(&e)).ok();
        let k = r.member;
        for (name, v) in [
            ("reward", Some(r.reward)),
            ("train_acc", Some(r.train_acc)),
            ("loss", Some(r.loss)),
            ("policy_strength", strength),
        ] {
            if let Some(value) = v.filter(|v| v.is_finite()) {
                out.push(Scalar {
                    tag: format!("member_{k}/{name}"),
                    step: r.epoch as i64,
                    value,
                    wall_time,
                });
            }
        }
    }
    out
}

/// Writes the stage directory's event file.
pub fn write_member_events(dir: &Path, snap: &Snapshot) -> Result<()> {
    EventFile::create(dir, &member_scalars(snap)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64, member: usize, epoch: usize, old: i64, new: i64) -> Event {
        Event {
            seq,
            member,
            donor: 9,
            epoch,
            donor_epoch: epoch,
            old_genes: vec![old],
            donor_genes: vec![new],
            new_genes: vec![new],
            reward: 0.0,
            donor_reward: 0.0,
        }
    }

    #[test]
    fn genes_follow_the_members_own_exploits() {
        // Member 1: policy 0 for epochs 1-2, exploited after epoch 2 (-> 5), after 4 (-> 7).
        let events = vec![
            event(1, 1, 2, 0, 5),
            event(2, 0, 2, 3, 6),
            event(3, 1, 4, 5, 7),
        ];
        let current = [7];
        let at = |epoch| genes_in_epoch(&events, 1, epoch, &current)[0];
        assert_eq!(
            [at(1), at(2), at(3), at(4), at(5), at(6)],
            [0, 0, 5, 5, 7, 7]
        );
        // A member never exploited trains with its current genes throughout.
        assert_eq!(genes_in_epoch(&events, 4, 3, &[2]), &[2]);
    }
}
