//! The real binary: settings errors exit non-zero with one clear line, the environment wins
//! over the file, the backend choice is logged, and SIGTERM stops it cleanly.

use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::service_process::{run_to_exit_with_config, ServiceProcess};
use crate::support::{free_port, RedisServer};

fn write_settings(dir: &Path, yaml: &str) -> String {
    let path = dir.join("settings.yaml");
    std::fs::write(&path, yaml).expect("write settings");
    path.to_string_lossy().into_owned()
}

/// Asserts the process failed with exit code 2 and exactly one stderr line containing `needles`.
fn assert_settings_error(output: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "stderr: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} not in {stderr:?}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A settings file, environment variables, and what the error line must mention.
type BadSettingsCase<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);

#[test]
fn settings_errors_exit_non_zero_with_one_clear_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases: &[BadSettingsCase] = &[
        (
            "cache:\n  ttl: 5\n",
            &[],
            &["unknown field `ttl`", "settings.yaml"],
        ),
        (
            "app:\n  port: eighty\n",
            &[],
            &["app.port", "settings.yaml"],
        ),
        (
            "cache:\n  default_ttl_secs: 0\n",
            &[],
            &["cache.default_ttl_secs", "greater than zero"],
        ),
        (
            "",
            &[("REDIS__URL", "http//nope")],
            &["redis.url", "REDIS__URL"],
        ),
        ("", &[("APP__PORT", "70000")], &["app.port", "APP__PORT"]),
        (
            "cache:\n  backend: disk\n",
            &[],
            &["cache.backend", "unknown variant"],
        ),
        ("app: [", &[], &["settings.yaml"]),
    ];
    for (yaml, env, needles) in cases {
        let config = write_settings(dir.path(), yaml);
        assert_settings_error(&run_to_exit_with_config(&config, env), needles);
    }
    let missing = run_to_exit_with_config("/nonexistent/settings.yaml", &[]);
    assert_settings_error(&missing, &["/nonexistent/settings.yaml"]);
}

#[test]
fn environment_overrides_file_and_backend_choice_is_logged() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let yaml = format!(
        "app:\n  port: 0\nredis:\n  url: {}\ncache:\n  backend: redis\ndatabase:\n  path: \":memory:\"\n",
        server.url()
    );
    let config = write_settings(dir.path(), &yaml);

    let mut with_file = ServiceProcess::start_with_config(&config, &[]);
    with_file.wait_for_line("cache backend: redis");
    // The test server runs with Redis's defaults: no maxmemory.
    with_file.wait_for_line("Redis has no maxmemory");
    with_file.wait_for_line("listening on http://127.0.0.1:");
    assert!(with_file.terminate().success());

    let mut overridden =
        ServiceProcess::start_with_config(&config, &[("CACHE__BACKEND", "memory")]);
    overridden.wait_for_line("cache backend: memory (cache.backend = memory)");
    overridden.wait_for_line("listening on http://127.0.0.1:");
    assert!(overridden.terminate().success());
}

#[test]
fn serves_from_memory_when_redis_is_unreachable_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let yaml = format!(
        "app:\n  port: 0\nredis:\n  url: redis://127.0.0.1:{}/0\n  connect_timeout_ms: 200\ndatabase:\n  path: \":memory:\"\n",
        free_port()
    );
    let config = write_settings(dir.path(), &yaml);
    let mut service = ServiceProcess::start_with_config(&config, &[]);
    service.wait_for_line("cache backend: memory (auto");
    service.wait_for_line("listening on http://127.0.0.1:");
    let body = service.exchange("GET", "/health/ready", &[], "");
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(body.contains("\"backend\":\"memory\""), "{body}");
    let status = service.terminate();
    assert!(status.success(), "exit status {status:?}");
}

/// Writes items as fast as `workers` clients can until `stop`, returning the ids the service
/// acknowledged (201).
async fn write_until(port: u16, workers: usize, stop: Arc<AtomicBool>) -> Vec<u64> {
    let client = reqwest::Client::new();
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let (client, stop) = (client.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let body = serde_json::json!({"name": format!("w{worker}-{n}"), "price": n});
                    let sent = client
                        .post(format!("http://127.0.0.1:{port}/items"))
                        .json(&body)
                        .send()
                        .await;
                    match sent {
                        Ok(response) if response.status() == 201 => {
                            let item: serde_json::Value = response.json().await.expect("item");
                            acknowledged.push(item["id"].as_u64().expect("id"));
                        }
                        Ok(response) => panic!("write answered {}", response.status()),
                        Err(_) => break,
                    }
                }
                acknowledged
            })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.expect("writer"));
    }
    acknowledged
}

async fn assert_all_present(port: u16, ids: &[u64]) {
    let client = reqwest::Client::new();
    for id in ids {
        let response = client
            .get(format!("http://127.0.0.1:{port}/items/{id}"))
            .header("cache-control", "no-cache")
            .send()
            .await
            .expect("read back");
        assert_eq!(response.status(), 200, "acknowledged item {id} was lost");
    }
}

fn durable_config(dir: &Path) -> String {
    let db = dir.join("items.sqlite3");
    let yaml = format!(
        "app:\n  port: 0\n  shutdown_grace_ms: 5000\ncache:\n  backend: memory\ndatabase:\n  path: {}\n",
        db.display()
    );
    write_settings(dir, &yaml)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_finishes_in_flight_writes_and_loses_none() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = durable_config(dir.path());
    let mut service = ServiceProcess::start_with_config(&config, &[]);
    let port = service.port;
    let stop = Arc::new(AtomicBool::new(false));
    let writers = tokio::spawn(write_until(port, 8, Arc::clone(&stop)));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let status = tokio::task::spawn_blocking(move || service.terminate())
        .await
        .expect("terminate");
    stop.store(true, Ordering::Relaxed);
    let acknowledged = writers.await.expect("writers");
    assert!(status.success(), "exit status {status:?}");
    assert!(
        acknowledged.len() > 20,
        "only {} writes before SIGTERM",
        acknowledged.len()
    );

    let mut restarted = ServiceProcess::start_with_config(&config, &[]);
    let port = restarted.port;
    assert_all_present(port, &acknowledged).await;
    assert!(restarted.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = durable_config(dir.path());
    let mut service = ServiceProcess::start_with_config(&config, &[]);
    let port = service.port;
    let stop = Arc::new(AtomicBool::new(false));
    let writers = tokio::spawn(write_until(port, 8, Arc::clone(&stop)));
    tokio::time::sleep(Duration::from_millis(400)).await;
    service.kill();
    stop.store(true, Ordering::Relaxed);
    let acknowledged = writers.await.expect("writers");
    assert!(
        acknowledged.len() > 20,
        "only {} writes before SIGKILL",
        acknowledged.len()
    );

    let mut restarted = ServiceProcess::start_with_config(&config, &[]);
    let port = restarted.port;
    assert_all_present(port, &acknowledged).await;
    assert!(restarted.terminate().success());
}

/// One HTTP/1.1 request over a plain socket; `None` when the connection was cut before a
/// whole response came (the service died).
fn http_request(port: u16, method: &str, path: &str, json: Option<&str>) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    let body = json.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.starts_with("HTTP/1.1 ").then_some(response)
}

#[test]
fn a_crash_between_commit_and_bust_is_repaired_by_another_instance() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let yaml = format!(
        "app:\n  port: 0\nredis:\n  url: {}\ncache:\n  backend: redis\n  write_intent_grace_ms: 1000\ndatabase:\n  path: {:?}\n",
        redis.url(),
        dir.path().join("items.sqlite3").display().to_string()
    );
    let config = write_settings(dir.path(), &yaml);
    let mut survivor = ServiceProcess::start_with_config(&config, &[]);
    let port = survivor.port;
    let created = http_request(port, "POST", "/items", Some(r#"{"name":"Lamp","price":1}"#));
    assert!(created.is_some_and(|r| r.starts_with("HTTP/1.1 201")));
    http_request(port, "GET", "/items/1", None).expect("answered");
    let hit = http_request(port, "GET", "/items/1", None).expect("answered");
    assert!(hit.to_ascii_lowercase().contains("x-cache: hit"), "{hit}");

    let mut doomed = ServiceProcess::start_with_config(
        &config,
        &[("WARP_REDIS_CACHE_FAILPOINT", "abort-before-bust")],
    );
    let doomed_port = doomed.port;
    let patch = http_request(
        doomed_port,
        "PATCH",
        "/items/1",
        Some(r#"{"name":"Lamp v2"}"#),
    );
    assert!(
        patch.is_none(),
        "the failpoint answered instead of crashing: {patch:?}"
    );
    let status = doomed.wait_for_exit(Duration::from_secs(10));
    assert!(!status.success(), "the instance died mid-write: {status:?}");

    // The write committed and its bust never ran: once the dead instance's heartbeat has
    // expired (6 s), the survivor replays the write's intent (swept every 2 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let body = http_request(port, "GET", "/items/1", None).expect("answered");
        if body.contains("Lamp v2") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still served from before the write: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(survivor.terminate().success());
}
