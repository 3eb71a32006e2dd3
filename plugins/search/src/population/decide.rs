//! The exploit/explore decisions: when they are taken (every member at a perturbation
//! point in sync mode, the reporter alone otherwise), the strategy's verdicts checked, and
//! what an exploit does to a member.

use super::*;

impl Population<'_> {
    /// Sync mode: once every member waits at `epoch`, decide for all and release them.
    pub(super) fn decide_sync(&self, tx: &mut dyn StoreTx, epoch: usize) -> Result<usize> {
        // Members stopped early (diverged, not exploited) take no further part.
        let members: Vec<Member> = tx
            .members()?
            .into_iter()
            .filter(|m| m.status != Status::Done)
            .collect();
        if !members
            .iter()
            .all(|m| m.epoch == epoch && m.status == Status::Waiting)
        {
            return Ok(0);
        }
        let results = tx.results()?;
        let scores: Vec<MemberScore> = members
            .iter()
            .map(|m| MemberScore {
                member: m.id,
                reward: windowed_reward(&results, m.id, epoch, self.cfg.plan.reward_window)
                    .unwrap_or(f64::NAN),
                genes: m.genes.clone(),
            })
            .collect();
        let mut rng = self.cfg.seed.child("decide").index(epoch as u64).rng();
        let decisions = self.strategy.decide(
            DecideCtx {
                epoch,
                epochs: self.cfg.epochs,
            },
            &scores,
            self.space,
            &mut rng,
        );
        self.check_decisions(&scores, &decisions)?;
        let mut updated = members.clone();
        let mut exploits = 0;
        for (i, d) in decisions.iter().enumerate() {
            if let Decision::Exploit { donor, genes } = d {
                let di = members
                    .iter()
                    .position(|m| m.id == *donor)
                    .expect("checked");
                let (t, ev) = exploited(
                    &members[i],
                    &members[di],
                    epoch,
                    epoch,
                    genes.clone(),
                    scores[i].reward,
                    scores[di].reward,
                );
                updated[i] = t;
                tx.add_event(&ev)?;
                exploits += 1;
            }
        }
        for mut m in updated {
            m.status = Status::Ready;
            tx.put_member(&m)?;
        }
        self.stop_diverged(tx, epoch)?;
        Ok(exploits)
    }

    /// Async mode: rank the reporter among its peers and decide for it alone.
    pub(super) fn decide_async(
        &self,
        tx: &mut dyn StoreTx,
        id: usize,
        epoch: usize,
    ) -> Result<usize> {
        let members = tx.members()?;
        let results = tx.results()?;
        let slack = self.cfg.slack;
        let peers: Vec<(&Member, f64)> = members
            .iter()
            .filter(|m| {
                m.status != Status::Done
                    && m.pending.is_none()
                    && m.epoch > 0
                    && m.epoch + slack >= epoch
                    && m.epoch <= epoch + slack
            })
            .filter_map(|m| {
                windowed_reward(&results, m.id, m.epoch, self.cfg.plan.reward_window)
                    .map(|r| (m, r))
            })
            .collect();
        let Some(me) = peers.iter().position(|(m, _)| m.id == id) else {
            return Ok(0);
        };
        if peers.len() < 2 {
            return Ok(0);
        }
        let scores: Vec<MemberScore> = peers
            .iter()
            .map(|(m, r)| MemberScore {
                member: m.id,
                reward: *r,
                genes: m.genes.clone(),
            })
            .collect();
        let mut rng = self
            .cfg
            .seed
            .child("decide")
            .index(epoch as u64)
            .index(id as u64)
            .rng();
        let decisions = self.strategy.decide(
            DecideCtx {
                epoch,
                epochs: self.cfg.epochs,
            },
            &scores,
            self.space,
            &mut rng,
        );
        self.check_decisions(&scores, &decisions)?;
        let Decision::Exploit { donor, genes } = &decisions[me] else {
            return Ok(0);
        };
        let di = peers
            .iter()
            .position(|(m, _)| m.id == *donor)
            .expect("checked");
        let (target, donor_m) = (peers[me].0, peers[di].0);
        let (t, ev) = exploited(
            target,
            donor_m,
            epoch,
            donor_m.epoch,
            genes.clone(),
            scores[me].reward,
            scores[di].reward,
        );
        tx.put_member(&t)?;
        tx.add_event(&ev)?;
        Ok(1)
    }

    fn check_decisions(&self, scores: &[MemberScore], decisions: &[Decision]) -> Result<()> {
        let bad = |m: String| {
            Err(Error::Invalid(format!(
                "search strategy `{}`: {m}",
                self.cfg.strategy_name
            )))
        };
        if decisions.len() != scores.len() {
            return bad(format!(
                "{} decisions for {} members",
                decisions.len(),
                scores.len()
            ));
        }
        for (s, d) in scores.iter().zip(decisions) {
            if let Decision::Exploit { donor, genes } = d {
                if *donor == s.member || !scores.iter().any(|x| x.member == *donor) {
                    return bad(format!(
                        "member {} cannot copy member {donor} (not a ranked peer)",
                        s.member
                    ));
                }
                if let Err(e) = check_genes(self.space, genes) {
                    return bad(format!("explored policy of member {}: {e}", s.member));
                }
            }
        }
        Ok(())
    }
}

/// `target` after it takes over `donor`'s state after `donor_epoch` epochs, at its own
/// `epoch`, with `genes`; and the event that records it.
fn exploited(
    target: &Member,
    donor: &Member,
    epoch: usize,
    donor_epoch: usize,
    genes: Vec<i64>,
    reward: f64,
    donor_reward: f64,
) -> (Member, Event) {
    let mut t = target.clone();
    t.log = inherit_log(
        &donor.log,
        t.id,
        donor.id,
        epoch,
        donor_epoch,
        &donor.genes,
        &genes,
    );
    t.lineage = donor.lineage.inherit(donor_epoch, genes.clone());
    t.pending = Some(Pending {
        donor: donor.id,
        donor_epoch,
        own_epoch: target.epoch,
    });
    t.genes = genes.clone();
    t.epoch = donor_epoch;
    let ev = Event {
        seq: 0,
        member: target.id,
        donor: donor.id,
        epoch,
        donor_epoch,
        old_genes: target.genes.clone(),
        donor_genes: donor.genes.clone(),
        new_genes: genes,
        reward,
        donor_reward,
    };
    (t, ev)
}
