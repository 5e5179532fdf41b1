//! Noticing that Redis may have lost writes: a server that restarted from its RDB or AOF file,
//! or a replica promoted in its master's place, holds data from before some of our busts, and
//! its entries and namespace records agree with each other, so nothing in them looks stale.
//!
//! What does change is the server process: its `run_id`. Each key prefix keeps a lineage
//! record, `<prefix>#lineage`, holding the `run_id` of the server process that has been
//! verified to hold only data written since a check. Every new connection (and Redis restarts
//! always break the old ones) reads the server's `run_id` and each lineage record before any
//! command of a request goes over it. A record that names another process, or none, means the
//! data may predate a bust: every namespace record under that prefix is deleted (SCAN + UNLINK,
//! never KEYS), which makes every entry dead at once (generations are random, so the records
//! created afterwards can never revive one), and then the record names this process.
//!
//! In a Redis Cluster the same holds per master: each master has its own lineage record (the
//! prefix's record key with a hash tag that puts it in one of the master's slots), and a
//! replica promoted in place of a master that died has another `run_id` than the record it
//! replicated, so the namespace records on it are dropped. The cluster connection is dialled
//! afresh after a topology error (a master down, a slot unserved), so a failover that requests
//! noticed is checked before the cache is used again.
//!
//! Costs: one `INFO server` and one `GET` per prefix (per master) per new connection; after a
//! restart, one SCAN over the keyspace, during which requests are served without the cache (the
//! connection is not in use until the check is done).

use redis::aio::ConnectionLike;
use redis::cluster_async::ClusterConnection;

use super::super::cluster::{self, Handle};
use super::BackendError;

/// Keys examined per SCAN step while dropping namespace records.
const SCAN_COUNT: usize = 1000;

/// One key prefix's lineage record and the pattern of its namespace records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage {
    /// `<prefix>#lineage`.
    pub record_key: String,
    /// The SCAN pattern of every namespace record under the prefix.
    pub namespace_records: String,
}

/// The `run_id` in an `INFO server` answer.
fn run_id(info: &str) -> Option<&str> {
    info.lines()
        .find_map(|line| line.strip_prefix("run_id:"))
        .map(str::trim)
}

/// What a lineage check found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Verified {
    /// The `run_id` of each server (each master of a cluster), sorted.
    pub run_ids: Vec<String>,
    /// Whether a lineage record named another server process: data may have been lost.
    pub changed: bool,
}

/// The `run_id`s of the servers a verified connection talks to, sorted: compared later to
/// notice a server replaced under an open connection.
pub(super) async fn run_ids(conn: &mut Handle) -> Result<Vec<String>, BackendError> {
    let mut ids = Vec::new();
    match conn {
        Handle::Single(conn) => {
            let info: String = redis::cmd("INFO")
                .arg("server")
                .query_async(conn)
                .await
                .map_err(|e| BackendError::Unavailable(e.to_string()))?;
            ids.extend(run_id(&info).map(str::to_string));
        }
        Handle::Cluster(conn) => {
            let slots: redis::Value = redis::cmd("CLUSTER")
                .arg("SLOTS")
                .query_async(conn)
                .await
                .map_err(|e| BackendError::Unavailable(e.to_string()))?;
            for address in cluster::masters(&slots) {
                let mut node = NodeOf {
                    conn: &mut *conn,
                    address,
                };
                let info: String = node.query(redis::cmd("INFO").arg("server")).await?;
                ids.extend(run_id(&info).map(str::to_string));
            }
        }
    }
    ids.sort();
    Ok(ids)
}

/// Checks every lineage against every master of the cluster `conn` talks to, invalidating
/// what could be stale on each.
pub(super) async fn verify_cluster(
    conn: &mut ClusterConnection,
    lineages: &[Lineage],
) -> Result<Verified, BackendError> {
    let fail = |e: redis::RedisError| BackendError::Unavailable(format!("lineage check: {e}"));
    let slots: redis::Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(conn)
        .await
        .map_err(fail)?;
    let mut masters = cluster::master_slots(&slots);
    masters.sort();
    masters.dedup_by(|a, b| a.0 == b.0);
    if masters.is_empty() {
        return Err(BackendError::Unavailable("no master serves slots".into()));
    }
    let mut verified = Verified::default();
    for (address, slot) in masters {
        let mut node = NodeOf {
            conn: &mut *conn,
            address: address.clone(),
        };
        let info: String = node.query(redis::cmd("INFO").arg("server")).await?;
        let Some(run_id) = run_id(&info).map(str::to_string) else {
            return Err(BackendError::Command(format!(
                "{address}: INFO has no run_id"
            )));
        };
        verified.run_ids.push(run_id.clone());
        let tag = cluster::tag_for_slot(slot);
        for lineage in lineages {
            let record_key = format!("{}{{{tag}}}", lineage.record_key);
            let recorded: Option<String> = node.query(redis::cmd("GET").arg(&record_key)).await?;
            if recorded.as_deref() == Some(run_id.as_str()) {
                continue;
            }
            let mut cursor = 0u64;
            let mut count = 0;
            loop {
                let scan = super::scan_command(cursor, &lineage.namespace_records, SCAN_COUNT);
                let (next, keys): (u64, Vec<String>) = node.query(&scan).await?;
                for key in keys {
                    let removed: u64 = node.query(redis::cmd("UNLINK").arg(&key)).await?;
                    count += removed;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
            let _: () = node
                .query(redis::cmd("SET").arg(&record_key).arg(&run_id))
                .await?;
            if count > 0 || recorded.is_some() {
                log::warn!(
                    "Redis Cluster master {address} is another server process than the one our \
                     data was checked against (run_id {run_id}, was {}): a replica promoted or a \
                     restart from disk may have missed busts; invalidated {count} namespace(s)",
                    recorded.as_deref().unwrap_or("unknown"),
                );
            }
            verified.changed |= recorded.is_some();
        }
    }
    verified.run_ids.sort();
    Ok(verified)
}

/// Commands to one cluster node, by address.
struct NodeOf<'a> {
    conn: &'a mut ClusterConnection,
    address: String,
}

impl NodeOf<'_> {
    async fn query<T: redis::FromRedisValue>(
        &mut self,
        cmd: &redis::Cmd,
    ) -> Result<T, BackendError> {
        let routing = cluster::routing(&self.address)?;
        let value = self.conn.route_command(cmd, routing).await.map_err(|e| {
            BackendError::Unavailable(format!("lineage check on {}: {e}", self.address))
        })?;
        redis::from_owned_redis_value(value).map_err(|e| BackendError::Command(e.to_string()))
    }
}

/// Checks every lineage against the server `conn` talks to, invalidating what could be stale.
pub(super) async fn verify(
    conn: &mut impl ConnectionLike,
    lineages: &[Lineage],
) -> Result<Verified, BackendError> {
    let fail = |e: redis::RedisError| BackendError::Unavailable(format!("lineage check: {e}"));
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(conn)
        .await
        .map_err(fail)?;
    let Some(run_id) = run_id(&info).map(str::to_string) else {
        return Err(BackendError::Command("INFO server has no run_id".into()));
    };
    let mut verified = Verified {
        run_ids: vec![run_id.clone()],
        changed: false,
    };
    for lineage in lineages {
        let recorded: Option<String> = redis::cmd("GET")
            .arg(&lineage.record_key)
            .query_async(conn)
            .await
            .map_err(fail)?;
        if recorded.as_deref() == Some(run_id.as_str()) {
            continue;
        }
        let count = drop_namespace_records(conn, &lineage.namespace_records).await?;
        let _: () = redis::cmd("SET")
            .arg(&lineage.record_key)
            .arg(&run_id)
            .query_async(conn)
            .await
            .map_err(fail)?;
        if count > 0 || recorded.is_some() {
            log::warn!(
                "Redis is another server process than the one our data was checked against \
                 (run_id {run_id}, was {}): it may have restarted from disk or been promoted \
                 from a replica, missing busts; invalidated {count} namespace(s) under {}",
                recorded.as_deref().unwrap_or("unknown"),
                lineage.record_key
            );
        }
        verified.changed |= recorded.is_some();
    }
    Ok(verified)
}

async fn drop_namespace_records(
    conn: &mut impl ConnectionLike,
    pattern: &str,
) -> Result<u64, BackendError> {
    let fail = |e: redis::RedisError| BackendError::Unavailable(format!("lineage check: {e}"));
    let mut cursor = 0u64;
    let mut dropped = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = super::scan_command(cursor, pattern, SCAN_COUNT)
            .query_async(conn)
            .await
            .map_err(fail)?;
        if !keys.is_empty() {
            let removed: u64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(conn)
                .await
                .map_err(fail)?;
            dropped += removed;
        }
        if next == 0 {
            return Ok(dropped);
        }
        cursor = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_id_is_read_from_info() {
        let info = "# Server\r\nredis_version:7.0.15\r\nrun_id:abc123\r\ntcp_port:6379\r\n";
        assert_eq!(run_id(info), Some("abc123"));
        assert_eq!(run_id("# Server\r\n"), None);
    }
}
