//! The real service binary as a child process, for tests that see it from outside: its exit
//! status and settings errors, its log, signals, its resident memory and open file
//! descriptors, and raw TCP clients. The service in this process is [`TestApp`](super::TestApp).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_warp-redis-cache");
/// The log filter of a started service: everything but the access log.
const LOG_FILTER: &str = "info,warp_redis_cache::access=warn";

/// Where the binary's settings come from.
enum Source<'a> {
    /// Test defaults: an empty settings file in this directory, a free port, the memory cache
    /// backend and an in-memory item store.
    Defaults(&'a Path),
    /// A settings file of the test's own (`--config`), and nothing else.
    File(&'a str),
}

/// The binary reading its settings from `source`, with `env` on top; `RUST_LOG` is `log`, or
/// unset.
fn command(source: Source, log: Option<&str>, env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BINARY);
    match source {
        Source::Defaults(dir) => {
            let settings = dir.join("settings.yaml");
            std::fs::write(&settings, "").expect("write settings");
            command
                .env("SETTINGS_FILE", &settings)
                .env("APP__PORT", "0")
                .env("CACHE__BACKEND", "memory")
                .env("DATABASE__PATH", ":memory:");
        }
        Source::File(config) => {
            command.args(["--config", config]);
        }
    }
    match log {
        Some(filter) => command.env("RUST_LOG", filter),
        None => command.env_remove("RUST_LOG"),
    };
    command
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// Runs the binary with `env` on top of test defaults until it exits (it must fail before
/// serving), and returns how it ended and what it printed.
pub fn run_to_exit(env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    wait_for_output(command(Source::Defaults(dir.path()), None, env), env)
}

/// [`run_to_exit`] with the settings file `config` and `env`, and no test defaults.
pub fn run_to_exit_with_config(config: &str, env: &[(&str, &str)]) -> Output {
    wait_for_output(command(Source::File(config), None, env), env)
}

fn wait_for_output(mut command: Command, env: &[(&str, &str)]) -> Output {
    let mut child = command.spawn().expect("run the service binary");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("poll the child").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the service kept running with {env:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collect output")
}

/// The service's log lines so far; a new line wakes whoever waits for one.
#[derive(Default)]
struct Log {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
}

/// A running service on a free port, its log collected line by line; killed on drop.
pub struct ServiceProcess {
    child: Child,
    log: Arc<Log>,
    /// Reads stderr into `log` until the process closes it.
    reader: Option<std::thread::JoinHandle<()>>,
    /// The port it announced.
    pub port: u16,
    _settings: Option<tempfile::TempDir>,
}

impl ServiceProcess {
    /// Starts the binary with `env` on top of test defaults (memory cache backend, in-memory
    /// item store) and waits until it listens.
    pub fn start(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let command = command(Source::Defaults(dir.path()), Some(LOG_FILTER), env);
        Self::spawn(command, Some(dir))
    }

    /// Starts the binary on the settings file `config` with `env` (and no test defaults) and
    /// waits until it listens.
    pub fn start_with_config(config: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn(command(Source::File(config), Some(LOG_FILTER), env), None)
    }

    fn spawn(mut command: Command, settings: Option<tempfile::TempDir>) -> Self {
        let mut child = command.spawn().expect("start the service binary");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Log::default());
        let sink = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lines.lock().expect("log lock").push(line);
                sink.grew.notify_all();
            }
        });
        let mut service = Self {
            child,
            log,
            reader: Some(reader),
            port: 0,
            _settings: settings,
        };
        let line = service.wait_for_line("listening on http://");
        // `HOST:PORT` ends a text line; in a JSON line a `"` follows it.
        let (_, address) = line.split_once("listening on http://").expect("the needle");
        let address = address.split(['"', ' ']).next().unwrap_or_default();
        service.port = address
            .rsplit(':')
            .next()
            .and_then(|port| port.trim().parse().ok())
            .expect("port in the listening line");
        service
    }

    /// Waits up to 10 s for a log line containing `needle` (woken by each new line).
    pub fn wait_for_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut lines = self.log.lines.lock().expect("log lock");
        loop {
            if let Some(line) = lines.iter().find(|line| line.contains(needle)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no log line containing {needle:?}; log:\n{}",
                lines.join("\n")
            );
            lines = self.log.grew.wait_timeout(lines, left).expect("log lock").0;
        }
    }

    /// How many log lines contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        let lines = self.log.lines.lock().expect("log lock");
        lines.iter().filter(|line| line.contains(needle)).count()
    }

    /// Resident memory, in kilobytes (`VmRSS`).
    pub fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/<pid>/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kb| kb.parse().ok())
            .expect("VmRSS line")
    }

    /// Open file descriptors right now.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .expect("list /proc/<pid>/fd")
            .count()
    }

    /// A fresh TCP connection to the service.
    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        stream
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "could not send SIGTERM");
        self.child.wait().expect("wait for exit")
    }

    /// Sends SIGTERM, expects a clean exit, and returns every line the process wrote to
    /// stderr, up to its last.
    pub fn shut_down(mut self) -> Vec<String> {
        let status = self.terminate();
        assert!(status.success(), "exit status {status}");
        if let Some(reader) = self.reader.take() {
            reader.join().expect("stderr reader");
        }
        self.log.lines.lock().expect("log lock").clone()
    }

    /// Kills the process (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// Waits until the process exits by itself (killed, aborted) and returns how it ended.
    pub fn wait_for_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                return status;
            }
            assert!(Instant::now() < deadline, "the process is still running");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `method path` with `headers` (and `body`, if not empty) on a fresh connection
    /// and returns the response.
    pub fn exchange(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> String {
        let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
        if !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("host"))
        {
            request.push_str(&format!("Host: 127.0.0.1:{}\r\n", self.port));
        }
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() {
            request.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        request.push_str(body);
        let mut stream = self.connect();
        stream.write_all(request.as_bytes()).expect("send request");
        read_response(&mut stream).expect("a response")
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        let mut stream = self.connect();
        send_get(&mut stream, "/metrics", true);
        read_response(&mut stream).expect("/metrics answers")
    }

    /// The value of `series` once it reaches `at_least`, or after two seconds (counters move
    /// just after the socket they count closes).
    pub fn metric_reaching(&self, series: &str, at_least: f64) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let value = self.metric(series);
            if value >= at_least || Instant::now() > deadline {
                return value;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The value of the sample `series` (its full name with labels) in `/metrics`.
    pub fn metric(&self, series: &str) -> f64 {
        let text = self.metrics();
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or_else(|| panic!("no sample {series} in /metrics:\n{text}"))
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a GET for `path`; `close` asks the server to close the connection after it.
pub fn send_get(stream: &mut TcpStream, path: &str, close: bool) {
    let connection = if close { "close" } else { "keep-alive" };
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: {connection}\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send request");
}

/// Reads one response (head and a `Content-Length` body); `None` when the server closed the
/// connection before a response began.
pub fn read_response(stream: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(0) | Err(_) if head.is_empty() => return None,
            Ok(0) => panic!(
                "connection closed mid-head: {:?}",
                String::from_utf8_lossy(&head)
            ),
            Ok(_) => head.push(byte[0]),
            Err(err) => panic!("reading a response head: {err}"),
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).expect("read the body");
    Some(head + &String::from_utf8_lossy(&body))
}

/// Whether the server has closed `stream` (EOF or reset) within `within`.
pub fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).expect("read timeout");
    let mut buffer = [0u8; 512];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}
