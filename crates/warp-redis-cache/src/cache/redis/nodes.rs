//! Work addressed to single nodes of a Redis Cluster: the masters, their health, and SCAN +
//! UNLINK on each of them.

use std::time::Instant;

use redis::{Cmd, FromRedisValue, Pipeline};

use super::super::backend_types::{BackendError, NodeHealth};
use super::super::cluster::{self, Handle};
use super::{scan_command, RedisBackend, SCAN_BATCH};

impl RedisBackend {
    /// Each master's PING, in address order (cluster mode; empty for one server).
    pub(in crate::cache) async fn node_health(&self) -> Result<Vec<NodeHealth>, BackendError> {
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
    pub(super) async fn masters(&self) -> Result<Vec<String>, BackendError> {
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
    pub(super) async fn delete_matching_on_masters(
        &self,
        pattern: &str,
    ) -> Result<u64, BackendError> {
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
    pub(super) async fn run_on_node<T: FromRedisValue>(
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
    pub(super) async fn pipeline_on_node<T: FromRedisValue>(
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
