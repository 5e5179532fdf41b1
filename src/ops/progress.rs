//! Progress of a long run on stderr: counts, rate and time left.
//!
//! On a terminal, a live `indicatif` bar. Otherwise (a pipeline, a CI log that keeps every
//! byte) plain lines, at most one per [`INTERVAL`], so a fast run prints nothing until it has
//! run that long and a slow one cannot flood the log. The summary is not printed here: it goes
//! to stdout, from the command.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Shortest time between two progress lines.
pub const INTERVAL: Duration = Duration::from_millis(500);

/// Counts of one phase (`create`, `warm`, ...) of a run.
#[derive(Debug)]
pub struct Progress {
    phase: &'static str,
    total: usize,
    done: usize,
    failed: usize,
    started: Instant,
    last_line: Instant,
    printed: bool,
    bar: Option<ProgressBar>,
}

/// A bar for `total` steps of `phase`, when stderr is a terminal.
fn terminal_bar(phase: &'static str, total: usize) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let style = ProgressStyle::with_template(
        "{prefix:>7} [{bar:30}] {pos}/{len} ({percent}%) {per_sec} ETA {eta} {msg}",
    )
    .expect("a valid template")
    .progress_chars("=> ");
    let bar = ProgressBar::new(total as u64)
        .with_style(style)
        .with_prefix(phase);
    Some(bar)
}

impl Progress {
    /// Starts counting `total` steps of `phase`: a bar on a terminal, else plain lines.
    pub fn start(phase: &'static str, total: usize) -> Self {
        let mut progress = Self::plain(phase, total);
        progress.bar = terminal_bar(phase, total);
        progress
    }

    /// Starts counting with plain lines whatever stderr is.
    fn plain(phase: &'static str, total: usize) -> Self {
        let now = Instant::now();
        Self {
            phase,
            total,
            done: 0,
            failed: 0,
            started: now,
            last_line: now,
            printed: false,
            bar: None,
        }
    }

    /// Counts one finished step, and shows it: on the bar, or as a line when one is due.
    pub fn step(&mut self, ok: bool) {
        if let Some(bar) = &self.bar {
            self.done += 1;
            self.failed += usize::from(!ok);
            bar.inc(1);
            if !ok {
                bar.set_message(format!("{} failed", self.failed));
            }
            return;
        }
        if let Some(line) = self.step_at(ok, Instant::now()) {
            eprintln!("{line}");
        }
    }

    /// Closes the bar, or prints a closing line when the phase printed any: a long run says
    /// when it ended.
    pub fn finish(self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
        if self.printed {
            let elapsed = self.started.elapsed().as_secs_f64();
            eprintln!(
                "{}: {}/{} done in {elapsed:.1}s, {} failed",
                self.phase, self.done, self.total, self.failed
            );
        }
    }

    /// Counts a step finished at `now`; returns the line to print, if one is due.
    fn step_at(&mut self, ok: bool, now: Instant) -> Option<String> {
        self.done += 1;
        if !ok {
            self.failed += 1;
        }
        if now.duration_since(self.last_line) < INTERVAL || self.done >= self.total {
            return None;
        }
        self.last_line = now;
        self.printed = true;
        Some(self.line(now))
    }

    fn line(&self, now: Instant) -> String {
        let elapsed = now.duration_since(self.started).as_secs_f64();
        let rate = self.done as f64 / elapsed.max(1e-3);
        let left = self.total.saturating_sub(self.done) as f64 / rate.max(1e-3);
        let percent = 100 * self.done / self.total.max(1);
        format!(
            "{}: {}/{} ({percent}%), {rate:.0}/s, ETA {left:.0}s, {} failed",
            self.phase, self.done, self.total, self.failed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_rate_limited_and_show_counts_rate_and_eta() {
        let mut progress = Progress::plain("create", 100);
        let t0 = progress.started;
        assert_eq!(
            progress.step_at(true, t0 + Duration::from_millis(100)),
            None
        );
        for _ in 0..18 {
            assert_eq!(
                progress.step_at(true, t0 + Duration::from_millis(400)),
                None
            );
        }
        let line = progress.step_at(false, t0 + Duration::from_secs(1));
        assert_eq!(
            line.as_deref(),
            Some("create: 20/100 (20%), 20/s, ETA 4s, 1 failed")
        );
        assert_eq!(
            progress.step_at(true, t0 + Duration::from_millis(1400)),
            None
        );
        assert!(progress
            .step_at(true, t0 + Duration::from_millis(1500))
            .is_some());
    }

    #[test]
    fn the_last_step_prints_no_progress_line() {
        let mut progress = Progress::plain("warm", 1);
        let later = progress.started + Duration::from_secs(5);
        assert_eq!(progress.step_at(true, later), None);
        assert!(!progress.printed);
    }
}
