//! Test harness: a real `redis-server` per test on a free loopback port, and typed helpers.
//!
//! Never the shared 6379 and never a fixed port: each [`RedisServer`] picks a free port, starts
//! its own process with no persistence, waits until PING answers and kills it on drop. Fault
//! tests [`RedisServer::stop`], [`RedisServer::restart`] and pause it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use warp_redis_cache::CacheManager;
use warp_redis_cache::{CacheConfig, RedisConfig};

const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A redis-server owned by one test.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// Where it keeps its RDB file, for servers that persist (see [`Self::start_persistent`]).
    data_dir: Option<tempfile::TempDir>,
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers PING.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Starts a server that loads and writes its RDB file in a directory of its own, as a
    /// default redis.conf does: [`Self::restart`] brings back what the last `SAVE` held.
    pub fn start_persistent() -> Self {
        Self::start_with(Some(
            tempfile::tempdir().expect("a temporary data directory"),
        ))
    }

    fn start_with(mut data_dir: Option<tempfile::TempDir>) -> Self {
        for _ in 0..5 {
            let port = free_port();
            let mut server = Self {
                port,
                child: None,
                data_dir: data_dir.take(),
            };
            if server.spawn() {
                return server;
            }
            data_dir = server.data_dir.take();
        }
        panic!("could not start redis-server on a free port after 5 tries");
    }

    fn spawn(&mut self) -> bool {
        let mut command = Command::new("redis-server");
        if let Some(dir) = &self.data_dir {
            command.args(["--dir", &dir.path().display().to_string()]);
        }
        let child = command
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

    /// Freezes the server (SIGSTOP): connections stay open but nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a server frozen by [`Self::pause`] (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("server running").id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {pid}");
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
pub fn redis_settings(url: &str) -> RedisConfig {
    RedisConfig {
        url: url.to_string(),
        connect_timeout_ms: 300,
        pool_get_timeout_ms: 300,
        command_timeout_ms: 200,
        ..RedisConfig::default()
    }
}

/// Cache settings with a small compression threshold so tests exercise gzip.
pub fn cache_settings() -> CacheConfig {
    CacheConfig {
        compression_threshold_bytes: 256,
        ..CacheConfig::default()
    }
}

/// A manager over the Redis backend talking to `server`.
pub async fn redis_manager(server: &RedisServer) -> CacheManager {
    let mut cache = cache_settings();
    cache.backend = warp_redis_cache::BackendChoice::Redis;
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

/// The commands clients sent to `server` while `action` ran, lower-cased, in order: round
/// trips, not the commands a Lua script ran on their behalf (`MONITOR` tells them apart, which
/// `INFO commandstats` cannot).
pub async fn round_trips<Fut: std::future::Future>(
    server: &RedisServer,
    action: impl FnOnce() -> Fut,
) -> (Fut::Output, Vec<String>) {
    round_trips_on(server.port, action).await
}

/// [`round_trips`] as seen by the Redis server on `port` (one node of a cluster, say).
pub async fn round_trips_on<Fut: std::future::Future>(
    port: u16,
    action: impl FnOnce() -> Fut,
) -> (Fut::Output, Vec<String>) {
    use std::io::BufRead;
    let mut monitor = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "monitor"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-cli runs");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let stdout = monitor.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = |rx: &std::sync::mpsc::Receiver<String>| {
        rx.recv_timeout(START_TIMEOUT)
            .expect("redis-cli monitor printed a line in time")
    };
    assert_eq!(next(&lines_rx), "OK", "MONITOR started");
    let output = action().await;
    let marker = format!("round-trips-marker-{}", free_port());
    let _: String = redis::Client::open(format!("redis://127.0.0.1:{port}/0"))
        .and_then(|client| client.get_connection())
        .and_then(|mut conn| redis::cmd("ECHO").arg(&marker).query(&mut conn))
        .expect("ECHO the marker");
    let mut commands = Vec::new();
    loop {
        let line = next(&lines_rx);
        if line.contains(&marker) {
            break;
        }
        if line.contains(" lua]") {
            continue;
        }
        // The instance's background work, not the request's: the server watch (INFO, CLUSTER
        // SLOTS, every second), heartbeats and write-intent sweeps (every 2 s).
        let name = line.split('"').nth(1).unwrap_or_default().to_lowercase();
        if matches!(name.as_str(), "info" | "cluster")
            || line.contains("#alive:")
            || line.contains("#intent:")
        {
            continue;
        }
        commands.push(name);
    }
    monitor.kill().ok();
    monitor.wait().ok();
    (output, commands)
}

/// Calls per command name (`mget`, `set`, ...) since start.
pub fn command_calls(server: &RedisServer, command: &str) -> u64 {
    let info: String = server.command(redis::cmd("INFO").arg("commandstats"));
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .and_then(|calls| calls.parse().ok())
        .unwrap_or(0)
}

/// A service running in this process on a free port, with typed request helpers.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The item store behind the API, for changing data behind the cache's back.
    pub store: warp_redis_cache_service::items::ItemStore,
    client: reqwest::Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// Settings for a test app on a free port using `redis_url` (Redis backend) and an in-memory
/// item store.
pub fn app_settings(redis_url: &str) -> warp_redis_cache_service::settings::Settings {
    let mut settings = warp_redis_cache_service::settings::Settings::default();
    settings.app.port = 0;
    settings.redis = redis_settings(redis_url);
    settings.cache = cache_settings();
    settings.cache.backend = warp_redis_cache::BackendChoice::Redis;
    settings.database.path = ":memory:".into();
    settings
}

/// Starts the service against `server`.
pub async fn spawn_app(server: &RedisServer) -> TestApp {
    spawn_app_with(app_settings(&server.url())).await
}

/// Starts the service with `settings`.
pub async fn spawn_app_with(settings: warp_redis_cache_service::settings::Settings) -> TestApp {
    let app = warp_redis_cache_service::startup::Application::build(settings)
        .await
        .expect("application builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let store = app.store().clone();
    let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    TestApp {
        base,
        store,
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("http client"),
        shutdown: Some(shutdown),
        server: Some(server),
    }
}

impl TestApp {
    /// GET `path` with extra request headers.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.get(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("GET is answered")
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.get_with(path, &[]).await
    }

    /// Sends `method` to `path` with a JSON body.
    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        self.client
            .request(method, format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .expect("request is answered")
    }

    /// Sends `method` to `path` with a raw body and content type.
    pub async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        self.client
            .request(method, format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request is answered")
    }

    /// DELETE `path`.
    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.client
            .delete(format!("{}{path}", self.base))
            .send()
            .await
            .expect("DELETE is answered")
    }

    /// Creates an item through the API and returns its JSON.
    pub async fn create_item(&self, body: serde_json::Value) -> serde_json::Value {
        let response = self.send_json(reqwest::Method::POST, "/items", &body).await;
        assert_eq!(response.status(), 201, "create failed");
        response.json().await.expect("item JSON")
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        self.shutdown_now().await;
    }

    async fn shutdown_now(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// The `X-Cache` header of `response`.
pub fn x_cache(response: &reqwest::Response) -> String {
    header(response, "x-cache")
}

/// A response header as text ("" when absent).
pub fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

impl TestApp {
    /// Sends `method` to `path` with extra headers and no body.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("request is answered")
    }
}
