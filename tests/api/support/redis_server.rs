//! A real `redis-server` per test on a free loopback port.
//!
//! Never the shared 6379 and never a fixed port: each [`RedisServer`] picks a free port, starts
//! its own process with no persistence, waits until PING answers and kills it on drop. Fault
//! tests [`RedisServer::stop`], [`RedisServer::restart`] and pause it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A redis-server owned by one test, or by its [`TestApp`](super::TestApp).
pub struct RedisServer {
    port: u16,
    /// The running process; behind a lock so that a server shared by reference (an app owns
    /// it, several tasks hold the app) can still be stopped and restarted.
    child: Mutex<Option<Child>>,
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
                child: Mutex::new(None),
                data_dir: data_dir.take(),
            };
            if server.spawn() {
                return server;
            }
            data_dir = server.data_dir.take();
        }
        panic!("could not start redis-server on a free port after 5 tries");
    }

    fn spawn(&self) -> bool {
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
        *self.child() = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if self.answers_ping() {
                return true;
            }
            let mut running = self.child();
            if let Some(Ok(Some(_))) = running.as_mut().map(Child::try_wait) {
                *running = None;
                return false;
            }
            drop(running);
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop();
        false
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
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
    pub fn stop(&self) {
        if let Some(mut child) = self.child().take() {
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
        let pid = self.child().as_ref().expect("server running").id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// Starts the server again on the same port.
    pub fn restart(&self) {
        self.stop();
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.spawn() {
            assert!(Instant::now() < deadline, "redis-server did not restart");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn child(&self) -> MutexGuard<'_, Option<Child>> {
        self.child
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
