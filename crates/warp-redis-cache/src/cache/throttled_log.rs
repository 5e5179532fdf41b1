//! A warning log that cannot flood: at most one line per interval, counting what it held back.
//!
//! When Redis is down every request fails the same way; one line every few seconds with a count
//! tells the operator as much as ten thousand lines would.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Rate-limited warnings for one kind of failure.
#[derive(Debug)]
pub struct ThrottledLog {
    interval: Duration,
    last_logged: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl ThrottledLog {
    /// Logs at most once per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last_logged: Mutex::new(None),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Logs `message` as a warning unless one was logged within the interval; returns whether
    /// it was logged.
    pub fn warn(&self, message: impl FnOnce() -> String) -> bool {
        let now = Instant::now();
        {
            let mut last = self.last_logged.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|at| now.duration_since(at) < self.interval) {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            *last = Some(now);
        }
        let held_back = self.suppressed.swap(0, Ordering::Relaxed);
        if held_back > 0 {
            log::warn!("{} ({held_back} similar messages suppressed)", message());
        } else {
            log::warn!("{}", message());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_warning_within_interval_is_suppressed() {
        let log = ThrottledLog::new(Duration::from_secs(60));
        assert!(log.warn(|| "first".into()));
        assert!(!log.warn(|| "second".into()));
        assert_eq!(log.suppressed.load(Ordering::Relaxed), 1);
    }
}
