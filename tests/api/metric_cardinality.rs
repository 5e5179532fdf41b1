//! Every metric label comes from a fixed set: 10,000 requests with invented methods, paths and
//! headers add no series and no memory.

use std::io::Write;
use std::net::TcpStream;

use crate::support::service_process::{read_response, ServiceProcess};

/// A token of `len` letters that differs for every `seed` (a valid, if absurd, HTTP method).
fn junk_token(seed: u64, len: usize) -> String {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            char::from(b'A' + ((state >> 33) % 26) as u8)
        })
        .collect()
}

/// Sends `count` junk requests starting at `first` over keep-alive connections, reconnecting
/// when the server closes one.
fn send_junk(service: &ServiceProcess, first: u64, count: u64) {
    let mut stream: Option<TcpStream> = None;
    for n in first..first + count {
        let method = junk_token(n, 200);
        let path = match n % 4 {
            0 => format!("/{}", junk_token(n + 1, 40)),
            1 => format!("/items/{}", junk_token(n + 2, 30)),
            2 => format!("/cache/{}/{}", junk_token(n + 3, 20), n),
            _ => format!("/metrics/{}", junk_token(n + 4, 20)),
        };
        let header = format!("X-{}: {}", junk_token(n + 5, 30), junk_token(n + 6, 100));
        let request = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{header}\r\n\r\n");
        let connection = stream.get_or_insert_with(|| service.connect());
        connection.write_all(request.as_bytes()).expect("send");
        let response = read_response(connection).expect("a junk request is answered");
        assert!(response.starts_with("HTTP/1.1 4"), "{response}");
        if response.to_ascii_lowercase().contains("connection: close") {
            stream = None;
        }
    }
}

fn series_count(metrics: &str) -> usize {
    metrics
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .count()
}

#[test]
fn junk_methods_paths_and_headers_add_no_series_and_no_memory() {
    let service = ServiceProcess::start(&[]);
    let workers = 4u64;
    let per_worker = 2_500u64;
    // Warm up: every label combination junk can reach, and the allocator's steady state.
    std::thread::scope(|scope| {
        for worker in 0..workers {
            let service = &service;
            scope.spawn(move || send_junk(service, 1_000_000 + worker * 1_000, 250));
        }
    });
    service.metrics();
    let series_before = series_count(&service.metrics());
    let rss_before = service.rss_kb();
    std::thread::scope(|scope| {
        for worker in 0..workers {
            let service = &service;
            scope.spawn(move || send_junk(service, worker * per_worker, per_worker));
        }
    });
    let metrics = service.metrics();
    let series_after = series_count(&metrics);
    let rss_after = service.rss_kb();
    println!(
        "junk requests: {}; series {series_before} -> {series_after}; RSS {rss_before} kB -> {rss_after} kB",
        workers * per_worker
    );
    assert_eq!(
        series_before, series_after,
        "new series appeared:\n{metrics}"
    );
    assert!(
        rss_after < rss_before + 4 * 1024,
        "RSS grew from {rss_before} kB to {rss_after} kB"
    );
    assert!(
        metrics.contains("method=\"other\""),
        "junk methods are counted under other:\n{metrics}"
    );
    assert!(
        !metrics.contains(&junk_token(0, 200)),
        "a junk method became a label"
    );
}
