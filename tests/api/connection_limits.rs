//! Connections are bounded from outside the process: slowloris clients neither starve others
//! nor stay, idle connections close, slow bodies time out, clients that never read their
//! response are closed, and past the connection cap new clients wait in the backlog while the
//! process's descriptors stay bounded.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::service_process::{closed_by_server, read_response, send_get, ServiceProcess};

/// Opens a connection and sends the start of a request head that never ends.
fn slowloris(service: &ServiceProcess) -> TcpStream {
    let mut stream = service.connect();
    stream
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1\r\n")
        .expect("send a partial head");
    stream
}

#[test]
fn a_thousand_slowloris_connections_neither_starve_a_client_nor_outlive_the_header_timeout() {
    let service = ServiceProcess::start(&[("APP__HEADER_READ_TIMEOUT_MS", "8000")]);
    let fds_idle = service.open_fds();
    let started = Instant::now();
    // Opened from ten threads, so all are open well within the header timeout even on a
    // busy machine.
    let mut slow: Vec<TcpStream> = std::thread::scope(|scope| {
        let openers: Vec<_> = (0..10)
            .map(|_| scope.spawn(|| (0..100).map(|_| slowloris(&service)).collect::<Vec<_>>()))
            .collect();
        openers
            .into_iter()
            .flat_map(|opener| opener.join().expect("opener thread"))
            .collect()
    });
    let opened = started.elapsed();

    let asked = Instant::now();
    let mut client = service.connect();
    send_get(&mut client, "/health/live", true);
    let response = read_response(&mut client).expect("the normal client is answered");
    let waited = asked.elapsed();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        waited < Duration::from_millis(300),
        "the normal client waited {waited:?}"
    );
    // The service holds every slow connection (none is refused or closed early)...
    let mut fds_peak = service.open_fds();
    while fds_peak < fds_idle + 1000 && started.elapsed() < Duration::from_millis(7500) {
        std::thread::sleep(Duration::from_millis(20));
        fds_peak = service.open_fds();
    }
    assert!(
        fds_peak >= fds_idle + 1000,
        "fds {fds_idle} -> {fds_peak} ({opened:?} to open the connections)"
    );

    // Every slow connection is closed once its head is overdue, and not much later.
    for stream in &mut slow {
        let left = Duration::from_secs(14).saturating_sub(started.elapsed());
        assert!(
            closed_by_server(stream, left.max(Duration::from_millis(1))),
            "a slowloris connection was still open {:?} after it began",
            started.elapsed()
        );
    }
    let all_closed = started.elapsed();
    assert!(
        all_closed >= Duration::from_millis(7900),
        "closed before the timeout: {all_closed:?}"
    );
    println!(
        "1000 slowloris (opened in {opened:?}) + 1 client: client answered in {waited:?}; \
         fds {fds_idle} -> {fds_peak} at the peak; all closed after {all_closed:?}"
    );
    let series = "http_connections_closed_total{reason=\"header_timeout\"}";
    let closed = service.metric_reaching(series, 1000.0);
    assert!(closed >= 1000.0, "header timeouts counted: {closed}");
}

#[test]
fn idle_keep_alive_connections_are_closed_after_the_idle_timeout_and_busy_ones_are_not() {
    let service = ServiceProcess::start(&[("APP__IDLE_TIMEOUT_MS", "600")]);
    let mut idle = service.connect();
    send_get(&mut idle, "/health/live", false);
    read_response(&mut idle).expect("answered");
    let answered = Instant::now();

    let mut busy = service.connect();
    for _ in 0..6 {
        send_get(&mut busy, "/health/live", false);
        let response = read_response(&mut busy).expect("a busy connection stays open");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        std::thread::sleep(Duration::from_millis(200));
    }

    assert!(
        closed_by_server(&mut idle, Duration::from_secs(5)),
        "the idle connection was not closed"
    );
    let lived = answered.elapsed();
    assert!(
        lived >= Duration::from_millis(550),
        "closed too early: {lived:?}"
    );
    let closed = service.metric_reaching(
        "http_connections_closed_total{reason=\"idle_timeout\"}",
        1.0,
    );
    assert!(closed >= 1.0, "idle closes counted: {closed}");
}

#[test]
fn a_body_that_does_not_arrive_in_time_is_answered_408_and_the_connection_closed() {
    let service = ServiceProcess::start(&[("APP__BODY_READ_TIMEOUT_MS", "500")]);
    let mut stream = service.connect();
    let sent = Instant::now();
    stream
        .write_all(
            b"POST /items HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"name\":",
        )
        .expect("send a partial body");
    let response = read_response(&mut stream).expect("answered");
    let waited = sent.elapsed();
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(response.contains("request_timeout"), "{response}");
    assert!(
        (Duration::from_millis(450)..Duration::from_secs(5)).contains(&waited),
        "answered after {waited:?}"
    );
    assert!(closed_by_server(&mut stream, Duration::from_secs(5)));
    let timeouts = service.metric("http_request_body_timeouts_total");
    assert!(timeouts >= 1.0, "body timeouts counted: {timeouts}");
}

#[test]
fn past_the_connection_cap_clients_wait_in_the_backlog_and_descriptors_stay_bounded() {
    let service = ServiceProcess::start(&[
        ("APP__MAX_CONNECTIONS", "20"),
        ("APP__HEADER_READ_TIMEOUT_MS", "1500"),
    ]);
    let line = service.wait_for_line("connection limits");
    assert!(line.contains("at most 20 connections"), "{line}");
    let fds_idle = service.open_fds();
    let started = Instant::now();
    let _held: Vec<TcpStream> = (0..30).map(|_| service.connect()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let fds_peak = service.open_fds();
    assert!(
        fds_peak <= fds_idle + 20,
        "30 connections against a cap of 20 took fds from {fds_idle} to {fds_peak}"
    );

    let mut client = service.connect();
    send_get(&mut client, "/health/live", true);
    let response = read_response(&mut client).expect("answered once slots free up");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1400),
        "served before any held connection timed out: {waited:?}"
    );
    service.wait_for_line("connection cap reached: 20 connections open");
    assert!(service.metric("http_connection_limit_reached_total") >= 1.0);
    assert_eq!(service.metric("http_connections_limit"), 20.0);
    println!(
        "cap 20, 30 held: fds {fds_idle} -> {fds_peak}; the 31st client served after {waited:?}"
    );
}

#[test]
fn the_default_connection_cap_is_sized_from_the_open_files_limit_and_logged() {
    let service = ServiceProcess::start(&[]);
    let line = service.wait_for_line("connection limits");
    let limits = std::fs::read_to_string("/proc/self/limits").expect("read limits");
    let open_files: u64 = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3))
        .and_then(|soft| soft.parse().ok())
        .expect("soft open-files limit");
    let expected = open_files.saturating_sub(128).max(16);
    assert!(
        line.contains(&format!(
            "at most {expected} connections (open-files limit {open_files})"
        )),
        "{line}"
    );
    assert!(line.contains("header read timeout 10000 ms"), "{line}");
    assert!(line.contains("idle timeout 60000 ms"), "{line}");
    service.wait_for_line(&format!("listening on http://127.0.0.1:{}", service.port));
}

#[test]
fn aborted_connections_are_counted_and_not_logged_as_errors() {
    let service = ServiceProcess::start(&[]);
    for n in 0..300 {
        let mut stream = service.connect();
        let partial: &[u8] = match n % 3 {
            0 => b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n",
            1 => b"POST /items HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"na",
            _ => b"GET /items HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        };
        stream.write_all(partial).expect("send");
        stream.shutdown(std::net::Shutdown::Both).expect("abort");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let closed = |reason: &str| {
        service.metric(&format!(
            "http_connections_closed_total{{reason=\"{reason}\"}}"
        ))
    };
    while closed("aborted") + closed("completed") < 300.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let aborted = closed("aborted");
    assert!(aborted >= 100.0, "aborted connections counted: {aborted}");
    assert_eq!(
        service.log_count(" ERROR "),
        0,
        "aborted connections logged as errors"
    );
    assert!(
        service.log_count(" WARN ") <= 2,
        "aborted connections flooded the log with warnings"
    );
}

#[test]
fn header_floods_are_refused_with_431() {
    let service = ServiceProcess::start(&[("APP__MAX_HEADER_BYTES", "16384")]);
    let many: Vec<(String, String)> = (0..150)
        .map(|n| (format!("X-Flood-{n}"), "x".repeat(20)))
        .collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let huge = "y".repeat(20_000);
    for headers in [many, vec![("X-Huge", huge.as_str())]] {
        let mut stream = service.connect();
        let mut request = String::from("GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for (name, value) in &headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).expect("send");
        let response = read_response(&mut stream).expect("answered");
        assert!(response.starts_with("HTTP/1.1 431"), "{response}");
    }
    let fine = service.exchange("GET", "/health/live", &[("X-Fine", "y")], "");
    assert!(fine.starts_with("HTTP/1.1 200"), "{fine}");
}

#[test]
fn sigterm_closes_idle_keep_alive_connections_at_once_instead_of_waiting_out_the_grace() {
    let mut service = ServiceProcess::start(&[("APP__SHUTDOWN_GRACE_MS", "10000")]);
    let mut idle: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut stream = service.connect();
            send_get(&mut stream, "/health/live", false);
            read_response(&mut stream).expect("answered");
            stream
        })
        .collect();
    let started = Instant::now();
    let status = service.terminate();
    let took = started.elapsed();
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    for stream in &mut idle {
        assert!(closed_by_server(stream, Duration::from_secs(1)));
    }
}

/// A service holding an item list of about 8 MB: twice what loopback's socket buffers take in
/// for a client that does not read (about 4 MB).
fn service_with_a_large_item_list(env: &[(&str, &str)]) -> ServiceProcess {
    let mut env = env.to_vec();
    env.push(("APP__MAX_BODY_BYTES", "300000"));
    let service = ServiceProcess::start(&env);
    let body = format!(
        r#"{{"name":"big","price":1,"description":"{}"}}"#,
        "x".repeat(200_000)
    );
    let json = [("Content-Type", "application/json")];
    for _ in 0..40 {
        let created = service.exchange("POST", "/items", &json, &body);
        assert!(created.starts_with("HTTP/1.1 201"), "{:.200}", created);
    }
    service
}

/// Reads `stream` to its end (EOF or reset) within `within`; the bytes read, or `None` if it
/// was still open then.
fn read_to_close(stream: &mut TcpStream, within: Duration, pause: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + within;
    let mut received = Vec::new();
    let mut buffer = vec![0u8; 1 << 20];
    while Instant::now() < deadline {
        stream
            .set_read_timeout(Some(
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
            ))
            .expect("read timeout");
        match stream.read(&mut buffer) {
            Ok(0) => return Some(received),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            Err(_) => return Some(received),
        }
        std::thread::sleep(pause);
    }
    None
}

/// The `Content-Length` of the response at the start of `received`, and how much of its body
/// arrived.
fn body_length_and_received(received: &[u8]) -> (usize, usize) {
    let head_end = received
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .expect("a complete response head")
        + 4;
    let head = String::from_utf8_lossy(&received[..head_end]);
    let length = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .expect("a Content-Length");
    (length, received.len() - head_end)
}

#[test]
fn a_client_that_never_reads_a_large_response_is_closed_after_the_write_timeout() {
    let service = service_with_a_large_item_list(&[("APP__RESPONSE_WRITE_TIMEOUT_MS", "1500")]);

    // A slow reader that keeps taking the response is served to the end...
    let mut slow_reader = service.connect();
    send_get(&mut slow_reader, "/items?limit=100", true);
    let received = read_to_close(
        &mut slow_reader,
        Duration::from_secs(30),
        Duration::from_millis(300),
    )
    .expect("the slow reader's response ends");
    let (length, body) = body_length_and_received(&received);
    assert!(length > 8_000_000, "the item list has {length} bytes");
    assert_eq!(body, length, "the slow reader got the whole response");

    // ...and one that never reads is closed once its response has been stuck that long.
    let mut stuck = service.connect();
    send_get(&mut stuck, "/items?limit=100", false);
    let asked = Instant::now();
    let deadline = asked + Duration::from_secs(8);
    let write_timeouts =
        || service.metric("http_connections_closed_total{reason=\"write_timeout\"}");
    while write_timeouts() < 1.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let closed_after = asked.elapsed();
    assert_eq!(
        write_timeouts(),
        1.0,
        "the connection of a client that reads nothing was still open after {closed_after:?}"
    );
    assert!(
        closed_after >= Duration::from_millis(1400),
        "closed before the write timeout: {closed_after:?}"
    );
    let received = read_to_close(&mut stuck, Duration::from_secs(5), Duration::ZERO)
        .expect("the client sees the connection end (EOF or reset)");
    let (length, body) = body_length_and_received(&received);
    assert!(
        body < length,
        "the stuck client got {body} of {length} bytes"
    );
    println!(
        "a client reading nothing of a {length}-byte response: closed after {closed_after:?}, \
         {body} bytes had reached it"
    );
}
