//! What wraps every response: a request id, security headers, one access-log line and the
//! request metrics.
//!
//! The request id is taken from `X-Request-Id` when it is well-formed (1 to 128 of
//! `A-Z a-z 0-9 . _ -`), so ids can follow a request across services; otherwise a new one is
//! generated. It is echoed on the response and written in the access log.

use std::collections::hash_map::RandomState;
use std::convert::Infallible;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use warp::filters::path::FullPath;
use warp::http::header::{HeaderName, HeaderValue};
use warp::http::Method;
use warp::reply::Response;
use warp::Filter;

use crate::metrics::Metrics;

/// The request id header.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const MAX_REQUEST_ID_LEN: usize = 128;

/// Security headers added to every response that does not set its own.
#[derive(Debug, Clone)]
pub struct SecurityHeaders {
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl SecurityHeaders {
    /// The standard set for a JSON API; `hsts_max_age_secs > 0` adds Strict-Transport-Security.
    pub fn new(hsts_max_age_secs: u64) -> Self {
        let mut headers = vec![
            (
                HeaderName::from_static("x-content-type-options"),
                HeaderValue::from_static("nosniff"),
            ),
            (
                HeaderName::from_static("x-frame-options"),
                HeaderValue::from_static("DENY"),
            ),
            (
                HeaderName::from_static("referrer-policy"),
                HeaderValue::from_static("no-referrer"),
            ),
            (
                HeaderName::from_static("content-security-policy"),
                HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
            ),
        ];
        if hsts_max_age_secs > 0 {
            let value = format!("max-age={hsts_max_age_secs}; includeSubDomains");
            headers.push((
                HeaderName::from_static("strict-transport-security"),
                HeaderValue::from_str(&value).expect("digits and ASCII"),
            ));
        }
        Self { headers }
    }
}

/// Wraps `routes` (already recovered into responses) with request ids, security headers,
/// the access log and metrics.
pub fn observed<F>(
    routes: F,
    metrics: Arc<Metrics>,
    security: SecurityHeaders,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone
where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    let security = Arc::new(security);
    warp::any()
        .map(Instant::now)
        .and(request_id())
        .and(warp::method())
        .and(warp::path::full())
        .and(routes)
        .map(
            move |started: Instant,
                  id: HeaderValue,
                  method: Method,
                  path: FullPath,
                  mut response: Response| {
                let headers = response.headers_mut();
                for (name, value) in &security.headers {
                    if !headers.contains_key(name) {
                        headers.insert(name.clone(), value.clone());
                    }
                }
                headers.insert(X_REQUEST_ID, id.clone());
                let elapsed = started.elapsed();
                let status = response.status().as_u16();
                let route = crate::routes::route_label(path.as_str());
                metrics.observe(route, &method, status, elapsed);
                let cache = response
                    .headers()
                    .get("x-cache")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                log::info!(
                    target: "warp_redis_cache::access",
                    "{method} {} {status} {:.3}ms cache={cache} request_id={}",
                    path.as_str(),
                    elapsed.as_secs_f64() * 1000.0,
                    id.to_str().unwrap_or("-"),
                );
                response
            },
        )
}

/// The request's id: its own `X-Request-Id` when well-formed, else a new one.
fn request_id() -> impl Filter<Extract = (HeaderValue,), Error = Infallible> + Clone {
    warp::header::optional::<String>("x-request-id")
        .or(warp::any().map(|| None))
        .unify()
        .map(|given: Option<String>| {
            given
                .filter(|id| is_well_formed(id))
                .and_then(|id| HeaderValue::from_str(&id).ok())
                .unwrap_or_else(new_request_id)
        })
}

fn is_well_formed(id: &str) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// 32 hex digits: a random per-process prefix and a keyed hash of a counter, so ids are
/// unique within the process and unpredictable across processes. (Cheap: this runs on every
/// request, hits included.)
fn new_request_id() -> HeaderValue {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static PROCESS: std::sync::OnceLock<(RandomState, u64)> = std::sync::OnceLock::new();
    let (keys, prefix) = PROCESS.get_or_init(|| {
        let keys = RandomState::new();
        let prefix = keys.hash_one(std::process::id());
        (keys, prefix)
    });
    let mut hasher = keys.build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let mut id = [0u8; 32];
    hex_into(&mut id[..16], *prefix);
    hex_into(&mut id[16..], hasher.finish());
    HeaderValue::from_bytes(&id).expect("hex digits")
}

fn hex_into(out: &mut [u8], value: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = DIGITS[((value >> (60 - 4 * i)) & 0xf) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_validated_and_generated_unique() {
        assert!(is_well_formed("abc-123_X.y"));
        assert!(!is_well_formed(""));
        assert!(!is_well_formed("has space"));
        assert!(!is_well_formed("evil\r\nheader"));
        assert!(!is_well_formed(&"x".repeat(129)));
        let a = new_request_id();
        assert_eq!(a.len(), 32);
        assert_ne!(a, new_request_id());
    }
}
