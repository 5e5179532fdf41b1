//! Settings mean exactly what they say, checked on the real binary: secrets and strings from
//! the environment are taken literally, a token too short to be safe, a log filter env_logger
//! would ignore and a Redis database that does not exist stop startup with one clear line.

use crate::support::service_process::{run_to_exit, ServiceProcess};
use crate::support::RedisServer;

#[test]
fn an_empty_short_or_yaml_looking_admin_token_stops_startup_naming_the_minimum() {
    for token in ["", "null", "~", "0x1F", "pa55 #word"] {
        let output = run_to_exit(&[("ADMIN__TOKEN", token), ("CACHE__BACKEND", "memory")]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{token:?}: {stderr}");
        assert!(stderr.contains("admin.token"), "{token:?}: {stderr}");
        assert!(stderr.contains("at least 16 bytes"), "{token:?}: {stderr}");
        assert!(stderr.contains("ADMIN__TOKEN"), "{token:?}: {stderr}");
    }
}

#[test]
fn a_log_filter_env_logger_would_ignore_stops_startup() {
    for (name, value) in [("RUST_LOG", "[a]"), ("APP__LOG_LEVEL", "info,x=loud")] {
        let output = run_to_exit(&[(name, value), ("CACHE__BACKEND", "memory")]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}={value}: {stderr}");
        assert!(stderr.contains("app.log_level"), "{stderr}");
        assert!(stderr.contains(name), "{stderr}");
    }
}

#[test]
fn a_token_with_yaml_syntax_in_it_is_the_token_as_written() {
    let token = "0x1F #not-a-comment: 1e3";
    let service = ServiceProcess::start(&[("ADMIN__TOKEN", token)]);
    let literal = format!("Bearer {token}");
    let response = service.exchange("GET", "/cache/stats", &[("Authorization", &literal)], "");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let truncated = service.exchange(
        "GET",
        "/cache/stats",
        &[("Authorization", "Bearer 0x1F")],
        "",
    );
    assert!(truncated.starts_with("HTTP/1.1 401"), "{truncated}");
}

#[test]
fn a_redis_database_that_does_not_exist_fails_startup_in_redis_mode_and_is_loud_in_auto() {
    let redis = RedisServer::start();
    let url = redis.url().replace("/0", "/99");
    let output = run_to_exit(&[("REDIS__URL", &url), ("CACHE__BACKEND", "redis")]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("DB index is out of range"), "{stderr}");

    let service = ServiceProcess::start(&[("REDIS__URL", &url), ("CACHE__BACKEND", "auto")]);
    let line = service.wait_for_line("refused redis.url");
    assert!(line.contains("ERROR"), "not loud: {line}");
    assert!(line.contains("DB index is out of range"), "{line}");
    assert!(line.contains("cache backend: memory"), "{line}");
}
