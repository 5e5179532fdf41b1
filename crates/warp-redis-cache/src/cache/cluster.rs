//! What only a Redis Cluster needs: the connection handle that is either one server's
//! multiplexed connection or a cluster connection, the list of masters, the key-listing cursor
//! that walks them one after another, and UNLINK batches split by hash slot.
//!
//! Not here: which keys share a slot (that is the key layout, [`super::key::KeyLayout`]) and
//! budgets, healing and the breaker (those are the Redis backend's, [`super::redis`], and apply
//! to both modes alike).

use std::collections::BTreeMap;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{get_slot, RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Pipeline, RedisFuture, Value};

use super::backend_types::BackendError;
use crate::config::RedisConfig;

/// Bits of a key-listing cursor that hold one master's own SCAN cursor; the bits above hold the
/// master's index. Redis cursors stay far below 2^48 (they index a hash table), and with up to
/// 32 masters the combined cursor stays below 2^53, exact even for JavaScript clients.
const NODE_CURSOR_BITS: u32 = 48;
/// How often the cluster client retries a command that met a moved slot or a lost node, before
/// the call fails and the request is served without the cache.
const CLUSTER_RETRIES: u32 = 2;

/// The shared connection: one server's multiplexed connection, or a cluster connection (which
/// keeps one multiplexed connection per node and routes each command by its keys' slot).
#[derive(Clone)]
pub(super) enum Handle {
    /// Standalone Redis.
    Single(MultiplexedConnection),
    /// Redis Cluster.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Handle {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Handle::Single(conn) => conn.req_packed_command(cmd),
            Handle::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Handle::Single(conn) => conn.req_packed_commands(cmd, offset, count),
            Handle::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Handle::Single(conn) => conn.get_db(),
            Handle::Cluster(conn) => conn.get_db(),
        }
    }
}

/// A cluster client for the seed nodes in `settings.url`, with the backend's budgets: the
/// client's own timeouts match ours, and it retries briefly so a failover costs a request the
/// command timeout at most.
pub(super) fn client(settings: &RedisConfig) -> redis::RedisResult<redis::cluster::ClusterClient> {
    ClusterClientBuilder::new(settings.urls())
        .connection_timeout(settings.connect_timeout())
        .response_timeout(settings.command_timeout())
        .retries(CLUSTER_RETRIES)
        .min_retry_wait(10)
        .max_retry_wait(100)
        .build()
}

/// Routes a command to the node at `address` (`host:port`).
pub(super) fn at_node(address: &str) -> Result<SingleNodeRoutingInfo, BackendError> {
    address
        .rsplit_once(':')
        .and_then(|(host, port)| {
            Some(SingleNodeRoutingInfo::ByAddress {
                host: host.to_string(),
                port: port.parse().ok()?,
            })
        })
        .ok_or_else(|| BackendError::Command(format!("{address:?} is not a host:port")))
}

/// [`at_node`] for a single command.
pub(super) fn routing(address: &str) -> Result<RoutingInfo, BackendError> {
    at_node(address).map(RoutingInfo::SingleNode)
}

/// The masters' addresses (`host:port`) in a `CLUSTER SLOTS` reply, sorted and without
/// duplicates, so a key-listing cursor means the same master from one page to the next.
pub(super) fn masters(slots: &Value) -> Vec<String> {
    let mut masters: Vec<String> = master_slots(slots)
        .into_iter()
        .map(|(address, _)| address)
        .collect();
    masters.sort();
    masters.dedup();
    masters
}

/// Each slot range's master (`host:port`) with the first slot of the range, in reply order.
pub(super) fn master_slots(slots: &Value) -> Vec<(String, u16)> {
    let Value::Array(ranges) = slots else {
        return Vec::new();
    };
    ranges
        .iter()
        .filter_map(|range| {
            let Value::Array(fields) = range else {
                return None;
            };
            let Value::Int(first) = fields.first()? else {
                return None;
            };
            let Value::Array(master) = fields.get(2)? else {
                return None;
            };
            let host = match master.first()? {
                Value::BulkString(host) => String::from_utf8_lossy(host).into_owned(),
                Value::SimpleString(host) => host.clone(),
                _ => return None,
            };
            let Value::Int(port) = master.get(1)? else {
                return None;
            };
            Some((format!("{host}:{port}"), u16::try_from(*first).ok()?))
        })
        .collect()
}

/// A hash tag whose keys fall in `slot`: `<key>{<tag>}` is stored on the slot's master.
pub(super) fn tag_for_slot(slot: u16) -> String {
    (0u32..)
        .map(|n| n.to_string())
        .find(|tag| get_slot(tag.as_bytes()) == slot)
        .expect("every slot has a decimal hash tag")
}

/// A key-listing cursor: the master's index in the high bits, its own SCAN cursor below.
pub(super) fn encode_cursor(master: usize, node_cursor: u64) -> Result<u64, BackendError> {
    if node_cursor >> NODE_CURSOR_BITS != 0 || master >= 1 << (64 - NODE_CURSOR_BITS) {
        return Err(BackendError::Command(format!(
            "SCAN cursor {node_cursor} of master {master} does not fit a listing cursor"
        )));
    }
    Ok(((master as u64) << NODE_CURSOR_BITS) | node_cursor)
}

/// The master's index and its own SCAN cursor in a key-listing cursor.
pub(super) fn decode_cursor(cursor: u64) -> (usize, u64) {
    let master = (cursor >> NODE_CURSOR_BITS) as usize;
    (master, cursor & ((1 << NODE_CURSOR_BITS) - 1))
}

/// Where a listing goes after `master` answered `next` (0: that master is done).
pub(super) fn next_cursor(master: usize, next: u64, masters: usize) -> Result<u64, BackendError> {
    if next != 0 {
        encode_cursor(master, next)
    } else if master + 1 < masters {
        encode_cursor(master + 1, 0)
    } else {
        Ok(0)
    }
}

/// One `UNLINK` per hash slot: a multi-key command may not span slots, even on one node.
pub(super) fn unlink_by_slot(keys: &[Vec<u8>]) -> Pipeline {
    let mut by_slot: BTreeMap<u16, Vec<&[u8]>> = BTreeMap::new();
    for key in keys {
        by_slot.entry(get_slot(key)).or_default().push(key);
    }
    let mut pipe = redis::pipe();
    for keys in by_slot.values() {
        pipe.cmd("UNLINK").arg(keys);
    }
    pipe
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_walks_masters_in_order() {
        assert_eq!(encode_cursor(0, 0).expect("fits"), 0, "the first page");
        let cursor = encode_cursor(2, 1234).expect("fits");
        assert_eq!(decode_cursor(cursor), (2, 1234));
        assert!(cursor < 1 << 53);
        assert_eq!(decode_cursor(next_cursor(0, 0, 3).expect("fits")), (1, 0));
        assert_eq!(decode_cursor(next_cursor(1, 7, 3).expect("fits")), (1, 7));
        assert_eq!(
            next_cursor(2, 0, 3).expect("fits"),
            0,
            "the last master is done"
        );
        assert!(encode_cursor(0, 1 << 48).is_err());
    }

    #[test]
    fn masters_come_from_cluster_slots_sorted_once_each() {
        let node = |port: i64| {
            Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let range = |start: i64, end: i64, master: i64, replica: i64| {
            Value::Array(vec![
                Value::Int(start),
                Value::Int(end),
                node(master),
                node(replica),
            ])
        };
        let slots = Value::Array(vec![
            range(5461, 10922, 7001, 7004),
            range(0, 5460, 7000, 7003),
            range(10923, 16383, 7002, 7005),
            range(16383, 16383, 7000, 7003),
        ]);
        assert_eq!(
            masters(&slots),
            ["127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"]
        );
    }

    #[test]
    fn unlinks_are_split_by_slot() {
        let keys: Vec<Vec<u8>> = ["{a}1", "{a}2", "{b}1"]
            .iter()
            .map(|k| k.as_bytes().to_vec())
            .collect();
        assert_eq!(unlink_by_slot(&keys).cmd_iter().count(), 2);
    }

    #[test]
    fn node_addresses_route_by_host_and_port() {
        assert_eq!(
            at_node("127.0.0.1:7000").expect("valid"),
            SingleNodeRoutingInfo::ByAddress {
                host: "127.0.0.1".into(),
                port: 7000
            }
        );
        assert!(at_node("nonsense").is_err());
    }
}
