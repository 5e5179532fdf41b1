//! The real service binary as a child process, for tests that measure it from outside: its
//! resident memory, its open file descriptors, its log, and raw TCP clients.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_warp-redis-cache");

/// A running service (memory cache backend, in-memory item store unless `env` says otherwise)
/// on a free port.
pub struct ServiceProcess {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    /// The port it announced.
    pub port: u16,
    _settings: tempfile::TempDir,
}

impl ServiceProcess {
    /// Starts the binary with `env` on top of test defaults and waits until it listens.
    pub fn start(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = dir.path().join("settings.yaml");
        std::fs::write(&settings, "").expect("write settings");
        let mut child = Command::new(BINARY)
            .env("SETTINGS_FILE", &settings)
            .env("APP__PORT", "0")
            .env("CACHE__BACKEND", "memory")
            .env("DATABASE__PATH", ":memory:")
            .env("RUST_LOG", "info,warp_redis_cache_service::access=warn")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the service binary");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().expect("log lock").push(line);
            }
        });
        let mut service = Self {
            child,
            log,
            port: 0,
            _settings: dir,
        };
        let line = service.wait_for_line("listening on http://");
        service.port = line
            .rsplit(':')
            .next()
            .and_then(|port| port.trim().parse().ok())
            .expect("port in the listening line");
        service
    }

    /// Waits up to 10 s for a log line containing `needle`.
    pub fn wait_for_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(line) = self.log_line(needle) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no log line containing {needle:?}; log:\n{}",
                self.log.lock().expect("log lock").join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The first log line containing `needle`, if any yet.
    pub fn log_line(&self, needle: &str) -> Option<String> {
        let log = self.log.lock().expect("log lock");
        log.iter().find(|line| line.contains(needle)).cloned()
    }

    /// How many log lines contain `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        let log = self.log.lock().expect("log lock");
        log.iter().filter(|line| line.contains(needle)).count()
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
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "could not send SIGTERM");
        self.child.wait().expect("wait for exit")
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
