//! [`CacheManager`]: the one place that talks to the cache backend.
//!
//! It lays out keys, encodes and decodes values, applies default TTLs, counts statistics and
//! logs failures (throttled). Callers get typed results: a corrupt entry is a miss (counted,
//! deleted, logged), and a failing backend is a [`CacheError::Backend`] the caller can serve
//! around. Cheap to clone; share one per process.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::auto::AutoBackend;
use super::backend::Backend;
use super::backend_types::{BackendError, BackendKind, KeyTtl};
use super::codec::{self, Codec, CodecError, Decoded, Encoded};
use super::intent_sweep::IntentSweep;
use super::invalidation::{Announcer, Invalidated};
use super::key::{KeyLayout, Namespace};
use super::l1::{Held, L1};
use super::memory::MemoryBackend;
use super::pending_busts::PendingBusts;
use super::redis::RedisBackend;
use super::stats::{CacheEvent, CacheStats};
use super::throttled_log::ThrottledLog;
use crate::config::{redact_password, BackendChoice, CacheConfig, RedisConfig};

/// How often each instance asks whether the Redis servers behind its connection changed.
pub const SERVER_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// How often a backend failure may be logged.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(5);

/// What went wrong in a cache call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CacheError {
    /// The backend failed; serve without the cache.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The value could not be serialised to JSON.
    #[error("value cannot be cached: {0}")]
    Encode(String),
}

/// A [`CacheManager`] held weakly, by tasks that must end with it.
pub(super) struct WeakCacheManager(std::sync::Weak<Inner>);

impl WeakCacheManager {
    /// The manager, while some handle of it lives.
    pub(super) fn upgrade(&self) -> Option<CacheManager> {
        self.0.upgrade().map(|inner| CacheManager { inner })
    }
}

/// Reads and writes cache entries; see the module docs.
#[derive(Clone)]
pub struct CacheManager {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Arc<Backend>,
    layout: KeyLayout,
    codec: Codec,
    default_ttl: Duration,
    default_stale_windows: (Duration, Duration),
    refill_lock: bool,
    early_refresh_beta: f64,
    stats: CacheStats,
    error_log: ThrottledLog,
    corrupt_log: ThrottledLog,
    pending_busts: PendingBusts,
    intent_sweep: IntentSweep,
    write_intent_grace: Duration,
    /// Namespaces written while an `auto` backend was on its memory fallback: Redis never saw
    /// their busts, so they are busted there at the switch.
    fallback_writes: Mutex<HashSet<Namespace>>,
    /// The L1 tier and its invalidation channel, when configured (Redis backend only).
    announcer: Option<Announcer>,
}

impl CacheManager {
    /// A manager over `backend`, configured by `settings`.
    pub(crate) fn new(backend: Backend, settings: &CacheConfig) -> Self {
        let announcer = (settings.l1_max_bytes > 0 && backend.has_redis()).then(|| Announcer {
            l1: Arc::new(L1::new(
                settings.l1_max_bytes,
                Duration::from_millis(settings.l1_ttl_ms),
            )),
            channel: format!("{}:#invalidate", settings.key_prefix),
        });
        let layout = layout_for(&backend, &settings.key_prefix);
        watch_lineage(&backend, &layout);
        Self {
            inner: Arc::new(Inner {
                layout,
                backend: Arc::new(backend),
                codec: Codec::new(settings.compression_threshold_bytes, settings.gzip_level),
                default_ttl: settings.default_ttl(),
                default_stale_windows: (
                    Duration::from_secs(settings.stale_while_revalidate_secs),
                    Duration::from_secs(settings.stale_if_error_secs),
                ),
                refill_lock: settings.refill_lock,
                early_refresh_beta: settings.early_refresh_beta,
                stats: CacheStats::default(),
                error_log: ThrottledLog::new(ERROR_LOG_INTERVAL),
                corrupt_log: ThrottledLog::new(ERROR_LOG_INTERVAL),
                pending_busts: PendingBusts::default(),
                intent_sweep: IntentSweep::default(),
                write_intent_grace: Duration::from_millis(settings.write_intent_grace_ms),
                fallback_writes: Mutex::new(HashSet::new()),
                announcer,
            }),
        }
    }

    /// A handle that does not keep the manager alive (for background tasks).
    pub(super) fn downgrade(&self) -> WeakCacheManager {
        WeakCacheManager(Arc::downgrade(&self.inner))
    }

    /// The L1 tier, when one is configured. Only the manager touches it: the filters go
    /// through [`Self::local_entry`], [`Self::local_snapshot`] and [`Self::keep_local`].
    pub(super) fn l1(&self) -> Option<&Arc<L1>> {
        self.inner.announcer.as_ref().map(|a| &a.l1)
    }

    /// Whether an L1 tier is configured (`cache.l1_max_bytes > 0`).
    pub(crate) fn has_local_tier(&self) -> bool {
        self.inner.announcer.is_some()
    }

    /// The value of type `T` the L1 tier holds under `full_key`, if it is held, unexpired and
    /// no invalidation reached it since it was kept.
    pub(crate) fn local_entry<T: Send + Sync + 'static>(&self, full_key: &str) -> Option<Arc<T>> {
        self.l1()?.get(full_key)?.downcast::<T>().ok()
    }

    /// The sequence number to pass to [`Self::keep_local`], taken before reading what will be
    /// kept; `None` without an L1 tier, or while it is off (no invalidations reach it).
    pub(crate) fn local_snapshot(&self) -> Option<u64> {
        self.l1()?.snapshot()
    }

    /// Keeps `held` in the L1 tier under `full_key`, unless an invalidation since `seen`
    /// reached it (then a later read must go to the backend).
    pub(crate) fn keep_local(&self, full_key: &str, held: Held<'_>, seen: u64) {
        if let Some(l1) = self.l1() {
            l1.insert(full_key, held, seen);
        }
    }

    /// How full the in-process L1 tier is, when one is configured.
    pub fn l1_usage(&self) -> Option<L1Usage> {
        self.l1().map(|l1| {
            let (entries, bytes) = l1.usage();
            L1Usage {
                entries,
                bytes,
                live: l1.is_live(),
            }
        })
    }

    /// Applies `what` to this process's L1 tier and publishes it to the other instances; does
    /// nothing without an L1 tier. Called after the invalidation reached Redis (or failed to).
    pub(super) async fn announce(&self, what: Invalidated<'_>) {
        let Some(announcer) = &self.inner.announcer else {
            return;
        };
        let layout = &self.inner.layout;
        what.apply(&announcer.l1, |ns, key| layout.full_key(ns, key));
        let published = self
            .inner
            .backend
            .publish(&announcer.channel, &what.message())
            .await;
        if let Err(err) = published {
            // Other instances' L1 entries then live out their (short) L1 lifetime.
            self.inner
                .error_log
                .warn(|| format!("invalidation not published ({err})"));
        }
    }

    /// Starts receiving other instances' invalidations, when an L1 tier is configured.
    fn start_subscriber(&self) {
        let Some(announcer) = &self.inner.announcer else {
            return;
        };
        // The server, or a seed node of a Redis Cluster (a PUBLISH reaches every node): each
        // new attempt after a lost subscription tries the next seed.
        let backend = Arc::clone(&self.inner.backend);
        let layout = self.inner.layout.clone();
        super::invalidation::spawn_subscriber(
            move |attempt| backend.subscription_client(attempt).and_then(Result::ok),
            announcer.channel.clone(),
            Arc::downgrade(&announcer.l1),
            move |ns, key| layout.full_key(ns, key),
        );
    }

    /// A manager over the in-process memory backend.
    pub fn in_memory(settings: &CacheConfig) -> Self {
        Self::new(
            Backend::Memory(MemoryBackend::new(settings.memory_max_bytes)),
            settings,
        )
    }

    /// Chooses the backend as `cache.backend` says. With `auto`, Redis is used when it answers
    /// a PING within the connect timeout, else memory; the log says which and why.
    pub async fn connect(
        cache: &CacheConfig,
        redis: &RedisConfig,
    ) -> Result<Self, super::redis::InvalidRedisUrl> {
        match cache.backend {
            BackendChoice::Memory => {
                log::info!("cache backend: memory (cache.backend = memory)");
                Ok(Self::in_memory(cache))
            }
            BackendChoice::Redis => {
                let manager = Self::new(Backend::Redis(RedisBackend::new(redis)?), cache);
                manager.start_subscriber();
                manager.start_server_watch();
                match manager.ping().await {
                    Ok(_) => {
                        log::info!("cache backend: redis at {}", shown(redis));
                        manager.check_memory_limits().await;
                    }
                    Err(CacheError::Backend(err)) if super::redis::refuses_settings(&err) => {
                        return Err(super::redis::InvalidRedisUrl::refused(&shown(redis), &err));
                    }
                    Err(err) => log::warn!(
                        "cache backend: redis at {} (not answering yet: {err}; requests are served uncached until it does)",
                        shown(redis)
                    ),
                }
                Ok(manager)
            }
            BackendChoice::Auto => {
                let redis_backend = RedisBackend::new(redis)?;
                let answered = match redis_backend.ping().await {
                    Ok(_) => {
                        log::info!("cache backend: redis at {} (auto)", shown(redis));
                        true
                    }
                    Err(err) if super::redis::refuses_settings(&err) => {
                        log::error!(
                            "cache backend: memory (auto), because Redis at {} refused redis.url: \
                             {err}. Fix redis.url; this instance will not use Redis until restarted",
                            shown(redis)
                        );
                        return Ok(Self::in_memory(cache));
                    }
                    Err(err) => {
                        log::warn!(
                            "cache backend: memory (auto: Redis at {} did not answer: {err}; \
                             probing it every {:?}, switching to it when it answers)",
                            shown(redis),
                            super::auto::AUTO_PROBE_INTERVAL
                        );
                        false
                    }
                };
                let memory = MemoryBackend::new(cache.memory_max_bytes);
                let backend = Backend::Auto(AutoBackend::new(redis_backend, memory, answered));
                let manager = Self::new(backend, cache);
                manager.start_subscriber();
                manager.start_server_watch();
                if answered {
                    manager.check_memory_limits().await;
                } else {
                    manager.start_redis_probe();
                }
                Ok(manager)
            }
        }
    }

    /// Warns when Redis's memory is unbounded or never evicted: every distinct URL a client asks
    /// for can become an entry, so only `maxmemory` with an eviction policy bounds what clients
    /// can make Redis hold (entries also expire with their TTL).
    async fn check_memory_limits(&self) {
        let Some(redis) = self.inner.backend.configured_redis() else {
            return;
        };
        match redis.memory_limits().await {
            Ok((0, _)) => log::warn!(
                "Redis has no maxmemory: cache entries can grow it until the host runs out of \
                 memory; set maxmemory and an eviction policy such as allkeys-lru (README, Security)"
            ),
            Ok((_, policy)) if policy == "noeviction" => log::warn!(
                "Redis maxmemory-policy is noeviction: once full, every store fails instead of \
                 evicting old entries; use allkeys-lru or volatile-lru (README, Security)"
            ),
            Ok(_) => {}
            Err(err) => log::debug!("could not read Redis memory limits: {err}"),
        }
    }

    /// Asks Redis every [`AUTO_PROBE_INTERVAL`](super::auto::AUTO_PROBE_INTERVAL) whether it
    /// answers, while an `auto` backend is on its memory fallback; switches when it does.
    fn start_redis_probe(&self) {
        let manager = self.downgrade();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(super::auto::AUTO_PROBE_INTERVAL).await;
                let Some(manager) = manager.upgrade() else {
                    return;
                };
                let Backend::Auto(auto) = manager.backend() else {
                    return;
                };
                if auto.on_redis() {
                    return;
                }
                if auto.redis.ping().await.is_ok() {
                    // Busts made on the fallback never reached Redis: its entries of those
                    // namespaces may predate them. They are pending before the switch (reads
                    // bypass them) and after it (only a bust that reached Redis clears them).
                    let written: Vec<Namespace> = manager
                        .inner
                        .fallback_writes
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .drain()
                        .collect();
                    for ns in &written {
                        manager.remember_failed_bust(ns);
                    }
                    let switched = auto.switch_to_redis();
                    for ns in &written {
                        manager.remember_failed_bust(ns);
                    }
                    if switched {
                        if let Some(l1) = manager.l1() {
                            l1.mark_everything();
                        }
                        log::warn!(
                            "cache backend: Redis answers now; switched from the memory fallback \
                             to redis for good (memory entries dropped)"
                        );
                    }
                    return;
                }
            }
        });
    }

    /// Asks Redis every [`SERVER_CHECK_INTERVAL`] whether the servers behind the open
    /// connection are still the processes it was checked against; a failover or a restart
    /// that did not break the connection makes it dial and check afresh (see
    /// `cache::redis::lineage`).
    fn start_server_watch(&self) {
        let manager = self.downgrade();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(SERVER_CHECK_INTERVAL).await;
                let Some(manager) = manager.upgrade() else {
                    return;
                };
                if let Some(redis) = manager.backend().redis() {
                    // A failure here is the next request's to notice.
                    let _ = redis.server_replaced().await;
                }
            }
        });
    }

    /// How often Redis turned out to be another server process than the data was checked
    /// against (a restart from disk, a promoted replica); each time, every namespace record on
    /// it was dropped first.
    pub fn server_changes(&self) -> u64 {
        self.backend()
            .redis()
            .map_or(0, |redis| redis.server_changes())
    }

    /// Notes that a write changed `ns` while on an `auto` backend's memory fallback: its bust is
    /// repeated in Redis when the instance moves there.
    pub(crate) fn note_fallback_write(&self, ns: &Namespace) {
        if self.on_memory_fallback() {
            self.inner
                .fallback_writes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(ns.clone());
        }
    }

    /// Whether this instance is on an `auto` backend's memory fallback: its entries are not
    /// invalidated by other instances' writes (readiness says `degraded`).
    pub fn on_memory_fallback(&self) -> bool {
        self.inner.backend.on_memory_fallback()
    }

    /// A manager over the same backend under another key prefix, with its own statistics:
    /// one Redis shared by several applications or tenants, each clearing only its own keys.
    pub fn with_key_prefix(&self, prefix: &str) -> Result<Self, String> {
        super::key::validate_prefix(prefix)?;
        let inner = &self.inner;
        let layout = layout_for(&inner.backend, prefix);
        watch_lineage(&inner.backend, &layout);
        Ok(Self {
            inner: Arc::new(Inner {
                backend: Arc::clone(&inner.backend),
                layout,
                codec: inner.codec,
                default_ttl: inner.default_ttl,
                default_stale_windows: inner.default_stale_windows,
                refill_lock: inner.refill_lock,
                early_refresh_beta: inner.early_refresh_beta,
                stats: CacheStats::default(),
                error_log: ThrottledLog::new(ERROR_LOG_INTERVAL),
                corrupt_log: ThrottledLog::new(ERROR_LOG_INTERVAL),
                pending_busts: PendingBusts::default(),
                intent_sweep: IntentSweep::default(),
                write_intent_grace: inner.write_intent_grace,
                fallback_writes: Mutex::new(HashSet::new()),
                announcer: None,
            }),
        })
    }

    /// Which backend is in use.
    pub fn backend_kind(&self) -> BackendKind {
        self.inner.backend.kind()
    }

    /// The key layout (prefix) in use.
    pub fn layout(&self) -> &KeyLayout {
        &self.inner.layout
    }

    /// The codec in use.
    pub(crate) fn codec(&self) -> &Codec {
        &self.inner.codec
    }

    /// The TTL applied when none is given.
    pub fn default_ttl(&self) -> Duration {
        self.inner.default_ttl
    }

    /// Default stale-while-revalidate and stale-if-error windows.
    pub(crate) fn default_stale_windows(&self) -> (Duration, Duration) {
        self.inner.default_stale_windows
    }

    /// Whether cached routes take the cross-instance refill lock unless their policy says.
    pub(crate) fn refill_lock_default(&self) -> bool {
        self.inner.refill_lock
    }

    /// The early refresh (XFetch) factor cached routes use unless their policy says.
    pub(crate) fn early_refresh_default(&self) -> f64 {
        self.inner.early_refresh_beta
    }

    /// Hit, miss and error counters.
    pub fn stats(&self) -> &CacheStats {
        &self.inner.stats
    }

    /// The JSON value under `key` as a `T`. An entry that does not decode as `T` is a miss.
    pub async fn get<T: DeserializeOwned>(
        &self,
        ns: &Namespace,
        key: &str,
    ) -> Result<Option<T>, CacheError> {
        self.read_as(ns, key, Decoded::into_json).await
    }

    /// Stores `value` as JSON under `key`, for `ttl` or the default TTL.
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        ns: &Namespace,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        let encoded = self
            .inner
            .codec
            .encode_json(value)
            .map_err(|e| CacheError::Encode(e.to_string()))?;
        self.set_encoded(ns, key, encoded, ttl).await
    }

    /// The bytes stored under `key` by [`Self::set_bytes`] (inflated when they were stored
    /// compressed). A corrupt entry is a miss.
    pub async fn get_bytes(
        &self,
        ns: &Namespace,
        key: &str,
    ) -> Result<Option<bytes::Bytes>, CacheError> {
        self.read_as(ns, key, Decoded::into_plain).await
    }

    /// The one read path of the data API: the entry under `key` turned into a `T` by
    /// `convert`. A hit is counted only once the conversion succeeded; an entry that does not
    /// decode or convert is one counted miss, counted corrupt and deleted.
    async fn read_as<T>(
        &self,
        ns: &Namespace,
        key: &str,
        convert: impl FnOnce(Decoded) -> Result<T, CodecError>,
    ) -> Result<Option<T>, CacheError> {
        let full_key = self.inner.layout.full_key(ns, key);
        let stored = self.observe(ns, self.inner.backend.get(&full_key).await)?;
        let Some(stored) = stored else {
            self.inner.stats.record(Some(ns), CacheEvent::Miss);
            return Ok(None);
        };
        match codec::decode(&stored).and_then(convert) {
            Ok(value) => {
                self.inner.stats.record(Some(ns), CacheEvent::Hit);
                Ok(Some(value))
            }
            Err(err) => {
                self.drop_corrupt(ns, full_key, &err).await;
                Ok(None)
            }
        }
    }

    /// Stores raw bytes under `key` (compressed above the threshold), for `ttl` or the
    /// default TTL.
    pub async fn set_bytes(
        &self,
        ns: &Namespace,
        key: &str,
        payload: &[u8],
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        let encoded = self.inner.codec.encode(payload);
        self.set_encoded(ns, key, encoded, ttl).await
    }

    /// Stores an already encoded value under `key`.
    pub(crate) async fn set_encoded(
        &self,
        ns: &Namespace,
        key: &str,
        encoded: Encoded,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        let full_key = self.inner.layout.full_key(ns, key);
        let ttl = ttl.unwrap_or(self.inner.default_ttl);
        let event = CacheEvent::Set {
            plain_bytes: encoded.plain_len as u64,
            stored_bytes: encoded.bytes.len() as u64,
        };
        let result = self.inner.backend.set(&full_key, encoded.bytes, ttl).await;
        self.observe(ns, result)?;
        self.inner.stats.record(Some(ns), event);
        Ok(())
    }

    /// Deletes `key`; returns whether it existed.
    pub async fn delete(&self, ns: &Namespace, key: &str) -> Result<bool, CacheError> {
        self.delete_many(ns, &[key]).await.map(|n| n > 0)
    }

    /// Deletes several keys of one namespace in one call; returns how many existed.
    pub async fn delete_many(&self, ns: &Namespace, keys: &[&str]) -> Result<u64, CacheError> {
        let full_keys: Vec<String> = keys
            .iter()
            .map(|key| self.inner.layout.full_key(ns, key))
            .collect();
        let result = self.inner.backend.delete(&full_keys).await;
        for key in keys {
            self.announce(Invalidated::Key(ns, key)).await;
        }
        let deleted = self.observe(ns, result)?;
        self.inner
            .stats
            .record(Some(ns), CacheEvent::Delete(deleted));
        Ok(deleted)
    }

    /// Whether `key` exists.
    pub async fn exists(&self, ns: &Namespace, key: &str) -> Result<bool, CacheError> {
        let full_key = self.inner.layout.full_key(ns, key);
        self.observe(ns, self.inner.backend.exists(&full_key).await)
    }

    /// Remaining lifetime of `key`.
    pub async fn ttl(&self, ns: &Namespace, key: &str) -> Result<KeyTtl, CacheError> {
        let full_key = self.inner.layout.full_key(ns, key);
        self.observe(ns, self.inner.backend.ttl(&full_key).await)
    }

    /// Deletes every key of `ns` (SCAN + UNLINK in batches); returns how many.
    ///
    /// The namespace's generation is bumped first, so a response that an in-flight request
    /// stores after the scan has passed is dead on arrival.
    pub async fn clear_namespace(&self, ns: &Namespace) -> Result<u64, CacheError> {
        self.bust_namespace(ns).await?;
        let layout = &self.inner.layout;
        let result = self
            .inner
            .backend
            .delete_matching(&layout.namespace_start(ns), &layout.namespace_pattern(ns))
            .await;
        let deleted = self.observe(ns, result)?;
        self.inner
            .stats
            .record(Some(ns), CacheEvent::Delete(deleted));
        Ok(deleted)
    }

    /// Deletes every key under the prefix, and nothing else; returns how many.
    pub async fn clear_all(&self) -> Result<u64, CacheError> {
        let layout = &self.inner.layout;
        let result = self
            .inner
            .backend
            .delete_matching(&layout.prefix_start(), &layout.prefix_pattern())
            .await;
        self.announce(Invalidated::Everything).await;
        let deleted = self.observe_global(result)?;
        self.inner.stats.record(None, CacheEvent::Delete(deleted));
        Ok(deleted)
    }

    /// The circuit breaker's state and how often it opened (`None` for the memory backend).
    pub fn circuit(&self) -> Option<(super::breaker::CircuitState, u64)> {
        self.inner.backend.circuit()
    }

    /// The Redis pool's occupancy (`None` for the memory backend).
    pub async fn pool_state(&self) -> Option<super::backend_types::PoolState> {
        self.inner.backend.pool_state().await
    }

    /// Each Redis Cluster master's health (`None` unless the backend is a Redis Cluster).
    pub async fn node_health(&self) -> Option<Result<Vec<super::NodeHealth>, CacheError>> {
        let nodes = self.inner.backend.node_health().await?;
        Some(self.observe_global(nodes))
    }

    /// One round trip to the backend; returns its latency.
    pub async fn ping(&self) -> Result<Duration, CacheError> {
        let result = self.inner.backend.ping().await;
        self.observe_global(result)
    }

    pub(super) fn intent_sweep(&self) -> &IntentSweep {
        &self.inner.intent_sweep
    }

    /// How old an abandoned write intent must be before it is replayed.
    pub(super) fn write_intent_grace(&self) -> Duration {
        self.inner.write_intent_grace
    }

    pub(super) fn pending_busts(&self) -> &PendingBusts {
        &self.inner.pending_busts
    }

    pub(super) fn backend(&self) -> &Backend {
        &self.inner.backend
    }

    pub(super) fn observe<T>(
        &self,
        ns: &Namespace,
        result: Result<T, BackendError>,
    ) -> Result<T, CacheError> {
        result.map_err(|err| {
            // A call the open circuit skipped is not a backend failure (the breaker logs it).
            if err == BackendError::CircuitOpen {
                return CacheError::Backend(err);
            }
            self.inner.stats.record(Some(ns), CacheEvent::Error);
            self.inner
                .error_log
                .warn(|| format!("cache call failed (namespace {ns}): {err}"));
            CacheError::Backend(err)
        })
    }

    pub(super) fn observe_global<T>(
        &self,
        result: Result<T, BackendError>,
    ) -> Result<T, CacheError> {
        result.map_err(|err| {
            if err == BackendError::CircuitOpen {
                return CacheError::Backend(err);
            }
            self.inner.stats.record(None, CacheEvent::Error);
            self.inner
                .error_log
                .warn(|| format!("cache call failed: {err}"));
            CacheError::Backend(err)
        })
    }

    pub(super) async fn drop_corrupt(&self, ns: &Namespace, full_key: String, err: &CodecError) {
        self.inner.stats.record(Some(ns), CacheEvent::Miss);
        self.inner.stats.record(Some(ns), CacheEvent::Corrupt);
        self.inner
            .corrupt_log
            .warn(|| format!("dropping undecodable cache entry {full_key:?}: {err}"));
        if let Err(err) = self.inner.backend.delete(&[full_key]).await {
            self.inner.stats.record(Some(ns), CacheEvent::Error);
            log::debug!("could not delete corrupt entry: {err}");
        }
    }
}

/// The key layout `backend` needs: one hash slot per namespace on a Redis Cluster.
/// Has the Redis backend check this prefix's lineage on every new connection.
fn watch_lineage(backend: &Backend, layout: &KeyLayout) {
    if let Some(redis) = backend.configured_redis() {
        redis.watch_lineage(super::redis::Lineage {
            record_key: layout.lineage_key(),
            namespace_records: layout.namespace_records_pattern(),
        });
    }
}

fn layout_for(backend: &Backend, prefix: &str) -> KeyLayout {
    if backend.is_cluster() {
        KeyLayout::clustered(prefix)
    } else {
        KeyLayout::new(prefix)
    }
}

/// The Redis URL (each seed node's, in cluster mode) without passwords, for logs.
fn shown(redis: &RedisConfig) -> String {
    let urls: Vec<String> = redis.urls().into_iter().map(redact_password).collect();
    urls.join(",")
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::cache::codec::Encoded;

    #[tokio::test]
    async fn a_corrupt_entry_in_memory_is_a_counted_miss_and_is_deleted() {
        let cache = CacheManager::in_memory(&CacheConfig::default());
        let n = Namespace::new("items").expect("valid namespace");
        let garbage = Encoded {
            bytes: Bytes::from_static(b"not ours at all"),
            plain_len: 15,
        };
        cache
            .set_encoded(&n, "7", garbage, None)
            .await
            .expect("plant garbage");
        assert!(cache.get_bytes(&n, "7").await.expect("get").is_none());
        let stats = cache.stats().snapshot().total;
        assert_eq!((stats.corrupt_entries, stats.misses, stats.hits), (1, 1, 0));
        assert!(
            !cache.exists(&n, "7").await.expect("exists"),
            "corrupt entry kept"
        );
    }

    #[tokio::test]
    async fn bytes_that_do_not_inflate_are_one_counted_miss_never_a_hit() {
        let cache = CacheManager::in_memory(&CacheConfig::default());
        let n = Namespace::new("pages").expect("valid namespace");
        let mut encoded = cache.codec().encode("compressible ".repeat(500).as_bytes());
        assert!(encoded.bytes.len() < 6_500 / 4, "stored compressed");
        encoded.bytes.truncate(encoded.bytes.len() - 8);
        cache
            .set_encoded(&n, "page", encoded, None)
            .await
            .expect("plant a truncated gzip payload");
        assert_eq!(cache.get_bytes(&n, "page").await.expect("get"), None);
        let stats = cache.stats().snapshot().total;
        assert_eq!((stats.hits, stats.misses, stats.corrupt_entries), (0, 1, 1));
        assert!(
            !cache.exists(&n, "page").await.expect("exists"),
            "corrupt entry kept"
        );
    }
}

/// How full the in-process L1 tier is ([`CacheManager::l1_usage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L1Usage {
    /// Entries held.
    pub entries: u64,
    /// Their total weight in bytes (approximate).
    pub bytes: u64,
    /// Whether hits may be answered from it (false while invalidations cannot reach it).
    pub live: bool,
}
