//! What one connection is doing, and which timeout, if any, it has run out of.
//!
//! A pure state machine with no I/O, so every rule is a unit test: the stream reports bytes
//! read, the service reports requests beginning and ending, and [`Activity::verdict`] says
//! whether the connection is busy, waiting within its budget, or past one.
//!
//! - A request's head (from its first byte, or from accept for a new connection) must arrive
//!   within the header read timeout (slowloris).
//! - Between requests, a connection with nothing in flight may stay open for the idle timeout.
//! - While a request is in flight, neither applies (its body has its own deadline).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The two time budgets the watchdog enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// From a request's first byte (or from accept) to its complete head.
    pub header_read: Duration,
    /// From the end of the last response to the next request's first byte.
    pub idle: Duration,
}

/// What the watchdog should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing is overdue; look again at this instant.
    CheckAt(Instant),
    /// A request head is overdue: close the connection.
    HeaderTimeout,
    /// Nothing in flight for the idle timeout: close the connection gracefully.
    Idle,
}

#[derive(Debug)]
struct State {
    in_flight: u32,
    head_started: Option<Instant>,
    idle_since: Instant,
}

/// One connection's activity, shared by its stream, its service and its watchdog.
#[derive(Debug)]
pub struct Activity {
    state: Mutex<State>,
    deadline_moved_earlier: Notify,
}

impl Activity {
    /// A connection accepted at `now`: its first request head is due within the header budget.
    pub fn accepted(now: Instant) -> Self {
        Self {
            state: Mutex::new(State {
                in_flight: 0,
                head_started: Some(now),
                idle_since: now,
            }),
            deadline_moved_earlier: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes arrived at `now`: between requests, they start the next request's head.
    pub fn bytes_read(&self, now: Instant) {
        let mut state = self.state();
        if state.in_flight == 0 && state.head_started.is_none() {
            state.head_started = Some(now);
            self.deadline_moved_earlier.notify_one();
        }
    }

    /// A request's head was read and handed to the service.
    pub fn request_began(&self) {
        let mut state = self.state();
        state.in_flight += 1;
        state.head_started = None;
    }

    /// The service answered a request at `now`.
    pub fn request_ended(&self, now: Instant) {
        let mut state = self.state();
        state.in_flight = state.in_flight.saturating_sub(1);
        state.idle_since = now;
        self.deadline_moved_earlier.notify_one();
    }

    /// Completes when a deadline may have come closer than the last [`Self::verdict`] said
    /// (a response ended, or a new request began to arrive), so the watchdog looks again.
    pub async fn deadline_moved(&self) {
        self.deadline_moved_earlier.notified().await;
    }

    /// What is due at `now` under `budgets`.
    pub fn verdict(&self, now: Instant, budgets: Budgets) -> Verdict {
        let state = self.state();
        if state.in_flight > 0 {
            return Verdict::CheckAt(now + budgets.idle);
        }
        if let Some(started) = state.head_started {
            let due = started + budgets.header_read;
            return if now >= due {
                Verdict::HeaderTimeout
            } else {
                Verdict::CheckAt(due)
            };
        }
        let due = state.idle_since + budgets.idle;
        if now >= due {
            Verdict::Idle
        } else {
            Verdict::CheckAt(due)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGETS: Budgets = Budgets {
        header_read: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    #[test]
    fn a_new_connection_must_send_its_head_within_the_header_budget() {
        let t0 = Instant::now();
        let activity = Activity::accepted(t0);
        assert_eq!(
            activity.verdict(t0, BUDGETS),
            Verdict::CheckAt(t0 + BUDGETS.header_read)
        );
        activity.bytes_read(t0 + Duration::from_secs(5));
        assert_eq!(
            activity.verdict(t0 + Duration::from_secs(10), BUDGETS),
            Verdict::HeaderTimeout
        );
    }

    #[test]
    fn between_requests_the_idle_budget_applies_until_bytes_arrive() {
        let t0 = Instant::now();
        let activity = Activity::accepted(t0);
        activity.request_began();
        let t1 = t0 + Duration::from_secs(100);
        assert_eq!(
            activity.verdict(t1, BUDGETS),
            Verdict::CheckAt(t1 + BUDGETS.idle),
            "in flight: no timeout"
        );
        activity.request_ended(t1);
        assert_eq!(
            activity.verdict(t1 + Duration::from_secs(30), BUDGETS),
            Verdict::CheckAt(t1 + BUDGETS.idle)
        );
        assert_eq!(activity.verdict(t1 + BUDGETS.idle, BUDGETS), Verdict::Idle);
        let t2 = t1 + Duration::from_secs(50);
        activity.bytes_read(t2);
        assert_eq!(
            activity.verdict(t2 + Duration::from_secs(11), BUDGETS),
            Verdict::HeaderTimeout,
            "a head started between requests has the header budget"
        );
    }
}
