//! The admin API's answers as the operator commands read them.
//!
//! Deserialised leniently (every field has a default, unknown fields are ignored), so a
//! `cachectl` of one version can read a service of a nearby one: a newer service may add
//! fields (`pending_busts`), an older one may lack some.

use std::collections::BTreeMap;

use serde::Deserialize;

/// `GET /cache/stats`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct StatsView {
    /// The backend and its health.
    pub backend: BackendView,
    /// The L1 tier, when one is configured.
    pub l1: Option<L1View>,
    /// Invalidations not yet applied, at the top level (none of today's services put it there;
    /// read for tolerance).
    pub pending_busts: Option<serde_json::Value>,
    /// Seconds since the counters started.
    pub uptime_secs: f64,
    /// All namespaces together.
    #[serde(flatten)]
    pub total: CountersView,
    /// Per namespace.
    pub namespaces: BTreeMap<String, CountersView>,
}

impl StatsView {
    /// The number of pending busts, when the service reports it: `backend.pending_busts`, else
    /// a top-level `pending_busts` (a number, or an object with a `count`).
    pub fn pending_busts(&self) -> Option<u64> {
        if let Some(pending) = self.backend.pending_busts {
            return Some(pending);
        }
        match self.pending_busts.as_ref()? {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::Object(fields) => fields.get("count")?.as_u64(),
            _ => None,
        }
    }
}

/// The backend part of the stats.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct BackendView {
    /// `redis` or `memory`.
    pub kind: String,
    /// Whether it answered a PING.
    pub healthy: bool,
    /// The PING's round trip.
    pub latency_ms: Option<f64>,
    /// Why it did not answer.
    pub error: Option<String>,
    /// The circuit breaker (Redis only).
    pub circuit: Option<CircuitView>,
    /// Namespaces whose invalidation failed and is being retried (newer services).
    pub pending_busts: Option<u64>,
}

/// The circuit breaker.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct CircuitView {
    /// `closed`, `open` or `half_open`.
    pub state: String,
    /// Times it opened.
    pub opened_total: u64,
}

/// The L1 tier.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct L1View {
    /// Whether it is in use.
    pub live: bool,
    /// Entries held.
    pub entries: u64,
    /// Bytes held.
    pub bytes: u64,
}

/// Counters of the whole cache or of one namespace.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct CountersView {
    /// Lookups that found an entry.
    pub hits: u64,
    /// Lookups that found nothing.
    pub misses: u64,
    /// Stale entries served.
    pub stale_serves: u64,
    /// Requests served without the cache.
    pub bypasses: u64,
    /// Entries stored.
    pub sets: u64,
    /// Backend failures.
    pub errors: u64,
    /// Response body bytes stored.
    pub body_bytes: u64,
    /// Bytes written, header and metadata included.
    pub stored_bytes: u64,
}

impl CountersView {
    /// Hits plus misses.
    pub fn lookups(&self) -> u64 {
        self.hits + self.misses
    }

    /// Hits over lookups; `None` without lookups.
    pub fn hit_ratio(&self) -> Option<f64> {
        let lookups = self.lookups();
        (lookups > 0).then(|| self.hits as f64 / lookups as f64)
    }
}

/// One page of `GET /cache/keys`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct KeyPageView {
    /// The entries.
    pub keys: Vec<KeyView>,
    /// Where the next page starts; 0 at the end.
    pub next_cursor: u64,
}

/// One entry of a listing.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct KeyView {
    /// The full key.
    pub key: String,
    /// Its namespace.
    pub namespace: Option<String>,
    /// The key within the namespace.
    pub entry_key: Option<String>,
    /// Milliseconds left; `None` when it never expires.
    pub ttl_ms: Option<u64>,
    /// Bytes stored.
    pub size_bytes: u64,
}
