//! The operator scripts (`scripts/seed`, `scripts/warm`, `scripts/clear`) against a real service
//! and a real redis-server: what each does to the items and the cache, and how each fails.
//!
//! The wrappers run with `CACHECTL` pointing at the `cachectl` this test build made, so the
//! scripts are exercised as operators run them without a release build per test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use warp::Filter;
use warp_redis_cache::Namespace;
use warp_redis_cache_service::items::ListQuery;

use crate::support::{free_port, redis_manager, spawn_app, spawn_app_with, x_cache, TestApp};

const TOKEN: &str = "operator-s3cret";

/// What a script did.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    /// The number on the summary line `name:` (`created`, `skipped`, `failed`, `warmed`).
    fn count(&self, name: &str) -> usize {
        let prefix = format!("{name}:");
        self.stdout
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|number| number.parse().ok())
            .unwrap_or_else(|| panic!("no {name:?} in the summary:\n{}", self.stdout))
    }

    fn assert_code(&self, code: i32) {
        assert_eq!(
            self.code,
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
    }
}

/// Runs `scripts/<script> args...` off the runtime (the app under test runs on it), with a
/// clean environment for the settings it reads.
async fn script(script: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(script);
    let mut command = Command::new(path);
    command
        .args(args)
        .env("CACHECTL", env!("CARGO_BIN_EXE_cachectl"))
        .env_remove("BASE_URL")
        .env_remove("ADMIN__TOKEN")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let output = command.output().expect("run the script");
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            took: started.elapsed(),
        }
    })
    .await
    .expect("the script's thread")
}

/// A service whose admin routes need [`TOKEN`].
async fn app_with_token() -> TestApp {
    spawn_app_with(|settings| settings.admin.token = Some(TOKEN.into())).await
}

async fn item_count(app: &TestApp) -> u64 {
    let query = ListQuery {
        limit: 1,
        ..ListQuery::default()
    };
    app.store.list(query).await.expect("list items").total
}

/// Writes `records` one per line.
fn write_ndjson(dir: &Path, records: &[serde_json::Value]) -> PathBuf {
    let path = dir.join("items.ndjson");
    let lines: Vec<String> = records.iter().map(ToString::to_string).collect();
    std::fs::write(&path, lines.join("\n") + "\n").expect("write the file");
    path
}

fn products(count: usize) -> Vec<serde_json::Value> {
    (1..=count)
        .map(|n| json!({"name": format!("Walnut Desk Lamp No. {n}"), "price": 10.0 + n as f64, "tags": ["home"]}))
        .collect()
}

fn text(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}

#[tokio::test]
async fn seeding_twice_creates_each_item_once_then_skips_them_all() {
    let app = app_with_token().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write_ndjson(dir.path(), &products(25));
    let args = [text(&file), "--base-url", &app.base, "--token", TOKEN];

    let first = script("seed", &args, &[]).await;
    first.assert_code(0);
    assert_eq!((first.count("created"), first.count("skipped")), (25, 0));
    assert_eq!(
        first.count("warmed"),
        25 + 1,
        "each item and the one list page"
    );
    assert!(
        first.stdout.contains("hit rate: 0."),
        "known with the token: {}",
        first.stdout
    );
    assert_eq!(item_count(&app).await, 25);
    assert_eq!(x_cache(&app.get("/items/25").await), "HIT", "seed warms");

    let second = script("seed", &args, &[]).await;
    second.assert_code(0);
    assert_eq!((second.count("created"), second.count("skipped")), (0, 25));
    assert_eq!(second.count("failed"), 0);
    assert_eq!(item_count(&app).await, 25, "no duplicates");
}

#[tokio::test]
async fn warm_makes_later_reads_cache_hits_without_writing() {
    let app = spawn_app().await;
    for n in 1..=12 {
        app.create_item(json!({"name": format!("Mug {n}"), "price": 4.5}))
            .await;
    }

    let some = script("warm", &["--ids", "1,2", "--base-url", &app.base], &[]).await;
    some.assert_code(0);
    assert_eq!(some.count("warmed"), 2 + 1, "two items and the list page");
    assert_eq!(x_cache(&app.get("/items/2").await), "HIT");
    assert_eq!(x_cache(&app.get("/items/3").await), "MISS", "not asked for");

    let all = script("warm", &[], &[("BASE_URL", &app.base)]).await;
    all.assert_code(0);
    assert_eq!(all.count("warmed"), 12 + 1);
    assert!(
        all.stdout.contains("hit rate: 0."),
        "loopback may read stats"
    );
    for id in 1..=12 {
        let response = app.get(&format!("/items/{id}")).await;
        assert_eq!(x_cache(&response), "HIT", "item {id}");
    }
    assert_eq!(x_cache(&app.get("/items?limit=100&offset=0").await), "HIT");
    assert_eq!(item_count(&app).await, 12, "warm writes nothing");
}

#[tokio::test]
async fn clearing_a_namespace_removes_only_that_namespace() {
    let app = app_with_token().await;
    app.create_item(json!({"name": "Lamp", "price": 12.5}))
        .await;
    app.get("/items/1").await;
    assert_eq!(x_cache(&app.get("/items/1").await), "HIT");
    let cache = redis_manager(app.redis()).await;
    let greetings = Namespace::new("greetings").expect("valid namespace");
    cache
        .set(&greetings, "hello", &json!("hi"), None)
        .await
        .expect("plant a key in another namespace");

    let run = script(
        "clear",
        &[
            "--namespace",
            "items",
            "--base-url",
            &app.base,
            "--token",
            TOKEN,
        ],
        &[],
    )
    .await;
    run.assert_code(0);
    assert!(
        run.stdout.starts_with("cleared namespace items: "),
        "{}",
        run.stdout
    );
    assert_eq!(x_cache(&app.get("/items/1").await), "MISS");
    let kept: Option<serde_json::Value> = cache.get(&greetings, "hello").await.expect("get");
    assert_eq!(kept, Some(json!("hi")), "other namespaces stay");
}

#[tokio::test]
async fn clearing_all_removes_every_key_under_the_prefix_and_nothing_else() {
    let app = app_with_token().await;
    app.create_item(json!({"name": "Lamp", "price": 12.5}))
        .await;
    app.get("/items/1").await;
    let cache = redis_manager(app.redis()).await;
    let greetings = Namespace::new("greetings").expect("valid namespace");
    cache
        .set(&greetings, "hello", &json!("hi"), None)
        .await
        .expect("plant");
    let _: () = app
        .redis()
        .command(redis::cmd("SET").arg("someone-else:key").arg("1"));

    let env = [("BASE_URL", app.base.as_str()), ("ADMIN__TOKEN", TOKEN)];
    let run = script("clear", &["--all"], &env).await;
    run.assert_code(0);
    assert!(
        run.stdout
            .starts_with("cleared everything under the prefix: "),
        "{}",
        run.stdout
    );
    let gone: Option<serde_json::Value> = cache.get(&greetings, "hello").await.expect("get");
    assert_eq!(gone, None);
    assert_eq!(x_cache(&app.get("/items/1").await), "MISS");
    let foreign: Option<String> = app
        .redis()
        .command(redis::cmd("GET").arg("someone-else:key"));
    assert_eq!(
        foreign.as_deref(),
        Some("1"),
        "keys outside the prefix stay"
    );
}

#[tokio::test]
async fn a_wrong_or_missing_token_fails_with_a_message_about_the_token() {
    let app = app_with_token().await;
    let cache = redis_manager(app.redis()).await;
    let greetings = Namespace::new("greetings").expect("valid namespace");
    cache
        .set(&greetings, "hello", &json!("hi"), None)
        .await
        .expect("plant");

    let wrong = ["--all", "--base-url", &app.base, "--token", "not-it"];
    let missing = ["--namespace", "greetings", "--base-url", &app.base];
    for args in [&wrong[..], &missing[..]] {
        let run = script("clear", args, &[]).await;
        run.assert_code(1);
        assert!(run.stderr.contains("401 Unauthorized"), "{}", run.stderr);
        assert!(
            run.stderr.contains("--token or ADMIN__TOKEN"),
            "{}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
    let kept: Option<serde_json::Value> = cache.get(&greetings, "hello").await.expect("get");
    assert_eq!(kept, Some(json!("hi")), "nothing was cleared");
}

#[tokio::test]
async fn an_unreachable_service_fails_fast_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write_ndjson(dir.path(), &products(3));
    let base = format!("http://127.0.0.1:{}", free_port());
    let seed = [text(&file), "--base-url", &base, "--token", TOKEN];
    let warm = ["--base-url", &base, "--token", TOKEN];
    let clear = ["--all", "--base-url", &base, "--token", TOKEN];
    let (seed, warm, clear) = tokio::join!(
        script("seed", &seed, &[]),
        script("warm", &warm, &[]),
        script("clear", &clear, &[]),
    );
    for run in [seed, warm, clear] {
        run.assert_code(1);
        let expected = format!("cannot reach the service at {base}");
        assert!(run.stderr.contains(&expected), "{}", run.stderr);
        assert!(run.took < Duration::from_secs(10), "took {:?}", run.took);
    }
}

#[tokio::test]
async fn one_malformed_record_is_reported_with_its_place_and_the_others_load() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut records = products(5);
    records[2] = json!({"name": "Cheap Lamp", "price": "cheap"});
    let ndjson = write_ndjson(dir.path(), &records);
    let run = script("seed", &[text(&ndjson), "--base-url", &app.base], &[]).await;
    run.assert_code(1);
    assert!(
        run.stderr.contains("line 3: price: invalid type"),
        "{}",
        run.stderr
    );
    assert_eq!((run.count("created"), run.count("failed")), (4, 1));
    assert_eq!(item_count(&app).await, 4);

    let array = dir.path().join("more.json");
    let more = json!([
        {"name": "Oak Bookends", "price": 40},
        {"name": "Brass Bookends", "price": 45},
        {"name": "Marble Bookends", "price": 50, "colour": "white"},
        {"name": "   ", "price": 5},
    ]);
    std::fs::write(&array, more.to_string()).expect("write");
    let run = script("seed", &[text(&array), "--base-url", &app.base], &[]).await;
    run.assert_code(1);
    assert!(
        run.stderr.contains("index 2: unknown field `colour`"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("index 3: name: must not be empty"),
        "{}",
        run.stderr
    );
    assert_eq!((run.count("created"), run.count("failed")), (2, 2));
    assert_eq!(item_count(&app).await, 6);
}

#[tokio::test]
async fn strict_mode_writes_nothing_when_any_record_is_malformed() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut records = products(5);
    records[2] = json!({"name": "Lamp", "price": 3, "tags": ["home", "home"]});
    let file = write_ndjson(dir.path(), &records);
    let run = script(
        "seed",
        &[text(&file), "--strict", "--base-url", &app.base],
        &[],
    )
    .await;
    run.assert_code(1);
    assert!(
        run.stderr.contains("line 3: tags: tag \"home\""),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("nothing was written"), "{}", run.stderr);
    assert_eq!(run.count("created"), 0);
    assert_eq!(item_count(&app).await, 0);
}

#[tokio::test]
async fn usage_errors_and_files_that_are_not_json_exit_2_before_any_request() {
    let dir = tempfile::tempdir().expect("temp dir");
    let csv = dir.path().join("items.csv");
    std::fs::write(&csv, "name,price\nLamp,12.5\n").expect("write");
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let cases: [(&str, Vec<&str>, &str); 4] = [
        ("seed", vec![text(&csv)], "is not an item file"),
        ("seed", vec!["/nonexistent/items.json"], "cannot read"),
        ("clear", vec![], "clear needs --namespace NS, or --all"),
        ("warm", vec!["--ids", "1,two"], "--ids"),
    ];
    for (name, mut args, needle) in cases {
        args.extend(["--base-url", nowhere.as_str()]);
        let run = script(name, &args, &[]).await;
        run.assert_code(2);
        assert!(run.stderr.contains(needle), "{name}: {}", run.stderr);
        assert!(
            !run.stderr.contains("cannot reach"),
            "no request was made: {}",
            run.stderr
        );
    }
}

/// A stand-in service whose clear route fails `failures` times with `status`, then succeeds.
async fn flaky_service(status: u16, failures: usize) -> (String, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let route = warp::path!("cache" / "clear" / String)
        .and(warp::post())
        .map(move |namespace: String| {
            let call = counter.fetch_add(1, Ordering::SeqCst);
            let status = if call < failures {
                warp::http::StatusCode::from_u16(status).expect("a status")
            } else {
                warp::http::StatusCode::OK
            };
            let body = json!({"namespace": namespace, "deleted": 1});
            warp::reply::with_status(warp::reply::json(&body), status)
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (base, calls)
}

#[tokio::test]
async fn transient_failures_are_retried_and_client_errors_are_not() {
    for (status, failures, retries, code, calls) in [
        (503, 2, "3", 0, 3),
        (429, 1, "3", 0, 2),
        (500, 5, "2", 1, 3),
        (400, 1, "3", 1, 1),
        (404, 1, "3", 1, 1),
    ] {
        let (base, counter) = flaky_service(status, failures).await;
        let args = [
            "--namespace",
            "items",
            "--base-url",
            &base,
            "--retries",
            retries,
        ];
        let run = script("clear", &args, &[]).await;
        run.assert_code(code);
        assert_eq!(counter.load(Ordering::SeqCst), calls, "status {status}");
    }
}

/// A stand-in item API whose first create answers 500, after storing the item when `stored`.
async fn item_api_failing_first_create(stored: bool) -> (String, Arc<AtomicUsize>) {
    let items = Arc::new(std::sync::Mutex::new(Vec::<serde_json::Value>::new()));
    let posts = Arc::new(AtomicUsize::new(0));
    let (listed, created, counter) = (Arc::clone(&items), Arc::clone(&items), Arc::clone(&posts));
    let list = warp::path!("items")
        .and(warp::get())
        .and(warp::query::<std::collections::HashMap<String, String>>())
        .map(move |query: std::collections::HashMap<String, String>| {
            let items = listed.lock().expect("lock").clone();
            let first_page = query.get("offset").is_none_or(|offset| offset == "0");
            let page = if first_page {
                items.clone()
            } else {
                Vec::new()
            };
            warp::reply::json(
                &json!({"items": page, "total": items.len(), "limit": 100, "offset": 0}),
            )
        });
    let create = warp::path!("items")
        .and(warp::post())
        .and(warp::body::json())
        .map(move |body: serde_json::Value| {
            let call = counter.fetch_add(1, Ordering::SeqCst);
            let mut items = created.lock().expect("lock");
            let item = json!({"id": items.len() + 1, "name": body["name"], "description": "",
                "price": body["price"], "tags": [], "created_at": "", "updated_at": ""});
            if call > 0 || stored {
                items.push(item.clone());
            }
            let status = if call == 0 { 500 } else { 201 };
            let status = warp::http::StatusCode::from_u16(status).expect("a status");
            warp::reply::with_status(warp::reply::json(&item), status)
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(warp::serve(list.or(create)).incoming(listener).run());
    (base, posts)
}

#[tokio::test]
async fn a_create_that_may_have_happened_is_looked_up_before_it_is_retried() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write_ndjson(dir.path(), &products(1));
    for (stored, posts_expected) in [(true, 1), (false, 2)] {
        let (base, posts) = item_api_failing_first_create(stored).await;
        let args = [text(&file), "--base-url", &base, "--pages", "0"];
        let run = script("seed", &args, &[]).await;
        // The stand-in serves no item reads, so warming fails: only the creates matter here.
        assert_eq!(run.count("created"), 1, "{}", run.stderr);
        assert_eq!(
            posts.load(Ordering::SeqCst),
            posts_expected,
            "stored: {stored}"
        );
    }
}

#[tokio::test]
async fn seeding_the_shipped_sample_creates_every_record() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/items.sample.json");
    let records: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&sample).expect("read")).expect("JSON");
    let app = spawn_app().await;
    let run = script("seed", &[text(&sample), "--base-url", &app.base], &[]).await;
    run.assert_code(0);
    assert_eq!(run.count("created"), records.len());
    assert_eq!(run.count("failed"), 0);
    assert_eq!(item_count(&app).await, records.len() as u64);
}
