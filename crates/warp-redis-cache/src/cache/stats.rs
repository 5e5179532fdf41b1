//! Cache statistics: lock-free counters, in total and per namespace.
//!
//! Recording an event is a few relaxed atomic adds plus, per namespace, one read-locked map
//! lookup; the write lock is taken only the first time a namespace is seen. Hit rate and other
//! ratios are derived when a [`StatsSnapshot`] is taken, never on the hot path.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use serde::Serialize;

use super::key::Namespace;

/// Namespaces tracked one by one; events of further namespaces count only in the totals, so a
/// stream of made-up namespace names cannot grow memory without bound.
pub const MAX_TRACKED_NAMESPACES: usize = 256;

/// One thing that happened to the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheEvent {
    /// A lookup found a usable entry.
    Hit,
    /// A lookup found nothing.
    Miss,
    /// A value was stored: its size before and after compression.
    Set {
        /// Payload bytes before compression.
        plain_bytes: u64,
        /// Bytes stored (header and compression included).
        stored_bytes: u64,
    },
    /// This many keys were deleted.
    Delete(u64),
    /// The backend failed (unreachable, timeout, protocol error).
    Error,
    /// A stored value could not be decoded and was dropped.
    Corrupt,
    /// A request was served without the cache (backend failing, or the request said so).
    Bypass,
    /// A stale entry was served (stale-while-revalidate or stale-if-error); its lookup also
    /// counts as a hit.
    StaleServe,
}

#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    sets: AtomicU64,
    deletes: AtomicU64,
    errors: AtomicU64,
    corrupt: AtomicU64,
    bypasses: AtomicU64,
    stale_serves: AtomicU64,
    plain_bytes: AtomicU64,
    stored_bytes: AtomicU64,
}

impl Counters {
    fn record(&self, event: CacheEvent) {
        let add = |counter: &AtomicU64, n: u64| {
            counter.fetch_add(n, Ordering::Relaxed);
        };
        match event {
            CacheEvent::Hit => add(&self.hits, 1),
            CacheEvent::Miss => add(&self.misses, 1),
            CacheEvent::Set {
                plain_bytes,
                stored_bytes,
            } => {
                add(&self.sets, 1);
                add(&self.plain_bytes, plain_bytes);
                add(&self.stored_bytes, stored_bytes);
            }
            CacheEvent::Delete(n) => add(&self.deletes, n),
            CacheEvent::Error => add(&self.errors, 1),
            CacheEvent::Corrupt => add(&self.corrupt, 1),
            CacheEvent::Bypass => add(&self.bypasses, 1),
            CacheEvent::StaleServe => add(&self.stale_serves, 1),
        }
    }

    fn snapshot(&self) -> CounterSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let hits = get(&self.hits);
        let misses = get(&self.misses);
        let lookups = hits + misses;
        CounterSnapshot {
            hits,
            misses,
            hit_rate: if lookups == 0 {
                0.0
            } else {
                hits as f64 / lookups as f64
            },
            sets: get(&self.sets),
            deletes: get(&self.deletes),
            errors: get(&self.errors),
            corrupt_entries: get(&self.corrupt),
            bypasses: get(&self.bypasses),
            stale_serves: get(&self.stale_serves),
            body_bytes: get(&self.plain_bytes),
            stored_bytes: get(&self.stored_bytes),
        }
    }

    fn reset(&self) {
        for counter in [
            &self.hits,
            &self.misses,
            &self.sets,
            &self.deletes,
            &self.errors,
            &self.corrupt,
            &self.bypasses,
            &self.stale_serves,
            &self.plain_bytes,
            &self.stored_bytes,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

/// Counter values at one moment, with the hit rate derived.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CounterSnapshot {
    /// Lookups that found an entry.
    pub hits: u64,
    /// Lookups that found nothing.
    pub misses: u64,
    /// `hits / (hits + misses)`, 0 when there were no lookups.
    pub hit_rate: f64,
    /// Values stored.
    pub sets: u64,
    /// Keys deleted.
    pub deletes: u64,
    /// Backend failures.
    pub errors: u64,
    /// Undecodable entries dropped.
    pub corrupt_entries: u64,
    /// Requests served without the cache.
    pub bypasses: u64,
    /// Stale entries served (each also counted as a hit).
    pub stale_serves: u64,
    /// Response body bytes of the values stored, as served (before compression).
    pub body_bytes: u64,
    /// Bytes written to the backend for those values: the body after compression plus each
    /// entry's header and metadata (status, headers, tags), so small bodies can store more
    /// bytes than they have.
    pub stored_bytes: u64,
}

/// Totals, per-namespace counters and uptime at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatsSnapshot {
    /// Seconds since the statistics started (or were reset).
    pub uptime_secs: f64,
    /// All namespaces together.
    #[serde(flatten)]
    pub total: CounterSnapshot,
    /// Each namespace seen, by name.
    pub namespaces: BTreeMap<String, CounterSnapshot>,
}

/// Statistics of one cache manager.
#[derive(Debug)]
pub struct CacheStats {
    total: Counters,
    namespaces: RwLock<HashMap<Namespace, Arc<Counters>>>,
    started: RwLock<Instant>,
}

impl Default for CacheStats {
    fn default() -> Self {
        Self {
            total: Counters::default(),
            namespaces: RwLock::default(),
            started: RwLock::new(Instant::now()),
        }
    }
}

impl CacheStats {
    /// Counts `event`, in the totals and, when given, in `namespace`.
    pub fn record(&self, namespace: Option<&Namespace>, event: CacheEvent) {
        self.total.record(event);
        if let Some(counters) = namespace.and_then(|ns| self.namespace_counters(ns)) {
            counters.record(event);
        }
    }

    fn namespace_counters(&self, namespace: &Namespace) -> Option<Arc<Counters>> {
        let known = self.namespaces.read().unwrap_or_else(|e| e.into_inner());
        if let Some(counters) = known.get(namespace) {
            return Some(Arc::clone(counters));
        }
        drop(known);
        let mut known = self.namespaces.write().unwrap_or_else(|e| e.into_inner());
        if known.len() >= MAX_TRACKED_NAMESPACES && !known.contains_key(namespace) {
            return None;
        }
        Some(Arc::clone(known.entry(namespace.clone()).or_default()))
    }

    /// The current values.
    pub fn snapshot(&self) -> StatsSnapshot {
        let started = *self.started.read().unwrap_or_else(|e| e.into_inner());
        let namespaces = self
            .namespaces
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(ns, counters)| (ns.to_string(), counters.snapshot()))
            .collect();
        StatsSnapshot {
            uptime_secs: started.elapsed().as_secs_f64(),
            total: self.total.snapshot(),
            namespaces,
        }
    }

    /// Sets every counter to zero and restarts the uptime clock.
    pub fn reset(&self) {
        self.total.reset();
        self.namespaces
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        *self.started.write().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_count_in_total_and_namespace() {
        let stats = CacheStats::default();
        let items = Namespace::new("items").expect("valid");
        stats.record(Some(&items), CacheEvent::Hit);
        stats.record(Some(&items), CacheEvent::Hit);
        stats.record(Some(&items), CacheEvent::Miss);
        stats.record(None, CacheEvent::Error);
        stats.record(Some(&items), CacheEvent::StaleServe);
        stats.record(
            Some(&items),
            CacheEvent::Set {
                plain_bytes: 100,
                stored_bytes: 40,
            },
        );
        let snap = stats.snapshot();
        assert_eq!(snap.total.hits, 2);
        assert_eq!(snap.total.errors, 1);
        assert!((snap.total.hit_rate - 2.0 / 3.0).abs() < 1e-9);
        let ns = &snap.namespaces["items"];
        assert_eq!(
            (ns.hits, ns.misses, ns.errors, ns.stale_serves),
            (2, 1, 0, 1)
        );
        assert_eq!(ns.stored_bytes, 40);
        stats.reset();
        assert_eq!(stats.snapshot().total.hits, 0);
        assert!(stats.snapshot().namespaces.is_empty());
    }

    #[test]
    fn tracked_namespaces_are_bounded() {
        let stats = CacheStats::default();
        for i in 0..MAX_TRACKED_NAMESPACES + 10 {
            let ns = Namespace::new(&format!("ns{i}")).expect("valid");
            stats.record(Some(&ns), CacheEvent::Miss);
        }
        let snap = stats.snapshot();
        assert_eq!(snap.namespaces.len(), MAX_TRACKED_NAMESPACES);
        assert_eq!(snap.total.misses, (MAX_TRACKED_NAMESPACES + 10) as u64);
    }
}
