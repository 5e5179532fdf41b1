//! The backend's commands: one method per [`super::super::Backend`] operation, each a single
//! round trip on the shared connection (or, for bulk work, on connections of its own).

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::super::backend_types::{BackendError, KeyInfo, KeyPage, KeyTtl, PoolState, TaggedRead};
use super::super::cluster;
use super::super::stamp::TAG_LOG_MAX_BYTES;
use super::{
    scan_command, ttl_millis, Dialer, RedisBackend, INVALIDATE, MARK_SOFT_PURGED, READ_TAGGED,
    SCAN_BATCH, STORE_TAGGED,
};

impl RedisBackend {
    /// `maxmemory` and `maxmemory-policy`, from `INFO memory` (which managed Redis services
    /// answer even where `CONFIG` is disabled). In a cluster, the node that answers.
    pub(in crate::cache) async fn memory_limits(&self) -> Result<(u64, String), BackendError> {
        let info: String = self.run(redis::cmd("INFO").arg("memory")).await?;
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .map(|value| value.trim().to_string())
        };
        let maxmemory = field("maxmemory").and_then(|v| v.parse().ok()).unwrap_or(0);
        let policy = field("maxmemory_policy").unwrap_or_else(|| "unknown".into());
        Ok((maxmemory, policy))
    }

    /// `HSET key field value` and `PEXPIRE key ttl`, in one round trip.
    pub(in crate::cache) async fn hash_set(
        &self,
        key: &str,
        field: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<(), BackendError> {
        let mut pipe = redis::pipe();
        pipe.cmd("HSET").arg(key).arg(field).arg(value).ignore();
        pipe.cmd("PEXPIRE").arg(key).arg(ttl_millis(ttl)).ignore();
        self.run_pipeline(&pipe).await
    }

    /// An instance's heartbeat: `PSETEX key ttl 1`. A command of its own (rather than `SET
    /// .. PX`), so heartbeats stand apart from cache writes in `INFO commandstats` and MONITOR.
    pub(in crate::cache) async fn heartbeat(
        &self,
        key: &str,
        ttl: Duration,
    ) -> Result<(), BackendError> {
        self.run(redis::cmd("PSETEX").arg(key).arg(ttl_millis(ttl)).arg("1"))
            .await
    }

    /// `HDEL key fields...`; returns how many existed.
    pub(in crate::cache) async fn hash_delete(
        &self,
        key: &str,
        fields: &[String],
    ) -> Result<u64, BackendError> {
        self.run(redis::cmd("HDEL").arg(key).arg(fields)).await
    }

    /// `HGETALL key`, as field-value pairs.
    pub(in crate::cache) async fn hash_entries(
        &self,
        key: &str,
    ) -> Result<Vec<(String, String)>, BackendError> {
        self.run(redis::cmd("HGETALL").arg(key)).await
    }

    pub(in crate::cache) async fn get(&self, key: &str) -> Result<Option<Bytes>, BackendError> {
        let value: Option<Vec<u8>> = self.run(redis::cmd("GET").arg(key)).await?;
        Ok(value.map(Bytes::from))
    }

    pub(in crate::cache) async fn set(
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

    pub(in crate::cache) async fn get_pair(
        &self,
        first: &str,
        second: &str,
    ) -> Result<(Option<Bytes>, Option<Bytes>), BackendError> {
        let (a, b): (Option<Vec<u8>>, Option<Vec<u8>>) =
            self.run(redis::cmd("MGET").arg(first).arg(second)).await?;
        Ok((a.map(Bytes::from), b.map(Bytes::from)))
    }

    pub(in crate::cache) async fn read_tagged(
        &self,
        entry: &str,
        record: &str,
        tag_prefix: &str,
    ) -> Result<TaggedRead, BackendError> {
        let mut invocation = READ_TAGGED.key(entry);
        invocation.key(record).arg(tag_prefix);
        let framed: Vec<u8> = self.run_script(&invocation).await?;
        let values = super::super::scripts::frames(&Bytes::from(framed))
            .ok_or_else(|| BackendError::Command("damaged answer from the read script".into()))?;
        let mut values = values.into_iter();
        let entry = values.next().flatten();
        let record = values.next().flatten();
        Ok(TaggedRead {
            entry,
            record,
            tags: values.collect(),
        })
    }

    pub(in crate::cache) async fn store_tagged(
        &self,
        entry: &str,
        value: Bytes,
        ttl: Duration,
        record: &str,
        tag_log: &str,
        tag_keys: &[String],
    ) -> Result<(), BackendError> {
        let mut invocation = STORE_TAGGED.key(entry);
        invocation
            .key(record)
            .key(tag_log)
            .key(tag_keys)
            .arg(value.as_ref())
            .arg(ttl_millis(ttl));
        let _: i64 = self.run_script(&invocation).await?;
        Ok(())
    }

    pub(in crate::cache) async fn invalidate(
        &self,
        record: &str,
        tag_log: &str,
        tag_keys: &[String],
        mode: &str,
    ) -> Result<u64, BackendError> {
        let mut invocation = INVALIDATE.key(record);
        invocation
            .key(tag_log)
            .key(tag_keys)
            .arg(mode)
            .arg(TAG_LOG_MAX_BYTES);
        self.run_script(&invocation).await
    }

    pub(in crate::cache) async fn mark_soft_purged(&self, key: &str) -> Result<bool, BackendError> {
        let marked: i64 = self.run_script(&MARK_SOFT_PURGED.key(key)).await?;
        Ok(marked == 1)
    }

    pub(in crate::cache) async fn publish(
        &self,
        channel: &str,
        message: &str,
    ) -> Result<(), BackendError> {
        let _receivers: i64 = self
            .run(redis::cmd("PUBLISH").arg(channel).arg(message))
            .await?;
        Ok(())
    }

    /// `SET key value XX KEEPTTL`.
    pub(in crate::cache) async fn replace_existing(
        &self,
        key: &str,
        value: Bytes,
    ) -> Result<(), BackendError> {
        let _replaced: Option<String> = self
            .run(
                redis::cmd("SET")
                    .arg(key)
                    .arg(value.as_ref())
                    .arg("XX")
                    .arg("KEEPTTL"),
            )
            .await?;
        Ok(())
    }

    /// `SET key value NX PX ttl` then `GET key`, pipelined: one round trip.
    pub(in crate::cache) async fn set_if_absent(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
    ) -> Result<Bytes, BackendError> {
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(key)
            .arg(value.as_ref())
            .arg("NX")
            .arg("PX")
            .arg(ttl_millis(ttl))
            .ignore()
            .cmd("GET")
            .arg(key);
        let (current,): (Option<Vec<u8>>,) = self.run_pipeline(&pipe).await?;
        current
            .map(Bytes::from)
            .ok_or_else(|| BackendError::Command(format!("{key} vanished right after SET NX")))
    }

    pub(in crate::cache) async fn set_nx_px(
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
    pub(in crate::cache) async fn delete_if_equals(
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

    pub(in crate::cache) async fn delete(&self, keys: &[String]) -> Result<u64, BackendError> {
        if keys.is_empty() {
            return Ok(0);
        }
        self.run(redis::cmd("UNLINK").arg(keys)).await
    }

    pub(in crate::cache) async fn exists(&self, key: &str) -> Result<bool, BackendError> {
        let count: u64 = self.run(redis::cmd("EXISTS").arg(key)).await?;
        Ok(count > 0)
    }

    pub(in crate::cache) async fn ttl(&self, key: &str) -> Result<KeyTtl, BackendError> {
        let millis: i64 = self.run(redis::cmd("PTTL").arg(key)).await?;
        Ok(match millis {
            -2 => KeyTtl::Missing,
            -1 => KeyTtl::Persistent,
            ms => KeyTtl::ExpiresIn(Duration::from_millis(ms.max(0) as u64)),
        })
    }

    /// SCAN with `pattern` and UNLINK in batches: on a dedicated pooled connection, or on
    /// every master of a cluster in turn.
    pub(in crate::cache) async fn delete_matching(
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
    pub(in crate::cache) async fn scan_page(
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
    pub(in crate::cache) async fn pool_state(&self) -> Option<PoolState> {
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
    pub(in crate::cache) async fn ping(&self) -> Result<Duration, BackendError> {
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
}
