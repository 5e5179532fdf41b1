//! The retry policy of the operator client: which failures deserve another attempt, how long to
//! wait before it, and whether a failed request may have taken effect anyway.
//!
//! Decisions only, no I/O; [`client`](super::client) applies them. Waits double from 200 ms
//! (200, 400, 800 ms, ...) up to 5 s, plus up to a quarter more at random so that concurrent
//! retries spread out; a `Retry-After` in seconds is honoured instead, up to 10 s.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);

/// Whether an answer with `status` is worth retrying: 429 and 5xx. Other 4xx are final.
pub fn is_transient(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// Whether a request answered `status` may have taken effect: not when the service refused it
/// up front (429, 503).
pub fn status_may_have_applied(status: StatusCode) -> bool {
    !matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    )
}

/// The `Retry-After` of an answer, when given in seconds.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds = headers.get(RETRY_AFTER)?.to_str().ok()?;
    seconds.trim().parse().ok().map(Duration::from_secs)
}

/// The wait before retry number `retry` (from 1), or the one the service asked for.
pub fn backoff(retry: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(wait) = retry_after {
        return wait.min(MAX_RETRY_AFTER);
    }
    let wait = FIRST_BACKOFF
        .saturating_mul(1 << retry.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    // The clock's nanoseconds are random enough to keep concurrent retries apart.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |now| now.subsec_nanos());
    wait + (wait / 4).mul_f64(f64::from(nanos % 1000) / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> StatusCode {
        StatusCode::from_u16(code).expect("a status")
    }

    #[test]
    fn backoff_doubles_from_200ms_up_to_5s_with_some_jitter() {
        for (retry, base_ms) in [(1, 200), (2, 400), (3, 800), (6, 5000), (40, 5000)] {
            let wait = backoff(retry, None).as_millis();
            assert!(
                (base_ms..=base_ms * 5 / 4).contains(&wait),
                "{retry}: {wait}"
            );
        }
        let told = backoff(1, Some(Duration::from_secs(2)));
        assert_eq!(told, Duration::from_secs(2));
        let too_long = backoff(1, Some(Duration::from_secs(3600)));
        assert_eq!(too_long, MAX_RETRY_AFTER);
    }

    #[test]
    fn transient_statuses_are_429_and_5xx() {
        for code in [429, 500, 502, 503, 504] {
            assert!(is_transient(status(code)), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 413, 422] {
            assert!(!is_transient(status(code)), "{code}");
        }
    }

    #[test]
    fn refusals_up_front_did_not_take_effect() {
        assert!(!status_may_have_applied(status(429)));
        assert!(!status_may_have_applied(status(503)));
        assert!(status_may_have_applied(status(500)));
        assert!(status_may_have_applied(status(504)));
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(RETRY_AFTER, " 3 ".parse().expect("a header value"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("value"),
        );
        assert_eq!(retry_after(&headers), None);
    }
}
