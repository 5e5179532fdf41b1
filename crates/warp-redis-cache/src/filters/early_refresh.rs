//! Probabilistic early refresh (XFetch; Vattani, Chierichetti and Lowenstein, "Optimal
//! Probabilistic Cache Stampede Prevention", VLDB 2015).
//!
//! Each hit on a fresh entry refreshes it in the background when
//! `remaining <= origin_time * beta * -ln(u)` for a uniform `u` in (0, 1]. Far from expiry the
//! chance is negligible; it rises smoothly as expiry nears, and faster for entries whose origin
//! is slow (those are the ones a stampede hurts). Under steady traffic one request refreshes a
//! hot entry shortly before it would expire, so no request ever finds it missing, and since
//! the draw is independent per request the instances sharing a Redis do not all refresh at
//! once.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Whether a hit with `remaining` freshness, on an entry whose origin took `origin`, should
/// refresh it now. Never when `beta` is 0 or the origin time is unknown (0).
pub fn should_refresh(remaining: Duration, origin: Duration, beta: f64) -> bool {
    if beta <= 0.0 || origin.is_zero() {
        return false;
    }
    let gap = origin.as_secs_f64() * beta * -uniform().ln();
    remaining.as_secs_f64() <= gap
}

/// A uniform draw in (0, 1] from a per-thread xorshift generator seeded at random.
fn uniform() -> f64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(RandomState::new().build_hasher().finish() | 1);
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        // 53 random bits, shifted into (0, 1].
        ((x >> 11) + 1) as f64 / (1u64 << 53) as f64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(remaining_ms: u64, origin_ms: u64, beta: f64) -> f64 {
        let draws = 20_000;
        let hits = (0..draws)
            .filter(|_| {
                should_refresh(
                    Duration::from_millis(remaining_ms),
                    Duration::from_millis(origin_ms),
                    beta,
                )
            })
            .count();
        hits as f64 / draws as f64
    }

    #[test]
    fn off_when_beta_or_origin_time_is_zero() {
        assert_eq!(rate(0, 100, 0.0), 0.0);
        assert_eq!(rate(0, 0, 1.0), 0.0);
    }

    #[test]
    fn certain_at_expiry_and_negligible_far_from_it() {
        assert_eq!(rate(0, 100, 1.0), 1.0);
        assert_eq!(rate(10_000, 100, 1.0), 0.0);
    }

    #[test]
    fn probability_follows_the_exponential_law() {
        // P(-ln u >= r / (delta * beta)) = exp(-r / (delta * beta)).
        for (remaining, origin, beta) in [(100, 100, 1.0), (200, 100, 1.0), (100, 100, 2.0)] {
            let expected = (-(remaining as f64) / (origin as f64 * beta)).exp();
            let measured = rate(remaining, origin, beta);
            assert!(
                (measured - expected).abs() < 0.02,
                "remaining {remaining} origin {origin} beta {beta}: {measured} vs {expected}"
            );
        }
    }
}
