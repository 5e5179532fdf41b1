//! What one connection is doing, and which timeout, if any, it has run out of.
//!
//! A pure state machine with no I/O, so every rule is a unit test: the stream reports bytes
//! read and written and writes the client's socket refused, the service reports requests
//! beginning and ending, and [`Activity::verdict`] says whether the connection is busy,
//! waiting within its budget, or past one.
//!
//! - A request's head (from its first byte, or from accept for a new connection) must arrive
//!   within the header read timeout (slowloris).
//! - Between requests, a connection with nothing in flight may stay open for the idle timeout.
//!   A response still being written after its handler returned is not idle: each write that
//!   gets through restarts the idle clock.
//! - While a request is in flight, neither applies (its body has its own deadline).
//! - A response the client's socket takes nothing of (a client that never reads) must move
//!   within the response write timeout, whatever else is going on.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// The time budgets the watchdog enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budgets {
    /// From a request's first byte (or from accept) to its complete head.
    pub header_read: Duration,
    /// From the end of the last response to the next request's first byte.
    pub idle: Duration,
    /// From a write the client's socket refused to the next one it takes.
    pub response_write: Duration,
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
    /// A response has been stuck on the client's full socket for the response write
    /// timeout: close the connection now (a graceful close would wait for that write).
    WriteStalled,
}

#[derive(Debug)]
struct State {
    in_flight: u32,
    head_started: Option<Instant>,
    idle_since: Instant,
    write_refused_since: Option<Instant>,
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
                write_refused_since: None,
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

    /// The client's socket refused a write at `now` (it is full): the response write budget
    /// starts, unless it already runs.
    pub fn write_refused(&self, now: Instant) {
        let mut state = self.state();
        if state.write_refused_since.is_none() {
            state.write_refused_since = Some(now);
            self.deadline_moved_earlier.notify_one();
        }
    }

    /// Bytes were written to the client's socket at `now`: a stuck write moved, and a
    /// response still being written after its handler returned keeps the connection busy.
    pub fn bytes_written(&self, now: Instant) {
        let mut state = self.state();
        state.write_refused_since = None;
        if state.in_flight == 0 {
            state.idle_since = now;
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
    /// (a response ended, a new request began to arrive, or a write was refused), so the
    /// watchdog looks again.
    pub async fn deadline_moved(&self) {
        self.deadline_moved_earlier.notified().await;
    }

    /// What is due at `now` under `budgets`.
    pub fn verdict(&self, now: Instant, budgets: Budgets) -> Verdict {
        let state = self.state();
        if let Some(refused) = state.write_refused_since {
            let due = refused + budgets.response_write;
            return if now >= due {
                Verdict::WriteStalled
            } else {
                Verdict::CheckAt(due)
            };
        }
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
        response_write: Duration::from_secs(30),
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

    #[test]
    fn a_response_the_client_takes_nothing_of_must_move_within_the_write_budget() {
        let t0 = Instant::now();
        let activity = Activity::accepted(t0);
        activity.request_began();
        activity.request_ended(t0);
        let t1 = t0 + Duration::from_secs(50);
        activity.write_refused(t1);
        activity.write_refused(t1 + Duration::from_secs(20));
        assert_eq!(
            activity.verdict(t1 + Duration::from_secs(29), BUDGETS),
            Verdict::CheckAt(t1 + BUDGETS.response_write),
            "a stuck write is not idle, and refusals do not restart its budget"
        );
        assert_eq!(
            activity.verdict(t1 + BUDGETS.response_write, BUDGETS),
            Verdict::WriteStalled
        );
    }

    #[test]
    fn writes_that_get_through_keep_a_finished_handlers_response_from_being_idle() {
        let t0 = Instant::now();
        let activity = Activity::accepted(t0);
        activity.request_began();
        activity.request_ended(t0);
        let t1 = t0 + Duration::from_secs(25);
        activity.write_refused(t1);
        let t2 = t1 + Duration::from_secs(25);
        activity.bytes_written(t2);
        assert_eq!(
            activity.verdict(t2 + Duration::from_secs(25), BUDGETS),
            Verdict::CheckAt(t2 + BUDGETS.idle),
            "the write moved: no write timeout, and idle counts from the last write"
        );
        assert_eq!(activity.verdict(t2 + BUDGETS.idle, BUDGETS), Verdict::Idle);
    }
}
