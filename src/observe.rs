//! What wraps every response: a request id, security headers, one access-log line and the
//! request metrics.
//!
//! The request id is taken from `X-Request-Id` when it is well-formed (1 to 128 of
//! `A-Z a-z 0-9 . _ -`), so ids can follow a request across services; otherwise a new one is
//! generated. It is echoed on the response and written in the access log.
//!
//! The service wraps its routes with [`service`]: a `tower` service around
//! `warp::service(routes)` that reads the method, path and id straight from the request and
//! finishes the response when the routes' future completes, without a warp filter chain of its
//! own. [`observed`] does the same as a warp filter, for applications that compose filters.
//! Both run this per request: no `core::fmt`, no `String`s, metric children found by index
//! ([`Metrics::observe_route`]), the access line handed to [`crate::logging::access`].

use std::collections::hash_map::RandomState;
use std::convert::Infallible;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use warp::filters::path::FullPath;
use warp::http::header::{self, Entry, HeaderMap, HeaderName, HeaderValue};
use warp::http::uri::PathAndQuery;
use warp::http::{Method, Request};
use warp::reply::Response;
use warp::Filter;

use crate::logging::access::{self, AccessLine, Sink};
use crate::metrics::Metrics;

/// The request id header.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const MAX_REQUEST_ID_LEN: usize = 128;
/// The cache filters' outcome header, written in the access line.
const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

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
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
            ),
        ];
        if hsts_max_age_secs > 0 {
            let value = format!("max-age={hsts_max_age_secs}; includeSubDomains");
            headers.push((
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_str(&value).expect("digits and ASCII"),
            ));
        }
        Self { headers }
    }

    /// Adds each header `headers` does not already have (one lookup each; the values are
    /// shared, not copied). No `reserve`: it sizes for a load factor below the map's own and
    /// would grow (reallocate and rehash) a small response's map that the headers still fit.
    fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.headers {
            if let Entry::Vacant(slot) = headers.entry(name) {
                slot.insert(value.clone());
            }
        }
    }
}

/// The per-request work around the routes, shared by [`service`] and [`observed`].
struct Shell {
    metrics: Arc<Metrics>,
    security: SecurityHeaders,
}

/// What [`Shell::begin`] notes about a request for [`Shell::finish`].
struct Begun {
    started: Instant,
    id: HeaderValue,
    method: Method,
    route: usize,
    path: RequestPath,
}

/// The request's path, kept only while access lines are written.
enum RequestPath {
    Uri(PathAndQuery),
    Full(FullPath),
    Unused,
}

impl RequestPath {
    fn as_str(&self) -> &str {
        match self {
            RequestPath::Uri(path) => path.path(),
            RequestPath::Full(path) => path.as_str(),
            RequestPath::Unused => "-",
        }
    }
}

impl Shell {
    fn begin(
        &self,
        started: Instant,
        method: &Method,
        route: usize,
        keep_path: impl FnOnce() -> RequestPath,
        given_id: Option<&HeaderValue>,
    ) -> Begun {
        let id = match given_id {
            Some(given) if is_well_formed(given.as_bytes()) => given.clone(),
            _ => new_request_id(),
        };
        let path = match access::sink() {
            Sink::Off => RequestPath::Unused,
            Sink::Writer(_) | Sink::Log => keep_path(),
        };
        Begun {
            started,
            id,
            method: method.clone(),
            route,
            path,
        }
    }

    fn finish(&self, begun: Begun, response: &mut Response) {
        self.security.apply(response.headers_mut());
        let elapsed = begun.started.elapsed();
        let status = response.status().as_u16();
        self.metrics
            .observe_route(begun.route, &begun.method, status, elapsed);
        let sink = access::sink();
        if !matches!(sink, Sink::Off) {
            let cache = response
                .headers()
                .get(&X_CACHE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            let line = AccessLine {
                method: begun.method.as_str(),
                path: begun.path.as_str(),
                status,
                elapsed,
                cache,
                // Well-formed or generated: ASCII either way.
                request_id: std::str::from_utf8(begun.id.as_bytes()).unwrap_or("-"),
            };
            match sink {
                Sink::Writer(log) => log.record(&line),
                Sink::Log => log::info!(
                    target: access::TARGET,
                    "{} {} {} {:.3}ms cache={} request_id={}",
                    line.method,
                    line.path,
                    line.status,
                    line.elapsed.as_secs_f64() * 1000.0,
                    line.cache,
                    line.request_id,
                ),
                Sink::Off => {}
            }
        }
        response.headers_mut().insert(X_REQUEST_ID, begun.id);
    }
}

/// Wraps `inner` (a service such as `warp::service(routes)`, whose routes are already
/// recovered into responses) with request ids, security headers, the access log and metrics.
/// `inner`'s futures must be `Unpin`: box the routes (`Filter::boxed`), which also keeps
/// hyper from copying the whole tree's future per request.
pub fn service<S>(inner: S, metrics: Arc<Metrics>, security: SecurityHeaders) -> Observed<S> {
    Observed {
        inner,
        shell: Arc::new(Shell { metrics, security }),
    }
}

/// A service wrapped by [`service`].
#[derive(Clone)]
pub struct Observed<S> {
    inner: S,
    shell: Arc<Shell>,
}

impl<S, B> tower_service::Service<Request<B>> for Observed<S>
where
    S: tower_service::Service<Request<B>, Response = Response, Error = Infallible>,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ObservedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let started = Instant::now();
        let uri = request.uri();
        let begun = self.shell.begin(
            started,
            request.method(),
            crate::routes::labels::route_index(uri.path()),
            || match uri.path_and_query() {
                Some(path) => RequestPath::Uri(path.clone()),
                None => RequestPath::Unused,
            },
            request.headers().get(X_REQUEST_ID),
        );
        ObservedFuture {
            inner: self.inner.call(request),
            begun: Some(begun),
            shell: Arc::clone(&self.shell),
        }
    }
}

/// The response future of [`Observed`].
pub struct ObservedFuture<F> {
    inner: F,
    begun: Option<Begun>,
    shell: Arc<Shell>,
}

impl<F> Future for ObservedFuture<F>
where
    F: Future<Output = Result<Response, Infallible>> + Unpin,
{
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let Poll::Ready(Ok(mut response)) = Pin::new(&mut this.inner).poll(cx) else {
            return Poll::Pending;
        };
        if let Some(begun) = this.begun.take() {
            this.shell.finish(begun, &mut response);
        }
        Poll::Ready(Ok(response))
    }
}

/// Wraps `routes` (already recovered into responses) with request ids, security headers,
/// the access log and metrics, as a warp filter ([`service`] is the cheaper wrapping).
pub fn observed<F>(
    routes: F,
    metrics: Arc<Metrics>,
    security: SecurityHeaders,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone
where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    let shell = Arc::new(Shell { metrics, security });
    let begin = {
        let shell = Arc::clone(&shell);
        warp::any()
            .map(Instant::now)
            .and(warp::method())
            .and(warp::path::full())
            .and(
                warp::header::optional::<HeaderValue>("x-request-id")
                    .or(warp::any().map(|| None))
                    .unify(),
            )
            .map(
                move |started: Instant,
                      method: Method,
                      path: FullPath,
                      given: Option<HeaderValue>| {
                    let route = crate::routes::labels::route_index(path.as_str());
                    shell.begin(
                        started,
                        &method,
                        route,
                        || RequestPath::Full(path),
                        given.as_ref(),
                    )
                },
            )
    };
    begin
        .and(routes)
        .map(move |begun: Begun, mut response: Response| {
            shell.finish(begun, &mut response);
            response
        })
}

fn is_well_formed(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id
            .iter()
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
        assert!(is_well_formed(b"abc-123_X.y"));
        assert!(!is_well_formed(b""));
        assert!(!is_well_formed(b"has space"));
        assert!(!is_well_formed(b"evil\r\nheader"));
        assert!(!is_well_formed("x".repeat(129).as_bytes()));
        assert!(!is_well_formed("caf\u{e9}".as_bytes()));
        let a = new_request_id();
        assert_eq!(a.len(), 32);
        assert_ne!(a, new_request_id());
    }

    #[tokio::test]
    async fn the_filter_form_wraps_responses_like_the_service() {
        let metrics = Arc::new(Metrics::new());
        let routes = warp::any().map(|| Response::new("ok".into()));
        let filter = observed(routes, Arc::clone(&metrics), SecurityHeaders::new(0));
        let given = warp::test::request()
            .path("/items/7")
            .header("x-request-id", "trace-1")
            .reply(&filter)
            .await;
        assert_eq!(given.headers()[X_REQUEST_ID], "trace-1");
        assert_eq!(given.headers()[header::X_FRAME_OPTIONS], "DENY");
        let invalid = warp::test::request()
            .path("/health/live")
            .header("x-request-id", "not valid")
            .reply(&filter)
            .await;
        assert_eq!(invalid.headers()[X_REQUEST_ID].len(), 32);
        let families = metrics.registry().gather();
        let requests = families
            .iter()
            .find(|family| family.name() == "http_requests_total")
            .expect("requests counted");
        let routes: Vec<&str> = requests
            .get_metric()
            .iter()
            .flat_map(|metric| metric.get_label())
            .filter(|label| label.name() == "route")
            .map(|label| label.value())
            .collect();
        assert_eq!(routes, ["/health/live", "/items/{id}"]);
    }

    #[test]
    fn security_headers_fill_in_without_replacing_a_routes_own() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("SAMEORIGIN"),
        );
        SecurityHeaders::new(60).apply(&mut headers);
        assert_eq!(headers[header::X_FRAME_OPTIONS], "SAMEORIGIN");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(
            headers[header::STRICT_TRANSPORT_SECURITY],
            "max-age=60; includeSubDomains"
        );
        assert_eq!(headers.len(), 5);
    }
}
