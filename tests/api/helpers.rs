//! Test harness: a real `redis-server` per test on a free loopback port, and typed helpers.
//!
//! Never the shared 6379 and never a fixed port: each [`RedisServer`] picks a free port, starts
//! its own process with no persistence, waits until PING answers and kills it on drop. Fault
//! tests [`RedisServer::stop`], [`RedisServer::restart`] and pause it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use warp_redis_cache::cache::CacheManager;
use warp_redis_cache::settings::{CacheSettings, RedisSettings};

const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A redis-server owned by one test.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers PING.
    pub fn start() -> Self {
        for _ in 0..5 {
            let port = free_port();
            let mut server = Self { port, child: None };
            if server.spawn() {
                return server;
            }
        }
        panic!("could not start redis-server on a free port after 5 tries");
    }

    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .args(["--protected-mode", "no", "--loglevel", "warning"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(err) => panic!(
                "cannot run redis-server ({err}). Install it (apt-get install redis-server) \
                 or run scripts/test.sh, which installs it when missing."
            ),
        };
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if self.answers_ping() {
                return true;
            }
            if let Some(Ok(Some(_))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop();
        false
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Whether the server answers PING right now.
    pub fn answers_ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }

    /// Kills the server (SIGKILL) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.spawn() {
            assert!(Instant::now() < deadline, "redis-server did not restart");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A direct client, for reading and planting keys behind the service's back.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("valid url")
    }

    /// Runs one command on a fresh synchronous connection.
    pub fn command<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        let mut conn = self
            .client()
            .get_connection()
            .expect("connect to test redis");
        cmd.query(&mut conn).expect("command succeeds")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind an ephemeral port")
}

/// Redis settings for `server` with tight budgets, so fault tests finish quickly.
pub fn redis_settings(url: &str) -> RedisSettings {
    RedisSettings {
        url: url.to_string(),
        connect_timeout_ms: 300,
        pool_get_timeout_ms: 300,
        command_timeout_ms: 200,
        ..RedisSettings::default()
    }
}

/// Cache settings with a small compression threshold so tests exercise gzip.
pub fn cache_settings() -> CacheSettings {
    CacheSettings {
        compression_threshold_bytes: 256,
        ..CacheSettings::default()
    }
}

/// A manager over the Redis backend talking to `server`.
pub async fn redis_manager(server: &RedisServer) -> CacheManager {
    let mut cache = cache_settings();
    cache.backend = warp_redis_cache::settings::BackendChoice::Redis;
    CacheManager::connect(&cache, &redis_settings(&server.url()))
        .await
        .expect("valid redis settings")
}

/// Polls `condition` every 10 ms until it holds or `within` passes; returns whether it held.
pub async fn eventually<F, Fut>(within: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
