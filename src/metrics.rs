//! Prometheus metrics: HTTP request counts and latency per route and status, recorded as
//! requests finish, plus cache and pool state rendered from the cache manager at scrape time.
//!
//! Each [`Metrics`] has its own registry (several applications can live in one process, as
//! they do in the tests). Every label value comes from a fixed set, whatever clients send:
//! routes are the route tree's templates (`/items/{id}`) or `other`, methods the standard ones
//! or `other` ([`method_label`]), statuses the codes the service emits or their class
//! ([`status_label`]). A client inventing methods cannot create series.
//!
//! Because every label set is known in advance, each (route, method, status) has a slot for its
//! counter and histogram: the first request of a combination resolves them (and creates the
//! series), later ones find them by index instead of hashing label values. Series still appear
//! only once a request has used them.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
    TextEncoder,
};

use warp::http::Method;

use warp_redis_cache::admin::{CircuitState, StatsSnapshot};
use warp_redis_cache::CacheManager;

/// Latency buckets in seconds: a cache hit is well under a millisecond.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The `method` labels, in [`method_index`] order.
const METHOD_LABELS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE", "other",
];

/// The status class labels after the known statuses, in [`status_index`] order.
const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

const ROUTES: usize = crate::routes::labels::ROUTE_LABELS.len();
const STATUSES: usize = KNOWN_STATUSES.len() + STATUS_CLASSES.len();

/// One label set's counter and histogram.
type Children = (IntCounter, Histogram);

/// The service's metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    /// Resolved children by (route, method, status) index; filled on first use.
    children: Box<[OnceLock<Children>]>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with the HTTP metrics registered.
    pub fn new() -> Self {
        let labels = ["route", "method", "status"];
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests answered"),
            &labels,
        )
        .expect("valid metric definition");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to answer HTTP requests",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &labels,
        )
        .expect("valid metric definition");
        let registry = Registry::new();
        registry
            .register(Box::new(requests.clone()))
            .expect("registered once");
        registry
            .register(Box::new(latency.clone()))
            .expect("registered once");
        Self {
            registry,
            requests,
            latency,
            children: (0..ROUTES * METHOD_LABELS.len() * STATUSES)
                .map(|_| OnceLock::new())
                .collect(),
        }
    }

    /// The registry, for metrics other modules own (connections: [`crate::server::events`]).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Records one answered request. `route` must come from a fixed set (the route templates).
    pub fn observe(&self, route: &'static str, method: &Method, status: u16, elapsed: Duration) {
        match crate::routes::labels::ROUTE_LABELS
            .iter()
            .position(|known| *known == route)
        {
            Some(index) => self.observe_route(index, method, status, elapsed),
            None => {
                let labels = [route, method_label(method), status_label(status)];
                self.requests.with_label_values(&labels).inc();
                self.latency
                    .with_label_values(&labels)
                    .observe(elapsed.as_secs_f64());
            }
        }
    }

    /// Records one answered request of the route template
    /// [`ROUTE_LABELS[route]`](crate::routes::labels::ROUTE_LABELS) ([`crate::routes::labels::route_index`]).
    pub fn observe_route(&self, route: usize, method: &Method, status: u16, elapsed: Duration) {
        let route = route.min(ROUTES - 1);
        let (method, status) = (method_index(method), status_index(status));
        let slot = (route * METHOD_LABELS.len() + method) * STATUSES + status;
        let (requests, latency) = self.children[slot].get_or_init(|| {
            let labels = [
                crate::routes::labels::ROUTE_LABELS[route],
                METHOD_LABELS[method],
                status_index_label(status),
            ];
            (
                self.requests.with_label_values(&labels),
                self.latency.with_label_values(&labels),
            )
        });
        requests.inc();
        latency.observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition: HTTP metrics, then cache, backend and pool state.
    pub async fn render(&self, cache: &CacheManager) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("encoding to a Vec cannot fail");
        let mut text = String::from_utf8(buffer).expect("the text format is UTF-8");
        if let Some(access) = crate::logging::access::installed() {
            let _ = writeln!(
                text,
                "# HELP access_log_dropped_lines_total Access log lines dropped because stderr did not keep up\n# TYPE access_log_dropped_lines_total counter\naccess_log_dropped_lines_total {}",
                access.dropped()
            );
        }
        render_cache_stats(&mut text, &cache.stats().snapshot());
        let up = u8::from(cache.ping().await.is_ok());
        let backend = cache.backend_kind().as_str();
        gauge(
            &mut text,
            "cache_backend_up",
            "Whether the cache backend answers a PING",
            &[(&format!("backend=\"{backend}\""), up as f64)],
        );
        gauge(
            &mut text,
            "cache_pending_busts",
            "Namespaces whose invalidation failed and is being retried",
            &[("", cache.pending_bust_count() as f64)],
        );
        let _ = writeln!(
            text,
            "# HELP cache_backend_server_changes_total Times Redis turned out to be another server process than the data was checked against (restart from disk, promoted replica)\n# TYPE cache_backend_server_changes_total counter\ncache_backend_server_changes_total {}",
            cache.server_changes()
        );
        if let Some((state, opened)) = cache.circuit() {
            let states = [
                (
                    "state=\"closed\"",
                    f64::from(u8::from(state == CircuitState::Closed)),
                ),
                (
                    "state=\"open\"",
                    f64::from(u8::from(state == CircuitState::Open)),
                ),
                (
                    "state=\"half_open\"",
                    f64::from(u8::from(state == CircuitState::HalfOpen)),
                ),
            ];
            gauge(
                &mut text,
                "cache_circuit_state",
                "The cache circuit breaker's state (1 = current)",
                &states,
            );
            let _ = writeln!(
                text,
                "# HELP cache_circuit_opened_total Times the circuit opened\n# TYPE cache_circuit_opened_total counter\ncache_circuit_opened_total {opened}"
            );
        }
        if let Some(l1) = cache.l1_usage() {
            gauge(
                &mut text,
                "cache_l1",
                "The in-process L1 tier: whether it is in use (subscribed), entries and bytes held",
                &[
                    ("measure=\"live\"", f64::from(u8::from(l1.live))),
                    ("measure=\"entries\"", l1.entries as f64),
                    ("measure=\"bytes\"", l1.bytes as f64),
                ],
            );
        }
        if let Some(pool) = cache.pool_state().await {
            let states = [
                ("state=\"max_open\"", pool.max_open as f64),
                ("state=\"open\"", pool.connections as f64),
                ("state=\"in_use\"", pool.in_use as f64),
                ("state=\"idle\"", pool.idle as f64),
            ];
            gauge(
                &mut text,
                "redis_pool_connections",
                "Redis pool connections by state",
                &states,
            );
        }
        text
    }
}

/// The `method` label: the standard methods by name, anything else `other`.
///
/// ```
/// use warp::http::Method;
/// use warp_redis_cache_service::metrics::method_label;
///
/// assert_eq!(method_label(&Method::GET), "GET");
/// assert_eq!(method_label(&Method::from_bytes(b"FROB").unwrap()), "other");
/// ```
pub fn method_label(method: &Method) -> &'static str {
    METHOD_LABELS[method_index(method)]
}

fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        Method::OPTIONS => 6,
        Method::CONNECT => 7,
        Method::TRACE => 8,
        _ => 9,
    }
}

/// Statuses the service answers with, by code; anything else is labelled by its class.
const KNOWN_STATUSES: [(u16, &str); 20] = [
    (200, "200"),
    (201, "201"),
    (204, "204"),
    (206, "206"),
    (304, "304"),
    (400, "400"),
    (401, "401"),
    (403, "403"),
    (404, "404"),
    (405, "405"),
    (406, "406"),
    (408, "408"),
    (411, "411"),
    (412, "412"),
    (413, "413"),
    (415, "415"),
    (422, "422"),
    (431, "431"),
    (500, "500"),
    (503, "503"),
];

/// The `status` label: a code the service emits, else its class (`2xx` ... `5xx`, `other`).
///
/// ```
/// use warp_redis_cache_service::metrics::status_label;
///
/// assert_eq!(status_label(404), "404");
/// assert_eq!(status_label(418), "4xx");
/// assert_eq!(status_label(999), "other");
/// ```
pub fn status_label(status: u16) -> &'static str {
    status_index_label(status_index(status))
}

/// The position of `status`'s label: a known status, else after them its class.
fn status_index(status: u16) -> usize {
    if let Some(known) = KNOWN_STATUSES.iter().position(|(code, _)| *code == status) {
        return known;
    }
    KNOWN_STATUSES.len()
        + match status {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            500..=599 => 4,
            _ => 5,
        }
}

fn status_index_label(index: usize) -> &'static str {
    match KNOWN_STATUSES.get(index) {
        Some((_, label)) => label,
        None => STATUS_CLASSES[index - KNOWN_STATUSES.len()],
    }
}

/// Appends the cache counters, per namespace.
fn render_cache_stats(text: &mut String, stats: &StatsSnapshot) {
    type Field = fn(&warp_redis_cache::admin::CounterSnapshot) -> u64;
    let families: [(&str, &str, Field); 10] = [
        ("cache_hits_total", "Lookups that found a live entry", |c| {
            c.hits
        }),
        (
            "cache_misses_total",
            "Lookups that found nothing usable",
            |c| c.misses,
        ),
        (
            "cache_bypasses_total",
            "Requests served without the cache",
            |c| c.bypasses,
        ),
        ("cache_errors_total", "Cache backend failures", |c| c.errors),
        (
            "cache_stale_serves_total",
            "Stale entries served (also counted as hits)",
            |c| c.stale_serves,
        ),
        ("cache_sets_total", "Entries stored", |c| c.sets),
        ("cache_deletes_total", "Keys deleted", |c| c.deletes),
        (
            "cache_corrupt_entries_total",
            "Undecodable entries dropped",
            |c| c.corrupt_entries,
        ),
        (
            "cache_stored_plain_bytes_total",
            "Response body bytes of the entries stored, before compression",
            |c| c.body_bytes,
        ),
        (
            "cache_stored_bytes_total",
            "Bytes written for the entries stored: compressed body, header and metadata",
            |c| c.stored_bytes,
        ),
    ];
    for (name, help, field) in families {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} counter");
        let mut attributed = 0;
        for (namespace, counters) in &stats.namespaces {
            attributed += field(counters);
            let _ = writeln!(
                text,
                "{name}{{namespace=\"{namespace}\"}} {}",
                field(counters)
            );
        }
        // Events of no namespace (clear all, ping) or of untracked ones, so sum() is the total.
        let other = field(&stats.total).saturating_sub(attributed);
        let _ = writeln!(text, "{name}{{namespace=\"_other\"}} {other}");
    }
}

fn gauge(text: &mut String, name: &str, help: &str, samples: &[(&str, f64)]) {
    let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(text, "{name} {value}");
        } else {
            let _ = writeln!(text, "{name}{{{labels}}} {value}");
        }
    }
}
