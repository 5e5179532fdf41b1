//! The values every backend shares with the manager: errors, key listings, lifetimes, pool and
//! node health. Plain data, no behaviour: the backends ([`super::memory`], [`super::redis`]) and
//! the dispatch over them ([`super::backend`]) import it, it imports none of them.

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

/// Why a backend call failed. Always transient from the caller's point of view: the request
/// is served without the cache.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// No connection could be had (refused, DNS, reconnect back-off).
    #[error("cache backend unavailable: {0}")]
    Unavailable(String),
    /// The call did not finish within its budget.
    #[error("cache backend timed out after {0:?}")]
    Timeout(Duration),
    /// The backend answered with an error.
    #[error("cache backend error: {0}")]
    Command(String),
    /// The circuit breaker is open: the backend was not called.
    #[error("cache circuit open: the backend is skipped for a cool-down")]
    CircuitOpen,
}

/// Remaining lifetime of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "ms")]
pub enum KeyTtl {
    /// No such key.
    Missing,
    /// The key never expires.
    Persistent,
    /// The key expires after this long.
    ExpiresIn(#[serde(serialize_with = "as_millis")] Duration),
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u128(d.as_millis())
}

/// A key with its remaining lifetime and stored size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// The full key.
    pub key: String,
    /// Remaining lifetime.
    pub ttl: KeyTtl,
    /// Bytes stored under it.
    pub size: u64,
}

/// One page of a key listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyPage {
    /// The keys on this page.
    pub keys: Vec<KeyInfo>,
    /// Where the next page starts; 0 when the listing is complete.
    pub next_cursor: u64,
}

/// What a tagged read found: the entry, its namespace record and the records of the entry's
/// tags, in the order of the entry's tag names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaggedRead {
    /// The entry.
    pub entry: Option<Bytes>,
    /// The namespace record.
    pub record: Option<Bytes>,
    /// One value per tag name of the entry.
    pub tags: Vec<Option<Bytes>>,
}

/// Connection pool occupancy (Redis backend only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PoolState {
    /// Most connections the pool opens.
    pub max_open: u64,
    /// Connections open (in use and idle).
    pub connections: u64,
    /// Connections checked out (the shared one included).
    pub in_use: u64,
    /// Idle connections.
    pub idle: u64,
}

/// One Redis Cluster master's answer to a PING.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NodeHealth {
    /// `host:port` as the cluster reports it.
    pub address: String,
    /// Whether it answered.
    pub healthy: bool,
    /// PING round trip, when it answered.
    pub latency_ms: Option<f64>,
    /// Why it did not answer.
    pub error: Option<String>,
}

/// Which backend is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Redis through the connection pool.
    Redis,
    /// The in-process memory backend.
    Memory,
}

impl BackendKind {
    /// `"redis"` or `"memory"`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Redis => "redis",
            BackendKind::Memory => "memory",
        }
    }
}
