//! A circuit breaker in front of the cache backend.
//!
//! After `failures_to_open` consecutive failures the circuit opens: calls fail at once, without
//! touching the network, for the cool-down. Then one call is let through as a probe: success
//! closes the circuit, failure opens it for another cool-down. Requests meanwhile go straight to
//! the origin with no added latency. Each state change is logged once and counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

/// The breaker's state, as reported in stats and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// Calls fail at once until the cool-down ends.
    Open,
    /// One probe call is in flight; the others fail at once.
    HalfOpen,
}

#[derive(Debug)]
enum State {
    Closed {
        consecutive_failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A probe went out at `since`. If it never reports (its request was dropped), another
    /// probe is allowed after a cool-down, so the breaker cannot stay half-open forever.
    HalfOpen {
        since: Instant,
    },
}

/// Whether a call may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Allowed,
    /// Go ahead as the one probe that decides whether to close the circuit.
    Probe,
    /// Do not call: the circuit is open.
    Rejected,
}

/// Counts failures and decides when to skip the backend.
#[derive(Debug)]
pub struct CircuitBreaker {
    state: Mutex<State>,
    failures_to_open: u32,
    cooldown: Duration,
    opened: AtomicU64,
}

impl CircuitBreaker {
    /// Opens after `failures_to_open` consecutive failures, for `cooldown` at a time.
    pub fn new(failures_to_open: u32, cooldown: Duration) -> Self {
        Self {
            state: Mutex::new(State::Closed {
                consecutive_failures: 0,
            }),
            failures_to_open: failures_to_open.max(1),
            cooldown,
            opened: AtomicU64::new(0),
        }
    }

    /// Whether a call may go ahead now.
    pub fn admit(&self) -> Admission {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match *state {
            State::Closed { .. } => Admission::Allowed,
            State::HalfOpen { since } if now.duration_since(since) >= self.cooldown => {
                *state = State::HalfOpen { since: now };
                Admission::Probe
            }
            State::HalfOpen { .. } => Admission::Rejected,
            State::Open { until } if now >= until => {
                *state = State::HalfOpen { since: now };
                Admission::Probe
            }
            State::Open { .. } => Admission::Rejected,
        }
    }

    /// Records how an admitted call went.
    pub fn record(&self, admission: Admission, succeeded: bool) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match (admission, succeeded) {
            (Admission::Rejected, _) => {}
            (Admission::Probe, true) => {
                *state = State::Closed {
                    consecutive_failures: 0,
                };
                log::info!("cache circuit closed: the backend answered the probe");
            }
            (Admission::Probe, false) => self.open(&mut state, "the probe failed"),
            (Admission::Allowed, true) => {
                if let State::Closed {
                    consecutive_failures,
                } = &mut *state
                {
                    *consecutive_failures = 0;
                }
            }
            (Admission::Allowed, false) => {
                if let State::Closed {
                    consecutive_failures,
                } = &mut *state
                {
                    *consecutive_failures += 1;
                    if *consecutive_failures >= self.failures_to_open {
                        let reason = format!("{} consecutive failures", self.failures_to_open);
                        self.open(&mut state, &reason);
                    }
                }
            }
        }
    }

    fn open(&self, state: &mut State, reason: &str) {
        *state = State::Open {
            until: Instant::now() + self.cooldown,
        };
        self.opened.fetch_add(1, Ordering::Relaxed);
        log::warn!(
            "cache circuit open ({reason}): requests skip the cache for {:?}, then one probe decides",
            self.cooldown
        );
    }

    /// The current state.
    pub fn state(&self) -> CircuitState {
        match *self.state.lock().unwrap_or_else(|e| e.into_inner()) {
            State::Closed { .. } => CircuitState::Closed,
            State::Open { .. } => CircuitState::Open,
            State::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// How many times the circuit has opened.
    pub fn times_opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_then_probes() {
        let breaker = CircuitBreaker::new(3, Duration::from_millis(30));
        for _ in 0..2 {
            assert_eq!(breaker.admit(), Admission::Allowed);
            breaker.record(Admission::Allowed, false);
        }
        breaker.record(Admission::Allowed, true);
        for _ in 0..3 {
            breaker.record(Admission::Allowed, false);
        }
        assert_eq!(breaker.state(), CircuitState::Open);
        assert_eq!(breaker.admit(), Admission::Rejected);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(breaker.admit(), Admission::Probe);
        assert_eq!(
            breaker.admit(),
            Admission::Rejected,
            "only one probe at a time"
        );
        breaker.record(Admission::Probe, false);
        assert_eq!(breaker.state(), CircuitState::Open);
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(breaker.admit(), Admission::Probe);
        breaker.record(Admission::Probe, true);
        assert_eq!(breaker.state(), CircuitState::Closed);
        assert_eq!(breaker.times_opened(), 2);
    }

    #[test]
    fn a_probe_that_never_reports_does_not_stick_half_open() {
        let breaker = CircuitBreaker::new(1, Duration::from_millis(20));
        breaker.record(Admission::Allowed, false);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(breaker.admit(), Admission::Probe);
        // The probe's request is dropped: no record() call.
        assert_eq!(breaker.admit(), Admission::Rejected);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(
            breaker.admit(),
            Admission::Probe,
            "a new probe after a cool-down"
        );
        breaker.record(Admission::Probe, true);
        assert_eq!(breaker.state(), CircuitState::Closed);
    }
}
