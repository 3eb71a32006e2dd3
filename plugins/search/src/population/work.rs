//! The worker loop: claim a member, apply its pending exploit, train it to its next
//! stop, publish, report; for threads in one process ([`run_workers`]) or a worker process
//! ([`work`](fn@work)).

use super::*;

/// Trains, publishes and copies members' states: the search's side effects outside the
/// store.
pub trait Trials: Sync {
    /// Trains `member` from its saved state (or from scratch) up to `to` epochs with its
    /// current lineage; returns one row per epoch trained in `(member.epoch, to]`. `from`
    /// is the published state its saved state must continue from (None before its first
    /// report): a saved state that is not that one is replaced by it. Returns
    /// `Error::Interrupted` when `halt` is set (the epoch in progress is dropped; finished
    /// epochs stay saved).
    fn train(
        &self,
        member: &Member,
        from: Option<&CheckpointRef>,
        to: usize,
        halt: &AtomicBool,
    ) -> Result<Vec<ResultRow>>;
    /// Publishes `member`'s state after `epoch` epochs as an immutable checkpoint under a
    /// key of its own (a retry writes another; only the one a report records counts).
    fn publish(&self, member: usize, epoch: usize) -> Result<CheckpointRef>;
    /// Makes `member` continue from `donor` (idempotent); `own` is its own checkpoint,
    /// which it keeps the optimizer state or buffers from when `plan` copies weights only.
    fn exploit(
        &self,
        member: usize,
        donor: &CheckpointRef,
        own: Option<&CheckpointRef>,
        plan: &SearchPlan,
    ) -> Result<()>;
    /// Deletes a checkpoint the store no longer references.
    fn discard(&self, ckpt: &CheckpointRef) -> Result<()>;
    /// A progress line.
    fn log(&self, line: &str);
}

/// Wakes waiting workers when something changed in the store (a hint: they re-read it).
#[derive(Default)]
struct Wake {
    generation: Mutex<u64>,
    cv: Condvar,
}

impl Wake {
    fn current(&self) -> u64 {
        *self.generation.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notify(&self) {
        *self.generation.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.cv.notify_all();
    }

    fn wait_change(&self, seen: u64, timeout: Duration) {
        let g = self.generation.lock().unwrap_or_else(|e| e.into_inner());
        let _ = self
            .cv
            .wait_timeout_while(g, timeout, |g| *g == seen)
            .unwrap_or_else(|e| e.into_inner());
    }
}

/// Runs one worker thread per entry of `trials` (thread `w` trains with `trials[w]`: its
/// device) until every member is done. `interrupted` (the user's Ctrl-C) stops them after
/// they save; a failing worker stops the others.
pub fn run_workers(
    pop: &Population<'_>,
    trials: &[&dyn Trials],
    interrupted: &AtomicBool,
) -> Result<()> {
    if trials.is_empty() {
        return Err(Error::Invalid("a search needs at least one worker".into()));
    }
    let halt = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let wake = Wake::default();
    let session = format!(
        "{}-{}",
        std::process::id(),
        now_ms() // distinguishes this session's leases from a killed one's
    );
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let handles: Vec<_> = trials
            .iter()
            .enumerate()
            .map(|(w, &trials)| {
                let owner = format!("{session}-w{w}");
                let (halt, wake) = (&halt, &wake);
                s.spawn(move || {
                    // A panicking trainer (libtorch errors surface as panics in tch) must not
                    // leave the others waiting for its member: it stops the search like an
                    // error, its lease left behind as a kill would leave it.
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        worker(pop, trials, &owner, halt, wake)
                    }))
                    .unwrap_or_else(|p| {
                        let what = p
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                            .unwrap_or_default();
                        Err(Error::Invalid(format!("a search worker panicked: {what}")))
                    });
                    if r.is_err() {
                        halt.store(true, Ordering::SeqCst);
                    }
                    wake.notify();
                    r
                })
            })
            .collect();
        let (halt_ref, done_ref, wake_ref) = (&halt, &done, &wake);
        s.spawn(move || {
            while !done_ref.load(Ordering::SeqCst) {
                if interrupted.load(Ordering::SeqCst) && !halt_ref.load(Ordering::SeqCst) {
                    halt_ref.store(true, Ordering::SeqCst);
                    wake_ref.notify();
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let out = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Invalid("a search worker panicked".into())))
            })
            .collect();
        done.store(true, Ordering::SeqCst);
        out
    });
    // A real failure wins over the interrupts it caused in the other workers.
    let mut interrupted_err = None;
    for r in results {
        match r {
            Ok(()) => {}
            Err(Error::Interrupted) => interrupted_err = Some(Error::Interrupted),
            Err(e) => return Err(e),
        }
    }
    match interrupted_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn worker(
    pop: &Population<'_>,
    trials: &dyn Trials,
    owner: &str,
    halt: &AtomicBool,
    wake: &Wake,
) -> Result<()> {
    loop {
        if halt.load(Ordering::SeqCst) {
            return Err(Error::Interrupted);
        }
        let seen = wake.current();
        match pop.claim(owner)? {
            Claim::Finished => return Ok(()),
            Claim::Wait => wake.wait_change(seen, Duration::from_millis(250)),
            Claim::Member(m) => {
                let id = m.id;
                let r = step(pop, trials, owner, m, halt);
                if r.is_err() {
                    let _ = pop.release(id, owner);
                }
                wake.notify();
                r?;
            }
        }
    }
}

/// A worker of its own (a process that joined the search through the store): claims
/// members (`only` that one when given), trains and reports them until nothing is left, and
/// returns the steps it completed. Other processes' progress is seen by polling the store
/// every `poll`. `halt` (a SIGTERM) stops the member in training at its next step and gives
/// its lease back: `Error::Interrupted`.
pub fn work(
    pop: &Population<'_>,
    trials: &dyn Trials,
    owner: &str,
    only: Option<usize>,
    halt: &AtomicBool,
    poll: Duration,
) -> Result<usize> {
    let mut steps = 0;
    loop {
        if halt.load(Ordering::SeqCst) {
            return Err(Error::Interrupted);
        }
        match pop.claim_only(owner, only)? {
            Claim::Finished => return Ok(steps),
            Claim::Wait => {
                let end = Instant::now() + poll;
                while Instant::now() < end && !halt.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            Claim::Member(m) => {
                let id = m.id;
                let r = step(pop, trials, owner, m, halt);
                if r.is_err() {
                    let _ = pop.release(id, owner);
                }
                r?;
                steps += 1;
            }
        }
    }
}

impl Population<'_> {
    /// Waits until every member is done, trained by workers in other processes (a stage
    /// with `workers: 0`); `interrupted` stops the wait (`Error::Interrupted`).
    pub fn wait_finished(&self, interrupted: &AtomicBool, poll: Duration) -> Result<()> {
        loop {
            let done = transact(self.store, |tx| {
                Ok(tx.members()?.iter().all(|m| m.status == Status::Done))
            })?;
            if done {
                return Ok(());
            }
            let end = Instant::now() + poll;
            while Instant::now() < end {
                if interrupted.load(Ordering::SeqCst) {
                    return Err(Error::Interrupted);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// One claimed member: apply a pending exploit, train to the next point, publish, report.
pub(super) fn step(
    pop: &Population<'_>,
    trials: &dyn Trials,
    owner: &str,
    mut m: Member,
    halt: &AtomicBool,
) -> Result<()> {
    let from = if let Some(p) = m.pending {
        let (donor, own) = pop.pending_checkpoints(m.id, &p)?;
        trials.exploit(m.id, &donor, own.as_ref(), &pop.cfg.plan)?;
        let base = trials.publish(m.id, p.donor_epoch)?;
        if !pop.applied(m.id, owner, Some(&base))? {
            trials.discard(&base)?;
            return Ok(());
        }
        m.pending = None;
        Some(base)
    } else if m.epoch > 0 {
        pop.resume_point(m.id, m.epoch)?
    } else {
        None
    };
    let to = pop.next_stop(m.epoch);
    // `stop` halts the training on an interrupt, or as soon as the heartbeat finds the
    // lease gone: a stalled worker that wakes up after its lease expired stops writing the
    // member's state at the next step instead of training on beside its new owner.
    let (stop, lost) = (AtomicBool::new(false), AtomicBool::new(false));
    let trained = with_heartbeat(pop, m.id, owner, halt, &stop, &lost, || {
        trials.train(&m, from.as_ref(), to, &stop)
    });
    if lost.load(Ordering::SeqCst) {
        trials.log(&format!(
            "warning: member {}: lease lost while training; stopped, nothing reported",
            m.id
        ));
        return Ok(());
    }
    let (rows, reported) = match trained {
        Ok(rows) => {
            let ckpt = trials.publish(m.id, to)?;
            let reported = pop.report(m.id, owner, &rows, &ckpt)?;
            (rows, reported)
        }
        // One member's divergence is a result (it ranks last), not the search's failure.
        Err(e @ (Error::NonFinite { .. } | Error::Stalled { .. })) => {
            trials.log(&format!(
                "warning: member {} diverged or stalled ({e}); it ranks last and is replaced by an exploit when the strategy exploits, else stops",
                m.id
            ));
            (Vec::new(), pop.report_diverged(m.id, owner, to)?)
        }
        Err(e) => return Err(e),
    };
    match reported {
        Reported::Recorded { exploits } => {
            let reward = rows.iter().rev().find(|r| r.epoch == to).map(|r| r.reward);
            trials.log(&format!(
                "member {} reported epoch {to}/{}: reward {:.4}{}",
                m.id,
                pop.cfg.epochs,
                reward.unwrap_or(f64::NAN),
                if exploits > 0 {
                    format!("; {exploits} members exploit a top member")
                } else {
                    String::new()
                }
            ));
        }
        Reported::LostLease => trials.log(&format!(
            "warning: member {}: lease lost while training; result dropped",
            m.id
        )),
    }
    for c in pop.collect_garbage()? {
        trials.discard(&c)?;
    }
    Ok(())
}

/// Runs `f` while a thread renews the lease at a third of its length and raises `stop`
/// when `halt` is raised or the lease is lost (then `lost` too). A failed renewal (the store
/// unreachable) is retried at the next beat: only the store saying no loses the lease.
fn with_heartbeat<T>(
    pop: &Population<'_>,
    id: usize,
    owner: &str,
    halt: &AtomicBool,
    stop: &AtomicBool,
    lost: &AtomicBool,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let done = (Mutex::new(false), Condvar::new());
    let period = pop.cfg.lease / 3;
    let tick = Duration::from_millis(50);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut finished = done.0.lock().unwrap_or_else(|e| e.into_inner());
            let mut next = Instant::now() + period;
            loop {
                let wait = next.saturating_duration_since(Instant::now()).min(tick);
                let (g, _) = done
                    .1
                    .wait_timeout_while(finished, wait, |d| !*d)
                    .unwrap_or_else(|e| e.into_inner());
                finished = g;
                if *finished {
                    return;
                }
                if halt.load(Ordering::SeqCst) {
                    stop.store(true, Ordering::SeqCst);
                }
                if Instant::now() >= next {
                    next = Instant::now() + period;
                    if let Ok(false) = pop.renew(id, owner) {
                        lost.store(true, Ordering::SeqCst);
                        stop.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            }
        });
        // Stops the heartbeat however `f` ends (a panic too: the scope waits for it).
        struct Done<'s>(&'s (Mutex<bool>, Condvar));
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                *self.0 .0.lock().unwrap_or_else(|e| e.into_inner()) = true;
                self.0 .1.notify_all();
            }
        }
        let _done = Done(&done);
        f()
    })
}
