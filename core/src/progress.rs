//! Progress output: bars with ETA on a terminal, plain log lines otherwise.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Instant;

/// Reports what a run is doing. Cheap to call from the training loop.
pub struct Progress {
    bar: Mutex<Option<ProgressBar>>,
    interactive: bool,
    quiet: bool,
    born: Instant,
}

impl Progress {
    /// Bars when stderr is a terminal, plain lines otherwise.
    pub fn new(quiet: bool) -> Self {
        Progress {
            bar: Mutex::new(None),
            interactive: std::io::stderr().is_terminal() && !quiet,
            quiet,
            born: Instant::now(),
        }
    }

    /// Seconds since the run started (for start-up figures).
    pub fn since_start(&self) -> f64 {
        self.born.elapsed().as_secs_f64()
    }

    /// Starts a bar of `total` steps (an epoch of training, say).
    pub fn start(&self, label: &str, total: u64) {
        if !self.interactive {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{prefix:>18} [{bar:30}] {pos}/{len} {msg} (eta {eta})")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        *self.bar.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar);
    }

    pub fn tick(&self, msg: impl FnOnce() -> String) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            bar.inc(1);
            if bar.position() % 10 == 0 {
                bar.set_message(msg());
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            bar.finish_and_clear();
        }
    }

    /// A log line (above the bar when one is shown).
    pub fn log(&self, line: &str) {
        if self.quiet {
            return;
        }
        match self.bar.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }
}
