//! The access log of the real binary: one line per request in the documented layout (text and
//! JSON), written off the request path and complete after a graceful shutdown.

use crate::support::service_process::{read_response, send_get, ServiceProcess};

const TARGET: &str = "warp_redis_cache::access";

/// The binary with the access log on (the harness's default filter leaves it out).
fn start(env: &[(&str, &str)]) -> ServiceProcess {
    let mut env = env.to_vec();
    if !env.iter().any(|(name, _)| *name == "RUST_LOG") {
        env.push(("RUST_LOG", "info"));
    }
    ServiceProcess::start(&env)
}

#[test]
fn every_request_has_its_access_line_after_a_graceful_shutdown() {
    let service = start(&[]);
    let (clients, per_client) = (4, 250);
    std::thread::scope(|scope| {
        for _ in 0..clients {
            let service = &service;
            scope.spawn(move || {
                let mut stream = service.connect();
                for _ in 0..per_client {
                    send_get(&mut stream, "/health/live", false);
                    let response = read_response(&mut stream).expect("an answer");
                    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
                }
            });
        }
    });
    let mut stream = service.connect();
    send_get(&mut stream, "/metrics", true);
    let metrics = read_response(&mut stream).expect("/metrics answers");
    assert!(
        metrics.contains("\naccess_log_dropped_lines_total 0\n"),
        "{metrics}"
    );
    // No pause: the last requests' lines are still waiting in the buffer when SIGTERM comes.
    let lines = service.shut_down();
    let access: Vec<&String> = lines
        .iter()
        .filter(|line| line.contains(&format!(" {TARGET}")))
        .collect();
    let live = access
        .iter()
        .filter(|line| line.contains(" > GET /health/live 200 "))
        .count();
    assert_eq!(live, clients * per_client, "log:\n{}", lines.join("\n"));
    assert_eq!(
        access.len(),
        clients * per_client + 1,
        "and one for /metrics"
    );
    let line = access[0];
    // ` 2026-12-01T22:30:05.123Z INFO  warp_redis_cache::access > GET /health/live 200 0.052ms cache=- request_id=<32 hex>`
    let (head, message) = line.split_once(" > ").expect("the text layout");
    let head: Vec<&str> = head.split_whitespace().collect();
    assert_eq!(head.len(), 3, "{line}");
    assert_timestamp(head[0]);
    assert_eq!(&head[1..], ["INFO", TARGET], "{line}");
    let words: Vec<&str> = message.split(' ').collect();
    assert_eq!(&words[..3], ["GET", "/health/live", "200"], "{line}");
    assert_milliseconds(words[3]);
    assert_eq!(words[4], "cache=-", "{line}");
    let id = words[5].strip_prefix("request_id=").expect("request id");
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{line}"
    );
}

#[test]
fn json_access_lines_are_single_objects_with_the_request_in_the_message() {
    let service = start(&[("APP__LOG_FORMAT", "json")]);
    let answer = {
        let mut stream = service.connect();
        let request = "GET /items/999?q=a%22b HTTP/1.1\r\nHost: a\r\nX-Request-Id: trace-7.a_b\r\nConnection: close\r\n\r\n";
        std::io::Write::write_all(&mut stream, request.as_bytes()).expect("send");
        read_response(&mut stream).expect("an answer")
    };
    let lines = service.shut_down();
    let access: Vec<serde_json::Value> = lines
        .iter()
        .filter(|line| line.contains(TARGET))
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert_eq!(access.len(), 1, "{lines:?}");
    let record = &access[0];
    assert_eq!(record["level"], "INFO");
    assert_eq!(record["target"], TARGET);
    assert_timestamp(record["ts"].as_str().expect("ts"));
    let status = &answer[9..12];
    let message = record["message"].as_str().expect("message");
    let words: Vec<&str> = message.split(' ').collect();
    assert_eq!(&words[..3], ["GET", "/items/999", status], "{message}");
    assert_milliseconds(words[3]);
    assert!(words[4].starts_with("cache="), "{message}");
    assert_eq!(words[5], "request_id=trace-7.a_b", "{message}");
}

/// `2026-12-01T22:30:05.123Z`
fn assert_timestamp(ts: &str) {
    let shape: String = ts
        .chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect();
    assert_eq!(shape, "9999-99-99T99:99:99.999Z", "{ts}");
}

/// `0.052ms`
fn assert_milliseconds(word: &str) {
    let number = word.strip_suffix("ms").expect("ms");
    let (whole, fraction) = number.split_once('.').expect("decimals");
    assert!(
        whole.parse::<u64>().is_ok() && fraction.len() == 3,
        "{word}"
    );
}

#[test]
fn a_filter_on_message_text_still_gets_the_access_lines_it_matches() {
    // `/regex` filters match message text, which only env_logger sees: access lines take the
    // `log` path then, and the filter applies to them as before.
    let service = start(&[("RUST_LOG", "info/health|listening")]);
    for path in ["/health/live", "/openapi.json"] {
        let mut stream = service.connect();
        send_get(&mut stream, path, true);
        read_response(&mut stream).expect("an answer");
    }
    let lines = service.shut_down();
    let access: Vec<&String> = lines.iter().filter(|line| line.contains(TARGET)).collect();
    assert_eq!(access.len(), 1, "{lines:?}");
    assert!(
        access[0].contains(" > GET /health/live 200 "),
        "{}",
        access[0]
    );
}
