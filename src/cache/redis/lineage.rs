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
//! Costs: one `INFO server` and one `GET` per prefix per new connection; after a restart, one
//! SCAN over the keyspace, during which requests are served without the cache (the connection
//! is not in use until the check is done). Redis Cluster is not covered here (see the README's
//! failure table).

use redis::aio::ConnectionLike;

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

/// Checks every lineage against the server `conn` talks to, invalidating what could be stale;
/// returns how many namespace records were dropped.
pub(super) async fn verify(
    conn: &mut impl ConnectionLike,
    lineages: &[Lineage],
) -> Result<u64, BackendError> {
    if lineages.is_empty() {
        return Ok(0);
    }
    let fail = |e: redis::RedisError| BackendError::Unavailable(format!("lineage check: {e}"));
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(conn)
        .await
        .map_err(fail)?;
    let Some(run_id) = run_id(&info).map(str::to_string) else {
        return Err(BackendError::Command("INFO server has no run_id".into()));
    };
    let mut dropped = 0;
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
        dropped += count;
    }
    Ok(dropped)
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
