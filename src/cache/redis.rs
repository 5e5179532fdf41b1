//! The Redis backend: a mobc pool that owns and heals connections, and one shared
//! multiplexed connection that carries the hot path.
//!
//! Why not one pooled connection per call: a checkout costs a semaphore, a lock and a spawned
//! return task, and spreading commands over many connections batches fewer of them per socket
//! write (see the README's measurements). A `MultiplexedConnection` is a cheap, cloneable handle
//! that pipelines every caller's commands over one socket, so the hot path clones it under a
//! short lock and goes. The pool's jobs are dialling (bounded by the connect timeout), replacing
//! the shared connection when it breaks, and lending separate connections to bulk work
//! (SCAN/UNLINK loops) so hits never queue behind a namespace clear.
//!
//! Every step has a budget: a dead Redis costs a request at most the connect timeout once, then
//! nothing during the reconnect back-off; a slow one costs at most the command timeout.
//!
//! In cluster mode (`redis.mode: cluster`) the shared connection is a `ClusterConnection`: also
//! cloneable and multiplexed, it keeps one connection per node and routes each command by its
//! keys' hash slot, so the hot path is the same code. There is no pool: bulk work (SCAN, UNLINK)
//! goes to each master in turn over that node's connection, in batches, and a broken cluster
//! connection is healed by dialling the seed nodes again. See [`super::cluster`].

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mobc::Pool;
use mobc_redis::RedisConnectionManager;
use redis::cluster::ClusterClient;
use redis::{Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, Script, ScriptInvocation};

use super::backend::{BackendError, KeyInfo, KeyPage, KeyTtl, NodeHealth, PoolState, TaggedRead};
use super::breaker::{Admission, CircuitBreaker, CircuitState};
use super::cluster::{self, Handle};
use super::scripts;
use crate::settings::{RedisMode, RedisSettings};

/// After a failed reconnect, calls fail at once for this long instead of each dialling again.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(200);
/// Consecutive timeouts after which the shared connection is presumed half-open and replaced.
const TIMEOUTS_BEFORE_RECONNECT: u32 = 3;
/// Keys examined per SCAN step and deleted per UNLINK.
const SCAN_BATCH: usize = 500;

static READ_TAGGED: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::READ_TAGGED));
static STORE_TAGGED: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::STORE_TAGGED));
static INVALIDATE: LazyLock<Script> = LazyLock::new(|| Script::new(scripts::INVALIDATE));
static MARK_SOFT_PURGED: LazyLock<Script> =
    LazyLock::new(|| Script::new(scripts::MARK_SOFT_PURGED));

/// The shared connection and the pool lease that owns it (none in cluster mode).
struct SharedConnection {
    id: u64,
    handle: Handle,
    lease: Option<mobc::Connection<RedisConnectionManager>>,
}

/// How connections are made: from a pool (standalone) or by a cluster client.
enum Dialer {
    Pool(Pool<RedisConnectionManager>),
    Cluster(ClusterClient),
}

/// Redis through a mobc pool, or a Redis Cluster through a cluster connection.
pub struct RedisBackend {
    dialer: Dialer,
    /// The configured server, or the cluster's seed nodes.
    seeds: Vec<redis::ConnectionInfo>,
    shared: Mutex<Option<SharedConnection>>,
    reconnect: tokio::sync::Mutex<Option<Instant>>,
    next_id: AtomicU64,
    consecutive_timeouts: AtomicU32,
    breaker: CircuitBreaker,
    connect_timeout: Duration,
    command_timeout: Duration,
}

/// Why the Redis settings could not be turned into a client.
#[derive(Debug, thiserror::Error)]
#[error("invalid Redis URL: {0}")]
pub struct InvalidRedisUrl(String);

impl RedisBackend {
    /// A backend for `settings.url` (the seed nodes, in cluster mode); connects lazily, on the
    /// first call.
    pub fn new(settings: &RedisSettings) -> Result<Self, InvalidRedisUrl> {
        let invalid = |e: RedisError| InvalidRedisUrl(e.to_string());
        let seeds = settings
            .urls()
            .into_iter()
            .map(redis::IntoConnectionInfo::into_connection_info)
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        let dialer = match settings.mode {
            RedisMode::Standalone => {
                let client = redis::Client::open(settings.url.as_str()).map_err(invalid)?;
                Dialer::Pool(
                    Pool::builder()
                        .max_open(settings.max_open)
                        .max_idle(settings.max_idle)
                        .get_timeout(Some(settings.pool_get_timeout()))
                        .max_lifetime(None)
                        .build(RedisConnectionManager::new(client)),
                )
            }
            RedisMode::Cluster => Dialer::Cluster(cluster::client(settings).map_err(invalid)?),
        };
        Ok(Self {
            dialer,
            seeds,
            shared: Mutex::new(None),
            reconnect: tokio::sync::Mutex::new(None),
            next_id: AtomicU64::new(1),
            consecutive_timeouts: AtomicU32::new(0),
            breaker: CircuitBreaker::new(
                settings.breaker_failures,
                Duration::from_millis(settings.breaker_cooldown_ms),
            ),
            connect_timeout: settings.connect_timeout(),
            command_timeout: settings.command_timeout(),
        })
    }

    /// Whether this backend talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.dialer, Dialer::Cluster(_))
    }

    /// A client for a `SUBSCRIBE` connection. Standalone: the one server. Cluster: seed node
    /// `attempt` (modulo their number), since a plain `PUBLISH` reaches every node of a
    /// cluster; a subscriber that loses its node tries the next attempt.
    pub fn subscription_client(&self, attempt: usize) -> redis::RedisResult<redis::Client> {
        redis::Client::open(self.seeds[attempt % self.seeds.len()].clone())
    }

    fn current(&self) -> Option<(u64, Handle)> {
        let shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        shared.as_ref().map(|c| (c.id, c.handle.clone()))
    }

    /// The shared connection, dialling a new one when there is none.
    async fn connection(&self) -> Result<(u64, Handle), BackendError> {
        if let Some(current) = self.current() {
            return Ok(current);
        }
        let mut last_failure = tokio::time::timeout(self.connect_timeout, self.reconnect.lock())
            .await
            .map_err(|_| BackendError::Timeout(self.connect_timeout))?;
        if let Some(current) = self.current() {
            return Ok(current);
        }
        if let Some(failed_at) = *last_failure {
            if failed_at.elapsed() < RECONNECT_BACKOFF {
                return Err(BackendError::Unavailable(
                    "Redis did not answer; retrying shortly".into(),
                ));
            }
        }
        let dialled = match &self.dialer {
            Dialer::Pool(pool) => tokio::time::timeout(self.connect_timeout, pool.get())
                .await
                .map(|dialled| {
                    dialled
                        .map(|lease| (Handle::Single((*lease).clone()), Some(lease)))
                        .map_err(|err| err.to_string())
                }),
            Dialer::Cluster(client) => {
                tokio::time::timeout(self.connect_timeout, client.get_async_connection())
                    .await
                    .map(|dialled| {
                        dialled
                            .map(|conn| (Handle::Cluster(conn), None))
                            .map_err(|err| err.to_string())
                    })
            }
        };
        let (handle, lease) = match dialled {
            Ok(Ok(dialled)) => dialled,
            Ok(Err(err)) => {
                *last_failure = Some(Instant::now());
                return Err(BackendError::Unavailable(err));
            }
            Err(_) => {
                *last_failure = Some(Instant::now());
                return Err(BackendError::Timeout(self.connect_timeout));
            }
        };
        *last_failure = None;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        *shared = Some(SharedConnection {
            id,
            handle: handle.clone(),
            lease,
        });
        log::info!(
            "connected to Redis{}",
            if self.is_cluster() { " Cluster" } else { "" }
        );
        Ok((id, handle))
    }

    /// Drops the shared connection `id` (if still current) so the next call dials afresh.
    /// The lease is taken out of the pool rather than returned to it: it is broken.
    fn discard(&self, id: u64) {
        let broken = {
            let mut shared = self.shared.lock().unwrap_or_else(|e| e.into_inner());
            match shared.as_ref() {
                Some(current) if current.id == id => shared.take(),
                _ => None,
            }
        };
        if let Some(broken) = broken {
            log::warn!("dropping the shared Redis connection; the next call reconnects");
            if let Some(lease) = broken.lease {
                drop(lease.into_inner());
            }
        }
    }

    /// Runs `call` if the circuit breaker admits it, and tells the breaker how it went.
    async fn guarded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        let admission = self.breaker.admit();
        if admission == Admission::Rejected {
            return Err(BackendError::CircuitOpen);
        }
        let result = call.await;
        let failed = matches!(
            result,
            Err(BackendError::Timeout(_) | BackendError::Unavailable(_))
        );
        self.breaker.record(admission, !failed);
        result
    }

    /// Runs `cmd` on the shared connection within the command timeout.
    async fn run<T: FromRedisValue>(&self, cmd: &Cmd) -> Result<T, BackendError> {
        self.guarded(async {
            let (id, mut conn) = self.connection().await?;
            let result =
                tokio::time::timeout(self.command_timeout, cmd.query_async(&mut conn)).await;
            self.settle(id, result)
        })
        .await
    }

    /// Runs `pipe` on the shared connection within the command timeout.
    async fn run_pipeline<T: FromRedisValue>(&self, pipe: &Pipeline) -> Result<T, BackendError> {
        self.guarded(async {
            let (id, mut conn) = self.connection().await?;
            let result =
                tokio::time::timeout(self.command_timeout, pipe.query_async(&mut conn)).await;
            self.settle(id, result)
        })
        .await
    }

    /// Runs a script (`EVALSHA`, loading it once when Redis does not know it yet) on the shared
    /// connection within the command timeout.
    async fn run_script<T: FromRedisValue>(
        &self,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, BackendError> {
        self.guarded(async {
            let (id, mut conn) = self.connection().await?;
            let result =
                tokio::time::timeout(self.command_timeout, invocation.invoke_async(&mut conn))
                    .await;
            self.settle(id, result)
        })
        .await
    }

    /// The circuit breaker's state.
    pub(super) fn circuit(&self) -> (CircuitState, u64) {
        (self.breaker.state(), self.breaker.times_opened())
    }

    /// Turns a timed call's outcome into ours, replacing the connection when it broke.
    fn settle<T>(
        &self,
        id: u64,
        result: Result<Result<T, RedisError>, tokio::time::error::Elapsed>,
    ) -> Result<T, BackendError> {
        match result {
            Ok(Ok(value)) => {
                self.consecutive_timeouts.store(0, Ordering::Relaxed);
                Ok(value)
            }
            Ok(Err(err)) if breaks_connection(&err) => {
                self.discard(id);
                Err(BackendError::Unavailable(err.to_string()))
            }
            Ok(Err(err)) if cluster_unavailable(&err) => {
                Err(BackendError::Unavailable(err.to_string()))
            }
            Ok(Err(err)) => Err(BackendError::Command(err.to_string())),
            Err(_) => {
                let timeouts = self.consecutive_timeouts.fetch_add(1, Ordering::Relaxed) + 1;
                if timeouts >= TIMEOUTS_BEFORE_RECONNECT {
                    self.consecutive_timeouts.store(0, Ordering::Relaxed);
                    self.discard(id);
                }
                Err(BackendError::Timeout(self.command_timeout))
            }
        }
    }

    /// Runs `cmd` on `conn` (a dedicated pooled connection) within the command timeout.
    async fn run_on<T: FromRedisValue>(
        &self,
        conn: &mut redis::aio::MultiplexedConnection,
        cmd: &Cmd,
    ) -> Result<T, BackendError> {
        match tokio::time::timeout(self.command_timeout, cmd.query_async(conn)).await {
            Ok(result) => result.map_err(|e| BackendError::Command(e.to_string())),
            Err(_) => Err(BackendError::Timeout(self.command_timeout)),
        }
    }

    pub(super) async fn get(&self, key: &str) -> Result<Option<Bytes>, BackendError> {
        let value: Option<Vec<u8>> = self.run(redis::cmd("GET").arg(key)).await?;
        Ok(value.map(Bytes::from))
    }

    pub(super) async fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
    ) -> Result<(), BackendError> {
        self.run(
            redis::cmd("SET")
                .arg(key)
                .arg(value.as_ref())
                .arg("PX")
                .arg(ttl_millis(ttl)),
        )
        .await
    }

    pub(super) async fn get_pair(
        &self,
        first: &str,
        second: &str,
    ) -> Result<(Option<Bytes>, Option<Bytes>), BackendError> {
        let (a, b): (Option<Vec<u8>>, Option<Vec<u8>>) =
            self.run(redis::cmd("MGET").arg(first).arg(second)).await?;
        Ok((a.map(Bytes::from), b.map(Bytes::from)))
    }

    pub(super) async fn read_tagged(
        &self,
        entry: &str,
        record: &str,
        tag_prefix: &str,
    ) -> Result<TaggedRead, BackendError> {
        let mut invocation = READ_TAGGED.key(entry);
        invocation.key(record).arg(tag_prefix);
        let mut values: Vec<Option<Vec<u8>>> = self.run_script(&invocation).await?;
        let mut values = values.drain(..).map(|value| value.map(Bytes::from));
        let entry = values.next().flatten();
        let record = values.next().flatten();
        Ok(TaggedRead {
            entry,
            record,
            tags: values.collect(),
        })
    }

    pub(super) async fn store_tagged(
        &self,
        entry: &str,
        value: Bytes,
        ttl: Duration,
        record: &str,
        tag_keys: &[String],
    ) -> Result<(), BackendError> {
        let mut invocation = STORE_TAGGED.key(entry);
        invocation
            .key(record)
            .key(tag_keys)
            .arg(value.as_ref())
            .arg(ttl_millis(ttl));
        let _: i64 = self.run_script(&invocation).await?;
        Ok(())
    }

    pub(super) async fn invalidate(
        &self,
        record: &str,
        tag_keys: &[String],
        mode: &str,
    ) -> Result<u64, BackendError> {
        let mut invocation = INVALIDATE.key(record);
        invocation.key(tag_keys).arg(mode);
        self.run_script(&invocation).await
    }

    pub(super) async fn mark_soft_purged(&self, key: &str) -> Result<bool, BackendError> {
        let marked: i64 = self.run_script(&MARK_SOFT_PURGED.key(key)).await?;
        Ok(marked == 1)
    }

    pub(super) async fn publish(&self, channel: &str, message: &str) -> Result<(), BackendError> {
        let _receivers: i64 = self
            .run(redis::cmd("PUBLISH").arg(channel).arg(message))
            .await?;
        Ok(())
    }

    pub(super) async fn set_persistent(&self, key: &str, value: Bytes) -> Result<(), BackendError> {
        self.run(redis::cmd("SET").arg(key).arg(value.as_ref()))
            .await
    }

    /// `SET key value NX` then `GET key`, pipelined: one round trip, any Redis version.
    pub(super) async fn set_if_absent(
        &self,
        key: &str,
        value: Bytes,
    ) -> Result<Bytes, BackendError> {
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(key)
            .arg(value.as_ref())
            .arg("NX")
            .ignore()
            .cmd("GET")
            .arg(key);
        let (current,): (Option<Vec<u8>>,) = self.run_pipeline(&pipe).await?;
        current
            .map(Bytes::from)
            .ok_or_else(|| BackendError::Command(format!("{key} vanished right after SET NX")))
    }

    pub(super) async fn set_nx_px(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let set: Option<String> = self
            .run(
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis),
            )
            .await?;
        Ok(set.is_some())
    }

    /// A Lua script, so the check and the delete are one atomic step: a lock that expired and
    /// was taken by someone else is never released by its previous holder.
    pub(super) async fn delete_if_equals(
        &self,
        key: &str,
        value: &str,
    ) -> Result<bool, BackendError> {
        const RELEASE: &str =
            "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
        let deleted: u64 = self
            .run(redis::cmd("EVAL").arg(RELEASE).arg(1).arg(key).arg(value))
            .await?;
        Ok(deleted == 1)
    }

    pub(super) async fn delete(&self, keys: &[String]) -> Result<u64, BackendError> {
        if keys.is_empty() {
            return Ok(0);
        }
        self.run(redis::cmd("UNLINK").arg(keys)).await
    }

    pub(super) async fn exists(&self, key: &str) -> Result<bool, BackendError> {
        let count: u64 = self.run(redis::cmd("EXISTS").arg(key)).await?;
        Ok(count > 0)
    }

    pub(super) async fn ttl(&self, key: &str) -> Result<KeyTtl, BackendError> {
        let millis: i64 = self.run(redis::cmd("PTTL").arg(key)).await?;
        Ok(match millis {
            -2 => KeyTtl::Missing,
            -1 => KeyTtl::Persistent,
            ms => KeyTtl::ExpiresIn(Duration::from_millis(ms.max(0) as u64)),
        })
    }

    /// SCAN with `pattern` and UNLINK in batches: on a dedicated pooled connection, or on
    /// every master of a cluster in turn.
    pub(super) async fn delete_matching(
        &self,
        _start: &str,
        pattern: &str,
    ) -> Result<u64, BackendError> {
        let pool = match &self.dialer {
            Dialer::Pool(pool) => pool,
            Dialer::Cluster(_) => return self.delete_matching_on_masters(pattern).await,
        };
        let lease = self
            .guarded(async {
                pool.get()
                    .await
                    .map_err(|e| BackendError::Unavailable(e.to_string()))
            })
            .await?;
        let mut conn = (*lease).clone();
        let mut cursor: u64 = 0;
        let mut deleted = 0;
        loop {
            let scan = scan_command(cursor, pattern, SCAN_BATCH);
            let (next, keys): (u64, Vec<Vec<u8>>) = self.run_on(&mut conn, &scan).await?;
            if !keys.is_empty() {
                let count: u64 = self
                    .run_on(&mut conn, redis::cmd("UNLINK").arg(&keys))
                    .await?;
                deleted += count;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    /// One SCAN step, then PTTL and STRLEN of each key found, pipelined. On a cluster the
    /// cursor walks the masters one after another (see [`cluster::encode_cursor`]).
    pub(super) async fn scan_page(
        &self,
        _start: &str,
        pattern: &str,
        cursor: u64,
        count: usize,
    ) -> Result<KeyPage, BackendError> {
        let (node, next_cursor, keys) = if self.is_cluster() {
            let masters = self.masters().await?;
            let (index, node_cursor) = cluster::decode_cursor(cursor);
            let Some(node) = masters.get(index) else {
                // The cluster has fewer masters than when the listing started: it is over.
                return Ok(KeyPage {
                    keys: Vec::new(),
                    next_cursor: 0,
                });
            };
            let scan = scan_command(node_cursor, pattern, count);
            let (next, keys): (u64, Vec<Vec<u8>>) = self.run_on_node(node, &scan).await?;
            let next_cursor = cluster::next_cursor(index, next, masters.len())?;
            (Some(node.clone()), next_cursor, keys)
        } else {
            let (next_cursor, keys): (u64, Vec<Vec<u8>>) =
                self.run(&scan_command(cursor, pattern, count)).await?;
            (None, next_cursor, keys)
        };
        if keys.is_empty() {
            return Ok(KeyPage {
                keys: Vec::new(),
                next_cursor,
            });
        }
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.cmd("PTTL").arg(key).cmd("STRLEN").arg(key);
        }
        let details: Vec<i64> = match &node {
            Some(node) => self.pipeline_on_node(node, &pipe, keys.len() * 2).await?,
            None => self.run_pipeline(&pipe).await?,
        };
        let keys = keys
            .into_iter()
            .zip(details.chunks(2))
            .filter(|(_, detail)| detail[0] != -2)
            .map(|(key, detail)| KeyInfo {
                key: String::from_utf8_lossy(&key).into_owned(),
                ttl: match detail[0] {
                    -1 => KeyTtl::Persistent,
                    ms => KeyTtl::ExpiresIn(Duration::from_millis(ms.max(0) as u64)),
                },
                size: detail[1].max(0) as u64,
            })
            .collect();
        Ok(KeyPage { keys, next_cursor })
    }

    /// The pool's occupancy; `None` in cluster mode, which has no pool.
    pub(super) async fn pool_state(&self) -> Option<PoolState> {
        let Dialer::Pool(pool) = &self.dialer else {
            return None;
        };
        let state = pool.state().await;
        Some(PoolState {
            max_open: state.max_open,
            connections: state.connections,
            in_use: state.in_use,
            idle: state.idle,
        })
    }

    /// One PING; on a cluster, one per master, and the slowest answer (any failure fails).
    pub(super) async fn ping(&self) -> Result<Duration, BackendError> {
        if self.is_cluster() {
            let nodes = self.node_health().await?;
            if let Some(down) = nodes.iter().find(|node| !node.healthy) {
                let error = down.error.as_deref().unwrap_or("no answer");
                return Err(BackendError::Unavailable(format!(
                    "master {}: {error}",
                    down.address
                )));
            }
            let slowest = nodes
                .iter()
                .filter_map(|node| node.latency_ms)
                .fold(0.0, f64::max);
            return Ok(Duration::from_secs_f64(slowest / 1000.0));
        }
        let started = Instant::now();
        let _: String = self.run(&redis::cmd("PING")).await?;
        Ok(started.elapsed())
    }

    /// Each master's PING, in address order (cluster mode; empty for one server).
    pub(super) async fn node_health(&self) -> Result<Vec<NodeHealth>, BackendError> {
        if !self.is_cluster() {
            return Ok(Vec::new());
        }
        let masters = self.masters().await?;
        let pings = masters.into_iter().map(|address| async move {
            let started = Instant::now();
            let answer: Result<String, BackendError> =
                self.run_on_node(&address, &redis::cmd("PING")).await;
            NodeHealth {
                healthy: answer.is_ok(),
                latency_ms: answer
                    .as_ref()
                    .ok()
                    .map(|_| started.elapsed().as_secs_f64() * 1000.0),
                error: answer.err().map(|err| err.to_string()),
                address,
            }
        });
        Ok(futures_util::future::join_all(pings).await)
    }

    /// The cluster's masters (`host:port`), sorted, from `CLUSTER SLOTS`.
    async fn masters(&self) -> Result<Vec<String>, BackendError> {
        let slots: redis::Value = self.run(redis::cmd("CLUSTER").arg("SLOTS")).await?;
        let masters = cluster::masters(&slots);
        if masters.is_empty() {
            return Err(BackendError::Unavailable(
                "the cluster reports no master serving slots".into(),
            ));
        }
        Ok(masters)
    }

    /// SCAN and UNLINK in batches on every master in turn, one UNLINK per hash slot.
    async fn delete_matching_on_masters(&self, pattern: &str) -> Result<u64, BackendError> {
        let mut deleted = 0;
        for node in self.masters().await? {
            let mut cursor: u64 = 0;
            loop {
                let scan = scan_command(cursor, pattern, SCAN_BATCH);
                let (next, keys): (u64, Vec<Vec<u8>>) = self.run_on_node(&node, &scan).await?;
                if !keys.is_empty() {
                    let unlinks = cluster::unlink_by_slot(&keys);
                    let count = unlinks.cmd_iter().count();
                    let counts: Vec<u64> = self.pipeline_on_node(&node, &unlinks, count).await?;
                    deleted += counts.iter().sum::<u64>();
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(deleted)
    }

    /// Runs `cmd` on the cluster node at `address` over the shared cluster connection.
    async fn run_on_node<T: FromRedisValue>(
        &self,
        address: &str,
        cmd: &Cmd,
    ) -> Result<T, BackendError> {
        let routing = cluster::routing(address)?;
        self.guarded(async {
            let (id, handle) = self.connection().await?;
            let Handle::Cluster(mut conn) = handle else {
                return Err(BackendError::Command("not a cluster connection".into()));
            };
            let call = async {
                let value = conn.route_command(cmd, routing).await?;
                redis::from_owned_redis_value(value)
            };
            let result = tokio::time::timeout(self.command_timeout, call).await;
            self.settle(id, result)
        })
        .await
    }

    /// Runs the `count` commands of `pipe` on the cluster node at `address`.
    async fn pipeline_on_node<T: FromRedisValue>(
        &self,
        address: &str,
        pipe: &Pipeline,
        count: usize,
    ) -> Result<T, BackendError> {
        let route = cluster::at_node(address)?;
        self.guarded(async {
            let (id, handle) = self.connection().await?;
            let Handle::Cluster(mut conn) = handle else {
                return Err(BackendError::Command("not a cluster connection".into()));
            };
            let call = async {
                let values = conn.route_pipeline(pipe, 0, count, route).await?;
                redis::from_owned_redis_value(redis::Value::Array(values))
            };
            let result = tokio::time::timeout(self.command_timeout, call).await;
            self.settle(id, result)
        })
        .await
    }
}

/// `SCAN cursor MATCH pattern COUNT count`.
fn scan_command(cursor: u64, pattern: &str, count: usize) -> Cmd {
    redis::cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(count)
        .clone()
}

/// A TTL as Redis milliseconds: at least 1, at most what Redis accepts.
fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, i64::MAX as u64 / 2)
}

/// Cluster errors that mean "no master serves this slot right now" (a failover or a lost
/// majority): the cache is unavailable, though the connection itself is fine.
fn cluster_unavailable(err: &RedisError) -> bool {
    matches!(
        err.kind(),
        ErrorKind::ClusterDown
            | ErrorKind::MasterDown
            | ErrorKind::TryAgain
            | ErrorKind::ClusterConnectionNotFound
    )
}

/// Errors after which the connection cannot be trusted for further commands.
fn breaks_connection(err: &RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_unrecoverable_error()
        || err.is_timeout()
}
