//! Prometheus metrics: HTTP request counts and latency per route and status, recorded as
//! requests finish, plus cache and pool state rendered from the cache manager at scrape time.
//!
//! Each [`Metrics`] has its own registry (several applications can live in one process, as
//! they do in the tests). Route labels are templates (`/items/{id}`), never raw paths, so the
//! label set stays bounded whatever clients request.

use std::fmt::Write as _;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

use crate::cache::{CacheManager, CircuitState, StatsSnapshot};

/// Latency buckets in seconds: a cache hit is well under a millisecond.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The service's metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
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
        }
    }

    /// Records one answered request.
    pub fn observe(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        let labels = [route, method, status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.latency
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// The Prometheus text exposition: HTTP metrics, then cache, backend and pool state.
    pub async fn render(&self, cache: &CacheManager) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .expect("encoding to a Vec cannot fail");
        let mut text = String::from_utf8(buffer).expect("the text format is UTF-8");
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
        if let Some(l1) = cache.l1() {
            let (entries, bytes) = l1.usage();
            gauge(
                &mut text,
                "cache_l1",
                "The in-process L1 tier: whether it is in use (subscribed), entries and bytes held",
                &[
                    ("measure=\"live\"", f64::from(u8::from(l1.is_live()))),
                    ("measure=\"entries\"", entries as f64),
                    ("measure=\"bytes\"", bytes as f64),
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

/// Appends the cache counters, per namespace.
fn render_cache_stats(text: &mut String, stats: &StatsSnapshot) {
    type Field = fn(&crate::cache::stats::CounterSnapshot) -> u64;
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
