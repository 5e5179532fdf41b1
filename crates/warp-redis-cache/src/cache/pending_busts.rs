//! The record of busts that failed, kept until each lands: the state behind
//! [`CacheManager::bust_or_remember`](super::CacheManager) and the background retry in
//! [`super::generations`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::key::Namespace;

/// Namespaces whose invalidation failed (the backend was unreachable when a write succeeded).
///
/// Until a bust of such a namespace succeeds, it must not be read from the cache: the backend
/// may come back with the old entries intact (a pause, a partition). [`CacheManager::bust_or_remember`]
/// records failures; a background task retries them with back-off until they land (so other
/// instances, which cannot know of the failure, stop reading the old entries within
/// [`PENDING_BUST_RETRY_MAX`] of the backend's return, whether or not this instance serves
/// traffic), and [`CacheManager::settle_pending_bust`] also retries before a read here.
#[derive(Debug, Default)]
pub struct PendingBusts {
    count: AtomicUsize,
    /// Each pending namespace with the epoch of its latest failure: a bust that succeeds
    /// clears the mark only if no failure was recorded after that bust started.
    namespaces: Mutex<HashMap<Namespace, u64>>,
    epoch: AtomicU64,
    /// Whether the background retry task is running.
    pub(super) retrying: AtomicBool,
}

/// First pause of the background retry of pending busts; doubled after each round that left
/// some pending, up to [`PENDING_BUST_RETRY_MAX`].
pub const PENDING_BUST_RETRY_MIN: Duration = Duration::from_millis(50);
/// Longest pause between two rounds of retries: with the breaker's cool-down, the bound on how
/// long after the backend's return another instance may still read what a failed bust missed.
pub const PENDING_BUST_RETRY_MAX: Duration = Duration::from_secs(1);

impl PendingBusts {
    pub(super) fn add(&self, ns: &Namespace) {
        let epoch = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        let mut namespaces = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        if namespaces.insert(ns.clone(), epoch).is_none() {
            self.count.fetch_add(1, Ordering::Release);
        }
    }

    /// How many namespaces have a bust pending.
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Whether no bust is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn snapshot(&self) -> Vec<Namespace> {
        let namespaces = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        namespaces.keys().cloned().collect()
    }

    /// The epoch of `ns`'s pending failure, if one is pending.
    pub(super) fn pending(&self, ns: &Namespace) -> Option<u64> {
        if self.count.load(Ordering::Acquire) == 0 {
            return None;
        }
        let namespaces = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        namespaces.get(ns).copied()
    }

    /// The current epoch, read before a bust starts.
    pub(super) fn now(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Clears `ns` unless a failure newer than `started` was recorded.
    pub(super) fn clear_if_not_newer(&self, ns: &Namespace, started: u64) {
        let mut namespaces = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        if namespaces.get(ns).is_some_and(|failed| *failed <= started) {
            namespaces.remove(ns);
            self.count.fetch_sub(1, Ordering::Release);
        }
    }
}
