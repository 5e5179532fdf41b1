//! Namespace generations: invalidating a whole namespace in O(1), race-free, and checked in
//! the same round trip as the entry.
//!
//! Every namespace has a generation, a random 64-bit value under `<prefix>:#gen:<namespace>`.
//! An entry written through [`CacheManager::store`] records the generation that was current
//! when its request *started* (read by the lookup that missed). A lookup reads the entry and
//! the current generation together (`MGET`) and serves the entry only if the two match.
//! Busting sets a new random generation: every older entry is dead at once, and so is any
//! entry that a slow request stores afterwards from data it read before the bust — the race
//! that makes delete-based invalidation serve stale data until the TTL.
//!
//! Generations are random rather than counters so a lost generation key (evicted, cleared)
//! cannot bring old entries back: the replacement is another random value.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;

use super::backend::BackendError;
use super::codec::{self, Decoded, Sections};
use super::key::Namespace;
use super::manager::{CacheError, CacheManager};
use super::stats::CacheEvent;

/// A namespace generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Generation(u64);

impl Generation {
    /// A new random generation.
    pub fn fresh() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        hasher.write_u128(now.as_nanos());
        Self(hasher.finish())
    }

    /// The generation recorded in an entry.
    pub fn from_value(value: u64) -> Self {
        Self(value)
    }

    /// The raw value, as recorded in entries.
    pub fn value(self) -> u64 {
        self.0
    }

    fn to_bytes(self) -> Bytes {
        Bytes::from(self.0.to_string())
    }

    fn parse(stored: &[u8]) -> Option<Self> {
        std::str::from_utf8(stored).ok()?.parse().ok().map(Self)
    }

    /// The frame sections recording this generation.
    pub fn sections<'a>(self, meta: Option<&'a [u8]>) -> Sections<'a> {
        Sections {
            generation: Some(self.0),
            meta,
        }
    }
}

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A live entry of the current generation.
    Hit(Decoded),
    /// Nothing usable. `generation` is the current one, to store a fresh entry under;
    /// `None` when the namespace has none yet (see [`CacheManager::current_generation`]).
    Miss {
        /// The namespace's current generation, if it has one.
        generation: Option<Generation>,
    },
}

impl CacheManager {
    /// Reads the entry under `key` and the namespace's generation in one round trip.
    /// Entries of another generation, and undecodable ones, are misses.
    pub async fn lookup(&self, ns: &Namespace, key: &str) -> Result<Lookup, CacheError> {
        let full_key = self.layout().full_key(ns, key);
        let generation_key = self.layout().generation_key(ns);
        let pair = self.backend().get_pair(&full_key, &generation_key).await;
        let (stored, generation) = self.observe(ns, pair)?;
        let generation = generation.as_deref().and_then(Generation::parse);
        let Some(stored) = stored else {
            self.stats().record(Some(ns), CacheEvent::Miss);
            return Ok(Lookup::Miss { generation });
        };
        match codec::decode(&stored) {
            Ok(decoded) if generation.is_some_and(|g| decoded.generation == Some(g.0)) => {
                self.stats().record(Some(ns), CacheEvent::Hit);
                Ok(Lookup::Hit(decoded))
            }
            Ok(_) => {
                self.stats().record(Some(ns), CacheEvent::Miss);
                Ok(Lookup::Miss { generation })
            }
            Err(err) => {
                self.drop_corrupt(ns, full_key, &err).await;
                Ok(Lookup::Miss { generation })
            }
        }
    }

    /// The namespace's current generation, creating one if it has none (one round trip).
    pub async fn current_generation(&self, ns: &Namespace) -> Result<Generation, CacheError> {
        let key = self.layout().generation_key(ns);
        let result = self
            .backend()
            .set_if_absent(&key, Generation::fresh().to_bytes())
            .await;
        if let Err(BackendError::Command(_)) = result {
            // The key holds something that is not a string (WRONGTYPE): replace it.
            return self.bust_namespace(ns).await;
        }
        let current = self.observe(ns, result)?;
        match Generation::parse(&current) {
            Some(generation) => Ok(generation),
            None => self.bust_namespace(ns).await,
        }
    }

    /// Invalidates every generation-checked entry of `ns` at once; returns the new generation.
    pub async fn bust_namespace(&self, ns: &Namespace) -> Result<Generation, CacheError> {
        let key = self.layout().generation_key(ns);
        let generation = Generation::fresh();
        let result = self
            .backend()
            .set_persistent(&key, generation.to_bytes())
            .await;
        self.observe(ns, result)?;
        Ok(generation)
    }

    /// Stores `payload` with `meta` under `key`, recording `generation`; compressed above the
    /// threshold unless `precompressed` says it already is gzip (then `plain_len` is its size
    /// before compression).
    pub async fn store(
        &self,
        ns: &Namespace,
        key: &str,
        generation: Generation,
        meta: &[u8],
        payload: StorePayload<'_>,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        let sections = generation.sections(Some(meta));
        let encoded = match payload {
            StorePayload::Plain(body) => self.codec().encode_with(sections, body),
            StorePayload::Gzip {
                compressed,
                plain_len,
            } => self
                .codec()
                .encode_precompressed(sections, compressed, plain_len),
        };
        self.set_encoded(ns, key, encoded, ttl).await
    }
}

/// Namespaces whose invalidation failed (the backend was unreachable when a write succeeded).
///
/// Until a bust of such a namespace succeeds, it must not be read from the cache: the backend
/// may come back with the old entries intact (a pause, a partition). [`CacheManager::bust_or_remember`]
/// records failures; [`CacheManager::settle_pending_bust`] retries before a read.
#[derive(Debug, Default)]
pub struct PendingBusts {
    count: AtomicUsize,
    /// Each pending namespace with the epoch of its latest failure: a bust that succeeds
    /// clears the mark only if no failure was recorded after that bust started.
    namespaces: Mutex<HashMap<Namespace, u64>>,
    epoch: AtomicU64,
}

impl PendingBusts {
    fn add(&self, ns: &Namespace) {
        let epoch = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        let mut namespaces = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        if namespaces.insert(ns.clone(), epoch).is_none() {
            self.count.fetch_add(1, Ordering::Release);
        }
    }

    /// The epoch of `ns`'s pending failure, if one is pending.
    fn pending(&self, ns: &Namespace) -> Option<u64> {
        if self.count.load(Ordering::Acquire) == 0 {
            return None;
        }
        let namespaces = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        namespaces.get(ns).copied()
    }

    /// The current epoch, read before a bust starts.
    fn now(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Clears `ns` unless a failure newer than `started` was recorded.
    fn clear_if_not_newer(&self, ns: &Namespace, started: u64) {
        let mut namespaces = self.namespaces.lock().unwrap_or_else(|e| e.into_inner());
        if namespaces.get(ns).is_some_and(|failed| *failed <= started) {
            namespaces.remove(ns);
            self.count.fetch_sub(1, Ordering::Release);
        }
    }
}

impl CacheManager {
    /// Busts `ns`; when the backend fails, remembers the namespace so that it is not read
    /// until a later bust succeeds. Returns whether the bust happened now.
    pub async fn bust_or_remember(&self, ns: &Namespace) -> bool {
        let started = self.pending_busts().now();
        match self.bust_namespace(ns).await {
            Ok(_) => {
                self.pending_busts().clear_if_not_newer(ns, started);
                true
            }
            Err(err) => {
                log::warn!("invalidation of namespace {ns} failed ({err}); it is bypassed until a retry succeeds");
                self.pending_busts().add(ns);
                false
            }
        }
    }

    /// Remembers that an invalidation in `ns` failed: the namespace is bypassed until a bust
    /// of it succeeds.
    pub fn remember_failed_bust(&self, ns: &Namespace) {
        self.pending_busts().add(ns);
    }

    /// Ok when `ns` may be read: no bust of it is pending, or the pending one succeeds now.
    pub async fn settle_pending_bust(&self, ns: &Namespace) -> Result<(), CacheError> {
        if self.pending_busts().pending(ns).is_none() {
            return Ok(());
        }
        let started = self.pending_busts().now();
        self.bust_namespace(ns).await?;
        self.pending_busts().clear_if_not_newer(ns, started);
        log::info!("pending invalidation of namespace {ns} done");
        Ok(())
    }
}

/// A payload to store: plain (compressed by the codec when large) or already gzip-compressed.
#[derive(Debug, Clone, Copy)]
pub enum StorePayload<'a> {
    /// Uncompressed bytes.
    Plain(&'a [u8]),
    /// gzip bytes, never compressed again.
    Gzip {
        /// The gzip stream.
        compressed: &'a [u8],
        /// Its size once inflated.
        plain_len: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_generations_differ_and_parse_back() {
        let a = Generation::fresh();
        let b = Generation::fresh();
        assert_ne!(a, b);
        assert_eq!(Generation::parse(&a.to_bytes()), Some(a));
        assert_eq!(Generation::parse(b"garbage"), None);
    }
}
