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
//! connection is healed by dialling the seed nodes again. See the `cluster` module.
//!
//! This module holds the connection handling; `commands` has one method per backend operation
//! and `nodes` the work addressed to single cluster nodes.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use mobc::Pool;
use mobc_redis::RedisConnectionManager;
use redis::cluster::ClusterClient;
use redis::{Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, Script, ScriptInvocation};

use super::backend_types::BackendError;
use super::breaker::{Admission, CircuitBreaker, CircuitState};
use super::cluster::{self, Handle};
use super::scripts;
use crate::config::{RedisConfig, RedisMode};

mod commands;
mod lineage;
mod nodes;

pub use lineage::Lineage;

/// After a failed reconnect, calls fail at once for this long instead of each dialling again.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(200);
/// Consecutive timeouts after which the shared connection is presumed half-open and replaced.
const TIMEOUTS_BEFORE_RECONNECT: u32 = 3;
/// The longest a new connection's lineage check may take (one SCAN of the keyspace after a
/// restart); callers queued behind it are served without the cache meanwhile.
const LINEAGE_CHECK_BUDGET: Duration = Duration::from_secs(30);
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
    /// Lineage records checked on every new connection (see the `lineage` module).
    lineages: Mutex<Vec<Lineage>>,
    /// The connection that passed its lineage check, with its servers' `run_id`s.
    verified: Mutex<Option<(u64, Vec<String>)>>,
    /// How often a server turned out to be another process than the data was checked
    /// against (a restart from disk, a promoted replica).
    server_changes: AtomicU64,
    /// Whether a new connection's lineage check is running (a restart's SCAN can take long):
    /// callers skip the cache at once instead of queueing for the connection.
    checking: AtomicBool,
}

/// Sets a flag for as long as it lives (also when its future is dropped half-way).
struct FlagWhile<'a>(&'a AtomicBool);

impl<'a> FlagWhile<'a> {
    fn raise(flag: &'a AtomicBool) -> Self {
        flag.store(true, Ordering::Release);
        Self(flag)
    }
}

impl Drop for FlagWhile<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Why the Redis settings could not be turned into a client.
#[derive(Debug, thiserror::Error)]
#[error("invalid Redis URL: {0}")]
pub struct InvalidRedisUrl(String);

impl InvalidRedisUrl {
    /// The server at `shown_url` answered, but refused what the URL asks for (`reason`).
    pub(crate) fn refused(shown_url: &str, reason: &impl std::fmt::Display) -> Self {
        Self(format!("Redis at {shown_url} refused it: {reason}"))
    }
}

/// Whether `err` says the server answered but refused the connection settings (a database
/// index it does not have, wrong credentials): a mistake in `redis.url`, not an outage.
pub fn refuses_settings(err: &BackendError) -> bool {
    const REFUSALS: [&str; 5] = [
        "DB index is out of range",
        "WRONGPASS",
        "NOAUTH",
        "invalid password",
        "invalid username-password",
    ];
    let message = err.to_string();
    REFUSALS.iter().any(|refusal| message.contains(refusal))
}

impl RedisBackend {
    /// A backend for `settings.url` (the seed nodes, in cluster mode); connects lazily, on the
    /// first call.
    pub fn new(settings: &RedisConfig) -> Result<Self, InvalidRedisUrl> {
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
            lineages: Mutex::new(Vec::new()),
            verified: Mutex::new(None),
            server_changes: AtomicU64::new(0),
            checking: AtomicBool::new(false),
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

    /// Checks `lineage` on every new connection from now on, and on the next call (the current
    /// connection, if any, is replaced so the check runs before anything else goes over it).
    pub(in crate::cache) fn watch_lineage(&self, lineage: Lineage) {
        {
            let mut lineages = self.lineages.lock().unwrap_or_else(|e| e.into_inner());
            if lineages.contains(&lineage) {
                return;
            }
            lineages.push(lineage);
        }
        let current = self.current().map(|(id, _)| id);
        if let Some(id) = current {
            self.discard(id);
        }
    }

    /// How often a Redis server turned out to be another process than our data was checked
    /// against (each time, what could be stale was invalidated first).
    pub(in crate::cache) fn server_changes(&self) -> u64 {
        self.server_changes.load(Ordering::Relaxed)
    }

    /// Whether the servers behind the open connection are other processes than the ones it
    /// was checked against (a failover or a restart behind a proxy that kept the connection
    /// open). If so the connection is dropped: the next call dials afresh and checks first.
    pub(in crate::cache) async fn server_replaced(&self) -> Result<bool, BackendError> {
        let Some((id, mut handle)) = self.current() else {
            return Ok(false);
        };
        let checked = self
            .verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some((checked_id, checked_ids)) = checked.filter(|(checked, _)| *checked == id) else {
            return Ok(false);
        };
        let now = tokio::time::timeout(self.command_timeout, lineage::run_ids(&mut handle))
            .await
            .map_err(|_| BackendError::Timeout(self.command_timeout))??;
        if now == checked_ids {
            return Ok(false);
        }
        log::warn!("a Redis server was replaced under an open connection; checking it again");
        self.discard(checked_id);
        Ok(true)
    }

    /// Runs the lineage checks on a new connection, within a budget of its own (a restart
    /// with a large keyspace takes one SCAN of it).
    async fn verify_lineage(&self, handle: &mut Handle) -> Result<Vec<String>, BackendError> {
        let lineages = self
            .lineages
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let budget = LINEAGE_CHECK_BUDGET.max(self.connect_timeout);
        let check = async {
            match handle {
                Handle::Single(conn) => lineage::verify(conn, &lineages).await,
                Handle::Cluster(conn) => lineage::verify_cluster(conn, &lineages).await,
            }
        };
        match tokio::time::timeout(budget, check).await {
            Ok(Ok(verified)) => {
                if verified.changed {
                    self.server_changes.fetch_add(1, Ordering::Relaxed);
                }
                Ok(verified.run_ids)
            }
            Ok(Err(err)) => Err(err),
            Err(_) => Err(BackendError::Timeout(budget)),
        }
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
        if self.checking.load(Ordering::Acquire) {
            return Err(BackendError::Unavailable(
                "a new Redis connection is being checked; served without the cache meanwhile"
                    .into(),
            ));
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
        let (mut handle, lease) = match dialled {
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
        let checking = FlagWhile::raise(&self.checking);
        let verified = self.verify_lineage(&mut handle).await;
        drop(checking);
        let run_ids = match verified {
            Ok(run_ids) => run_ids,
            Err(err) => {
                log::warn!("a new Redis connection failed its lineage check ({err}); not used");
                if let Some(lease) = lease {
                    drop(lease.into_inner());
                }
                *last_failure = Some(Instant::now());
                return Err(err);
            }
        };
        *last_failure = None;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        *self.verified.lock().unwrap_or_else(|e| e.into_inner()) = Some((id, run_ids));
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
                // A master down or a slot unserved: a failover may follow, and the master that
                // takes over must pass the lineage check before the cache is used again.
                self.discard(id);
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
