//! Both binaries from a terminal's point of view: `--help` and `--version`, JSON log lines on
//! request, and `cachectl stats`, `stats --watch`, `keys` and `purge` against a running app.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{spawn_app, x_cache, TestApp};

const SERVICE: &str = env!("CARGO_BIN_EXE_warp-redis-cache");
const CACHECTL: &str = env!("CARGO_BIN_EXE_cachectl");

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `cachectl args...` against `app` off the runtime (the app runs on it).
async fn cachectl(app: &TestApp, args: &[&str]) -> Run {
    let mut command = Command::new(CACHECTL);
    command
        .args(args)
        .env("BASE_URL", &app.base)
        .env_remove("ADMIN__TOKEN")
        .stdin(Stdio::null());
    tokio::task::spawn_blocking(move || {
        let output = command.output().expect("run cachectl");
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    })
    .await
    .expect("cachectl finished")
}

#[test]
fn both_binaries_answer_help_and_version() {
    for (binary, name) in [(SERVICE, "warp-redis-cache"), (CACHECTL, "cachectl")] {
        let version = Command::new(binary).arg("--version").output().expect("run");
        assert!(version.status.success(), "{name} --version");
        let text = String::from_utf8_lossy(&version.stdout);
        assert_eq!(text.trim(), format!("{name} {}", env!("CARGO_PKG_VERSION")));
        let help = Command::new(binary).arg("--help").output().expect("run");
        assert!(help.status.success(), "{name} --help");
        let text = String::from_utf8_lossy(&help.stdout);
        assert!(text.contains("Usage:"), "{text}");
    }
    for command in ["seed", "warm", "clear", "stats", "keys", "purge"] {
        let help = Command::new(CACHECTL)
            .args([command, "--help"])
            .output()
            .expect("run");
        assert!(help.status.success(), "cachectl {command} --help");
        assert!(String::from_utf8_lossy(&help.stdout).contains(&format!("cachectl {command}")));
    }
    let refused = Command::new(SERVICE).arg("--bogus").output().expect("run");
    assert_eq!(refused.status.code(), Some(2));
}

#[test]
fn json_log_format_writes_one_json_object_per_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(SERVICE)
        .current_dir(dir.path())
        .env("APP__PORT", "0")
        .env("APP__LOG_FORMAT", "json")
        .env("CACHE__BACKEND", "memory")
        .env("DATABASE__PATH", ":memory:")
        .env_remove("RUST_LOG")
        .env_remove("SETTINGS_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the service");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        let record: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
        assert!(record["ts"].as_str().is_some_and(|ts| ts.ends_with('Z')));
        assert!(record["level"].is_string() && record["target"].is_string());
        let message = record["message"].as_str().expect("message").to_string();
        seen.push(message.clone());
        if message.contains("listening") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.iter().any(|m| m.contains("listening")),
        "no startup line: {seen:?}"
    );
}

async fn app_with_cached_items() -> (TestApp, Vec<i64>) {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for name in ["lamp", "desk"] {
        let item = app.create_item(json!({"name": name, "price": 2.0})).await;
        let id = item["id"].as_i64().expect("id");
        app.get(&format!("/items/{id}")).await;
        app.get(&format!("/items/{id}")).await;
        ids.push(id);
    }
    (app, ids)
}

#[tokio::test]
async fn cachectl_stats_prints_a_table_and_watch_prints_rates() {
    let (app, _) = app_with_cached_items().await;
    let run = cachectl(&app, &["stats"]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stdout.starts_with("backend   redis: healthy"),
        "{}",
        run.stdout
    );
    let items = run
        .stdout
        .lines()
        .find(|line| line.starts_with("items "))
        .expect("an items row");
    let cells: Vec<&str> = items.split_whitespace().collect();
    assert_eq!(&cells[1..5], ["2", "2", "0", "50.0%"], "{items}");

    let watch = cachectl(
        &app,
        &["stats", "--watch", "--interval", "0.2", "--count", "2"],
    )
    .await;
    assert_eq!(watch.code, Some(0), "{}", watch.stderr);
    assert_eq!(
        watch.stdout.matches("per second over the last").count(),
        2,
        "{}",
        watch.stdout
    );
    assert!(watch.stdout.contains("hit ratio"), "{}", watch.stdout);
}

#[tokio::test]
async fn cachectl_keys_lists_entries_and_purge_dry_runs_before_purging() {
    let (app, ids) = app_with_cached_items().await;
    let listing = cachectl(&app, &["keys", "--namespace", "items"]).await;
    assert_eq!(listing.code, Some(0), "{}", listing.stderr);
    let entry = format!("GET:/items/{}", ids[0]);
    assert!(listing.stdout.contains(&entry), "{}", listing.stdout);
    assert!(
        listing
            .stdout
            .trim_end()
            .ends_with("2 entries, end of the listing"),
        "{}",
        listing.stdout
    );
    let path = format!("/items/{}", ids[0]);

    let dry = cachectl(
        &app,
        &[
            "purge",
            "--namespace",
            "items",
            "--key",
            &entry,
            "--dry-run",
        ],
    )
    .await;
    assert_eq!(dry.code, Some(0), "{}", dry.stderr);
    assert!(
        dry.stdout
            .contains(&format!("would purge key {entry} of items (live)")),
        "{}",
        dry.stdout
    );
    assert!(dry.stdout.contains("dry run: nothing changed"));
    assert_eq!(x_cache(&app.get(&path).await), "HIT");

    let purged = cachectl(&app, &["purge", "--namespace", "items", "--key", &entry]).await;
    assert_eq!(purged.code, Some(0), "{}", purged.stderr);
    assert!(purged.stdout.contains(&format!("purged key {entry}")));
    assert_eq!(x_cache(&app.get(&path).await), "MISS");

    let whole = cachectl(
        &app,
        &["purge", "--namespace", "items", "--whole", "--dry-run"],
    )
    .await;
    assert!(
        whole.stdout.contains("would purge namespace items: "),
        "{}",
        whole.stdout
    );
    let unclear = cachectl(&app, &["purge", "--namespace", "items"]).await;
    assert_eq!(unclear.code, Some(2));
    assert!(unclear.stderr.contains("--whole"), "{}", unclear.stderr);
}
