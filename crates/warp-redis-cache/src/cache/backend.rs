//! The storage a [`CacheManager`](super::CacheManager) talks to: Redis or process memory.
//!
//! Backends move opaque bytes under full keys; they know nothing of namespaces, codecs or
//! statistics. An enum rather than a trait object: there are exactly two, and a hit should not
//! pay for dynamic dispatch or a boxed future.

use std::time::Duration;

use super::auto::AutoBackend;
use super::backend_types::{
    BackendError, BackendKind, KeyPage, KeyTtl, NodeHealth, PoolState, TaggedRead,
};
use super::memory::MemoryBackend;
use super::redis::RedisBackend;
use bytes::Bytes;

/// A cache backend.
// One per process, behind an Arc: the size difference costs nothing, a Box would cost an
// indirection on every call.
#[allow(clippy::large_enum_variant)]
pub enum Backend {
    /// Redis.
    Redis(RedisBackend),
    /// Process memory.
    Memory(MemoryBackend),
    /// Redis, with process memory until Redis first answers (`cache.backend: auto`).
    Auto(AutoBackend),
}

macro_rules! dispatch {
    ($self:ident, $backend:ident => $call:expr) => {
        match $self {
            Backend::Redis($backend) => $call,
            Backend::Memory($backend) => $call,
            Backend::Auto(auto) if auto.on_redis() => {
                let $backend = &auto.redis;
                $call
            }
            Backend::Auto(auto) => {
                let $backend = &auto.memory;
                $call
            }
        }
    };
}

impl Backend {
    /// Which kind this is.
    pub fn kind(&self) -> BackendKind {
        match self {
            Backend::Redis(_) => BackendKind::Redis,
            Backend::Auto(auto) if auto.on_redis() => BackendKind::Redis,
            Backend::Memory(_) | Backend::Auto(_) => BackendKind::Memory,
        }
    }

    /// Redis, when calls go to it now (a Redis backend, or an `auto` one that switched).
    pub(super) fn redis(&self) -> Option<&RedisBackend> {
        match self {
            Backend::Redis(redis) => Some(redis),
            Backend::Auto(auto) if auto.on_redis() => Some(&auto.redis),
            _ => None,
        }
    }

    /// Redis, whether or not calls go to it yet (for the L1 tier's subscriber and the key
    /// layout, which must not change at an `auto` backend's switch).
    pub(super) fn configured_redis(&self) -> Option<&RedisBackend> {
        match self {
            Backend::Redis(redis) => Some(redis),
            Backend::Auto(auto) => Some(&auto.redis),
            Backend::Memory(_) => None,
        }
    }

    /// Whether Redis is configured (a Redis backend, or an `auto` one on either side).
    pub fn has_redis(&self) -> bool {
        self.configured_redis().is_some()
    }

    /// Whether this is an `auto` backend still on its memory fallback.
    pub fn on_memory_fallback(&self) -> bool {
        matches!(self, Backend::Auto(auto) if !auto.on_redis())
    }

    /// The value under `key`, if any.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, BackendError> {
        dispatch!(self, b => b.get(key).await)
    }

    /// Stores `value` under `key` for `ttl`.
    pub async fn set(&self, key: &str, value: Bytes, ttl: Duration) -> Result<(), BackendError> {
        dispatch!(self, b => b.set(key, value, ttl).await)
    }

    /// The values under two keys, in one round trip.
    pub async fn get_pair(
        &self,
        first: &str,
        second: &str,
    ) -> Result<(Option<Bytes>, Option<Bytes>), BackendError> {
        dispatch!(self, b => b.get_pair(first, second).await)
    }

    /// Reads an entry, its namespace record and its tags' records (under `tag_prefix`), in one
    /// round trip (see [`super::scripts::READ_TAGGED`]).
    pub async fn read_tagged(
        &self,
        entry: &str,
        record: &str,
        tag_prefix: &str,
    ) -> Result<TaggedRead, BackendError> {
        dispatch!(self, b => b.read_tagged(entry, record, tag_prefix).await)
    }

    /// Stores a tagged entry for `ttl` and keeps its namespace record, tag log and tag records
    /// alive at least as long (see [`super::scripts::STORE_TAGGED`]).
    pub async fn store_tagged(
        &self,
        entry: &str,
        value: Bytes,
        ttl: Duration,
        record: &str,
        tag_log: &str,
        tag_keys: &[String],
    ) -> Result<(), BackendError> {
        dispatch!(self, b => b.store_tagged(entry, value, ttl, record, tag_log, tag_keys).await)
    }

    /// Bumps the namespace clock of `record` and invalidates `tag_keys` (`mode` `hard` or
    /// `soft`), or soft-purges the namespace (`namespace-soft`); returns the new clock, 0 when
    /// the namespace has no record; lists the tags in the namespace's `tag_log` (see
    /// [`super::scripts::INVALIDATE`]).
    pub async fn invalidate(
        &self,
        record: &str,
        tag_log: &str,
        tag_keys: &[String],
        mode: &str,
    ) -> Result<u64, BackendError> {
        dispatch!(self, b => b.invalidate(record, tag_log, tag_keys, mode).await)
    }

    /// Marks the entry under `key` soft-purged in place; returns whether it exists.
    pub async fn mark_soft_purged(&self, key: &str) -> Result<bool, BackendError> {
        dispatch!(self, b => b.mark_soft_purged(key).await)
    }

    /// Publishes `message` on `channel` (Redis pub/sub; a plain PUBLISH reaches every node of a
    /// Redis Cluster; nothing to do for process memory).
    pub async fn publish(&self, channel: &str, message: &str) -> Result<(), BackendError> {
        match self.redis() {
            Some(redis) => redis.publish(channel, message).await,
            None => Ok(()),
        }
    }

    /// Replaces the value of `key`, keeping its expiry, only if it exists: nothing is created.
    pub async fn replace_existing(&self, key: &str, value: Bytes) -> Result<(), BackendError> {
        dispatch!(self, b => b.replace_existing(key, value).await)
    }

    /// Stores `value` under `key` for `ttl` unless the key exists; returns the value the key
    /// holds afterwards, in one round trip.
    pub async fn set_if_absent(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
    ) -> Result<Bytes, BackendError> {
        dispatch!(self, b => b.set_if_absent(key, value, ttl).await)
    }

    /// Sets `key` to `value` for `ttl` only if it does not exist; returns whether it was set.
    pub async fn set_nx_px(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        dispatch!(self, b => b.set_nx_px(key, value, ttl).await)
    }

    /// Deletes `key` only if it holds `value` (atomically); returns whether it was deleted.
    pub async fn delete_if_equals(&self, key: &str, value: &str) -> Result<bool, BackendError> {
        dispatch!(self, b => b.delete_if_equals(key, value).await)
    }

    /// Deletes `keys`; returns how many existed.
    pub async fn delete(&self, keys: &[String]) -> Result<u64, BackendError> {
        dispatch!(self, b => b.delete(keys).await)
    }

    /// Whether `key` exists.
    pub async fn exists(&self, key: &str) -> Result<bool, BackendError> {
        dispatch!(self, b => b.exists(key).await)
    }

    /// Remaining lifetime of `key`.
    pub async fn ttl(&self, key: &str) -> Result<KeyTtl, BackendError> {
        dispatch!(self, b => b.ttl(key).await)
    }

    /// Deletes every key that starts with `start` (the SCAN pattern `pattern` in Redis);
    /// returns how many were deleted.
    pub async fn delete_matching(&self, start: &str, pattern: &str) -> Result<u64, BackendError> {
        dispatch!(self, b => b.delete_matching(start, pattern).await)
    }

    /// One page of keys matching `pattern` (Redis SCAN semantics: a cursor of 0 starts and ends
    /// the iteration), with their TTL and stored size.
    pub async fn scan_page(
        &self,
        start: &str,
        pattern: &str,
        cursor: u64,
        count: usize,
    ) -> Result<KeyPage, BackendError> {
        dispatch!(self, b => b.scan_page(start, pattern, cursor, count).await)
    }

    /// The circuit breaker's state and how often it opened, for backends that have one.
    pub fn circuit(&self) -> Option<(super::breaker::CircuitState, u64)> {
        self.redis().map(RedisBackend::circuit)
    }

    /// The connection pool's occupancy, for backends that have one (not a Redis Cluster).
    pub async fn pool_state(&self) -> Option<PoolState> {
        match self.redis() {
            Some(redis) => redis.pool_state().await,
            None => None,
        }
    }

    /// One round trip to the backend (to every master of a Redis Cluster); returns how long it
    /// took (the slowest).
    pub async fn ping(&self) -> Result<Duration, BackendError> {
        dispatch!(self, b => b.ping().await)
    }

    /// Whether keys must be laid out for a Redis Cluster (one hash slot per namespace).
    pub fn is_cluster(&self) -> bool {
        self.configured_redis()
            .is_some_and(RedisBackend::is_cluster)
    }

    /// Each Redis Cluster master's PING; `None` for other backends.
    pub async fn node_health(&self) -> Option<Result<Vec<NodeHealth>, BackendError>> {
        match self.redis() {
            Some(redis) if redis.is_cluster() => Some(redis.node_health().await),
            _ => None,
        }
    }

    /// A client for a `SUBSCRIBE` connection to one node (see
    /// [`RedisBackend::subscription_client`]); `None` for the memory backend.
    pub fn subscription_client(&self, attempt: usize) -> Option<redis::RedisResult<redis::Client>> {
        self.configured_redis()
            .map(|redis| redis.subscription_client(attempt))
    }
}
