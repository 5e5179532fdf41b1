//! What a `seed` or `warm` run did: counted while it runs, printed on stdout at the end, and
//! turned into the exit code.
//!
//! Failures are printed on stderr as they are counted, the first [`MAX_ERRORS_SHOWN`] in full:
//! when Redis is down, a thousand identical lines would hide the one that matters.

use std::fmt;

use super::client::Client;

/// Failures printed in full; later ones are only counted.
pub const MAX_ERRORS_SHOWN: usize = 20;

/// The service's cache hit rate after the run, or why it is not known.
#[derive(Debug, Clone, PartialEq)]
pub enum HitRate {
    /// `hit_rate` from `GET /cache/stats`.
    Known(f64),
    /// Why it could not be read (no token, not loopback, unreachable, ...).
    Unknown(String),
}

impl HitRate {
    /// Reads the hit rate from the service; a failure is a reason, not an error of the run.
    pub async fn read(client: &Client) -> Self {
        match client.hit_rate().await {
            Ok(rate) => HitRate::Known(rate),
            Err(err) => HitRate::Unknown(err.to_string()),
        }
    }
}

/// Counts of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Items created.
    pub created: usize,
    /// Records whose name already existed (in the service or earlier in the file).
    pub skipped: usize,
    /// Records and reads that failed, and steps abandoned.
    pub failed: usize,
    /// Reads that left a response in the cache (stored now, or already there).
    pub warmed: usize,
    /// Of `warmed`, those that were already cached (`X-Cache: HIT`).
    pub already_cached: usize,
    /// The hit rate afterwards.
    pub hit_rate: HitRate,
}

impl Default for Summary {
    fn default() -> Self {
        Self {
            created: 0,
            skipped: 0,
            failed: 0,
            warmed: 0,
            already_cached: 0,
            hit_rate: HitRate::Unknown("not read".into()),
        }
    }
}

impl Summary {
    /// Counts a failure and prints it on stderr (the first [`MAX_ERRORS_SHOWN`]).
    pub fn fail(&mut self, message: impl fmt::Display) {
        self.failed += 1;
        if self.failed <= MAX_ERRORS_SHOWN {
            eprintln!("error: {message}");
        } else if self.failed == MAX_ERRORS_SHOWN + 1 {
            eprintln!("error: more failures follow; only their number is shown in the summary");
        }
    }

    /// Counts `count` steps abandoned because the service stopped answering.
    pub fn abandon(&mut self, count: usize, what: &str) {
        if count > 0 {
            self.failed += count;
            eprintln!("error: {count} {what} not done: the service stopped answering; run again to finish");
        }
    }

    /// Whether nothing failed.
    pub fn succeeded(&self) -> bool {
        self.failed == 0
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "created:  {}", self.created)?;
        writeln!(f, "skipped:  {}", self.skipped)?;
        writeln!(f, "failed:   {}", self.failed)?;
        writeln!(
            f,
            "warmed:   {} ({} already cached)",
            self.warmed, self.already_cached
        )?;
        match &self.hit_rate {
            HitRate::Known(rate) => write!(
                f,
                "hit rate: {rate:.2} (service-wide, from GET /cache/stats)"
            ),
            HitRate::Unknown(why) => write!(f, "hit rate: unknown ({why})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_lists_every_count_and_the_hit_rate() {
        let summary = Summary {
            created: 3,
            skipped: 997,
            warmed: 1010,
            already_cached: 997,
            hit_rate: HitRate::Known(0.4949),
            ..Summary::default()
        };
        assert_eq!(
            summary.to_string(),
            "created:  3\nskipped:  997\nfailed:   0\nwarmed:   1010 (997 already cached)\n\
             hit rate: 0.49 (service-wide, from GET /cache/stats)"
        );
        assert!(summary.succeeded());
    }

    #[test]
    fn any_failure_fails_the_run() {
        let mut summary = Summary::default();
        summary.abandon(0, "creates");
        assert!(summary.succeeded());
        summary.fail("index 3: name: must not be empty");
        assert!(!summary.succeeded());
        assert!(summary
            .to_string()
            .ends_with("hit rate: unknown (not read)"));
    }
}
