//! Test harness: a private Redis Cluster of 3 masters (and optionally one replica each) on free
//! loopback ports, in a temporary directory, killed on drop.
//!
//! Every node is `redis-server --cluster-enabled yes` with no persistence and a node timeout of
//! 1 s, so a killed master's replica takes over in about two seconds. `redis-cli --cluster
//! create` assigns the slots; [`RedisCluster::start`] returns once every node says
//! `cluster_state:ok` (and every replica is linked to its master), polling, never sleeping a
//! fixed time.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use warp_redis_cache::{RedisConfig, RedisMode};

use super::{free_port, redis_settings};

const START_TIMEOUT: Duration = Duration::from_secs(20);
const MASTERS: usize = 3;

/// One redis-server of the cluster.
struct Node {
    port: u16,
    bus_port: u16,
    child: Option<Child>,
}

/// A Redis Cluster owned by one test.
pub struct RedisCluster {
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
}

impl RedisCluster {
    /// Starts 3 masters, plus one replica each when `replicas`, and waits until the cluster
    /// serves every slot.
    pub fn start(replicas: bool) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for the cluster");
        let count = if replicas { MASTERS * 2 } else { MASTERS };
        let mut cluster = Self {
            dir,
            nodes: Vec::new(),
        };
        for _ in 0..count {
            let node = Node {
                port: cluster.unused_port(),
                bus_port: cluster.unused_port(),
                child: None,
            };
            cluster.nodes.push(node);
            let index = cluster.nodes.len() - 1;
            cluster.spawn(index);
        }
        let deadline = Instant::now() + START_TIMEOUT;
        for index in 0..count {
            while cluster.info(index, "server").is_none() {
                assert!(Instant::now() < deadline, "a cluster node did not start");
                // A port taken between picking and binding (another test's server): the
                // node exits at once; start it again on other ports.
                let exited = cluster.nodes[index]
                    .child
                    .as_mut()
                    .is_some_and(|child| matches!(child.try_wait(), Ok(Some(_))));
                if exited {
                    cluster.nodes[index].port = cluster.unused_port();
                    cluster.nodes[index].bus_port = cluster.unused_port();
                    cluster.spawn(index);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", if replicas { "1" } else { "0" }])
            .arg("--cluster-yes")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli runs");
        assert!(created.success(), "redis-cli --cluster create failed");
        cluster.wait_until_ok(deadline);
        cluster
    }

    /// A free port that no node of this cluster uses yet (as client or bus port).
    fn unused_port(&self) -> u16 {
        loop {
            let port = free_port();
            if !self
                .nodes
                .iter()
                .any(|node| node.port == port || node.bus_port == port)
            {
                return port;
            }
        }
    }

    fn spawn(&mut self, index: usize) {
        let dir = self.dir.path().to_path_buf();
        let node = &mut self.nodes[index];
        let config = dir.join(format!("nodes-{}.conf", node.port));
        let child = Command::new("redis-server")
            .args(["--port", &node.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes", "--cluster-port"])
            .arg(node.bus_port.to_string())
            .arg("--cluster-config-file")
            .arg(&config)
            .args(["--cluster-node-timeout", "1000"])
            .args(["--cluster-replica-validity-factor", "0"])
            .arg("--dir")
            .arg(&dir)
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--protected-mode", "no", "--loglevel", "warning"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs (apt-get install redis-server)");
        node.child = Some(child);
    }

    /// Until every running node says `cluster_state:ok` and every replica's link is up.
    fn wait_until_ok(&self, deadline: Instant) {
        for index in 0..self.nodes.len() {
            if self.nodes[index].child.is_none() {
                continue;
            }
            loop {
                let ok = self
                    .info(index, "cluster")
                    .is_some_and(|info| info.contains("cluster_state:ok"))
                    && self.info(index, "replication").is_some_and(|info| {
                        info.contains("role:master") || info.contains("master_link_status:up")
                    });
                if ok {
                    break;
                }
                assert!(Instant::now() < deadline, "the cluster did not become ok");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn info(&self, index: usize, section: &str) -> Option<String> {
        let command = if section == "cluster" {
            redis::cmd("CLUSTER").arg("INFO").clone()
        } else {
            redis::cmd("INFO").arg(section).clone()
        };
        self.query(self.nodes[index].port, &command).ok()
    }

    fn query<T: redis::FromRedisValue>(
        &self,
        port: u16,
        cmd: &redis::Cmd,
    ) -> redis::RedisResult<T> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/0"))?;
        let mut conn = client.get_connection_with_timeout(Duration::from_millis(500))?;
        cmd.query(&mut conn)
    }

    /// `redis://127.0.0.1:<port>` of every node, comma-separated: the seed list for settings.
    pub fn seed_urls(&self) -> String {
        let urls: Vec<String> = self
            .nodes
            .iter()
            .map(|node| format!("redis://127.0.0.1:{}", node.port))
            .collect();
        urls.join(",")
    }

    /// Redis settings in cluster mode with the test budgets.
    pub fn settings(&self) -> RedisConfig {
        RedisConfig {
            mode: RedisMode::Cluster,
            ..redis_settings(&self.seed_urls())
        }
    }

    /// The ports of the masters that serve slots now, as the running nodes see it.
    pub fn master_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .cluster_nodes()
            .lines()
            .filter(|line| line.contains("master") && !line.contains("fail"))
            .filter(|line| line.split(' ').count() > 8)
            .filter_map(|line| address_port(line.split(' ').nth(1)?))
            .collect();
        ports.sort_unstable();
        ports
    }

    /// The port of the master that serves `key`'s slot now.
    pub fn master_of(&self, key: &str) -> u16 {
        let slot = redis::cluster_routing::get_slot(key.as_bytes());
        self.cluster_nodes()
            .lines()
            .filter(|line| line.contains("master") && !line.contains("fail"))
            .find(|line| line.split(' ').skip(8).any(|range| in_range(range, slot)))
            .and_then(|line| address_port(line.split(' ').nth(1)?))
            .unwrap_or_else(|| panic!("no master serves slot {slot}"))
    }

    fn cluster_nodes(&self) -> String {
        self.nodes
            .iter()
            .filter(|node| node.child.is_some())
            .find_map(|node| {
                self.query::<String>(node.port, redis::cmd("CLUSTER").arg("NODES"))
                    .ok()
            })
            .expect("a running node answers CLUSTER NODES")
    }

    /// Every key on the node at `port` (SCAN to the end).
    pub fn keys_on(&self, port: u16) -> Vec<String> {
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, page): (u64, Vec<String>) = self
                .query(port, redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(1000))
                .expect("SCAN answers");
            keys.extend(page);
            if next == 0 {
                return keys;
            }
            cursor = next;
        }
    }

    /// Runs one command on the node at `port`.
    pub fn command<T: redis::FromRedisValue>(&self, port: u16, cmd: &redis::Cmd) -> T {
        self.query(port, cmd).expect("command succeeds")
    }

    /// Kills (SIGKILL) the node listening on `port`.
    pub fn kill(&mut self, port: u16) {
        let node = self
            .nodes
            .iter_mut()
            .find(|node| node.port == port)
            .expect("a node of this cluster");
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The port of the replica of the master at `port`.
    pub fn replica_of(&self, port: u16) -> u16 {
        let nodes = self.cluster_nodes();
        let field = |line: &str, n: usize| line.split(' ').nth(n).map(str::to_string);
        let master_id = nodes
            .lines()
            .find(|line| field(line, 1).as_deref().and_then(address_port) == Some(port))
            .and_then(|line| field(line, 0))
            .expect("the master is listed");
        nodes
            .lines()
            .find(|line| field(line, 3).as_deref() == Some(master_id.as_str()))
            .and_then(|line| address_port(line.split(' ').nth(1)?))
            .expect("the master has a replica")
    }

    /// Freezes (SIGSTOP) the node listening on `port`.
    pub fn pause(&self, port: u16) {
        self.signal(port, "-STOP");
    }

    /// Thaws (SIGCONT) a node frozen by [`Self::pause`].
    pub fn resume(&self, port: u16) {
        self.signal(port, "-CONT");
    }

    fn signal(&self, port: u16, signal: &str) {
        let pid = self
            .nodes
            .iter()
            .find(|node| node.port == port)
            .and_then(|node| node.child.as_ref())
            .expect("a running node of this cluster")
            .id();
        let sent = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status();
        assert!(sent.is_ok_and(|s| s.success()), "kill {signal} {pid}");
    }

    /// Whether the master that served `port`'s slots was replaced by its replica.
    pub fn failed_over(&self, port: u16) -> bool {
        !self.master_ports().contains(&port)
            && self.nodes.iter().filter(|n| n.child.is_some()).all(|node| {
                self.query::<String>(node.port, redis::cmd("CLUSTER").arg("INFO"))
                    .is_ok_and(|info| info.contains("cluster_state:ok"))
            })
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The port in `ip:port@bus_port`.
fn address_port(address: &str) -> Option<u16> {
    address.split('@').next()?.rsplit(':').next()?.parse().ok()
}

/// Whether `slot` is in a `CLUSTER NODES` slot field (`5` or `0-5460`).
fn in_range(field: &str, slot: u16) -> bool {
    match field.split_once('-') {
        Some((start, end)) => {
            start.parse::<u16>().is_ok_and(|s| s <= slot)
                && end.parse::<u16>().is_ok_and(|e| slot <= e)
        }
        None => field.parse::<u16>() == Ok(slot),
    }
}
