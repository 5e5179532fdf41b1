//! The L1 tier across instances: two services share one Redis; a write through one must reach
//! the other's L1 through pub/sub. Measures how long that takes (p50/p99 over many writes).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use warp_redis_cache_service::settings::Settings;

use crate::support::{
    app_settings, eventually, header, spawn_app_from, spawn_app_with, x_cache, RedisServer, TestApp,
};

/// A service on `redis` and the item database at `database` (shared by the instances).
async fn instance(redis: &RedisServer, database: &tempfile::TempDir, l1: bool) -> TestApp {
    let mut settings = app_settings(&redis.url());
    settings.database.path = database
        .path()
        .join("items.db")
        .to_string_lossy()
        .into_owned();
    if l1 {
        with_l1(&mut settings);
    }
    spawn_app_from(settings).await
}

/// Turns the L1 tier on in `settings`.
fn with_l1(settings: &mut Settings) {
    settings.cache.l1_max_bytes = 8 * 1024 * 1024;
    // Long enough that only an invalidation, never the L1 lifetime, can end an entry.
    settings.cache.l1_ttl_ms = 600_000;
}

async fn price_and_status(app: &TestApp, path: &str) -> (f64, String) {
    let response = app.get(path).await;
    let status = header(&response, "cache-status");
    let body: Value = response.json().await.expect("json");
    (body["price"].as_f64().expect("price"), status)
}

/// Reads `path` on `app` until it is answered from L1.
async fn until_local(app: &TestApp, path: &str) {
    let local = eventually(Duration::from_secs(5), || async {
        price_and_status(app, path).await.1.contains("detail=l1")
    })
    .await;
    assert!(local, "{path} never answered from L1");
}

/// Two instances on `redis` sharing one item database, with item 1 (price `price`) created
/// through the first. The temp dir must outlive them.
async fn pair(redis: &RedisServer, l1: bool, price: u32) -> (TestApp, TestApp, tempfile::TempDir) {
    let database = tempfile::tempdir().expect("temp dir");
    let writer = instance(redis, &database, l1).await;
    let reader = instance(redis, &database, l1).await;
    writer
        .create_item(json!({"name": "Lamp", "price": price}))
        .await;
    (writer, reader, database)
}

/// Sets item 1's price through `app`; asserts the write succeeded.
async fn set_price(app: &TestApp, price: usize) {
    let patched = app
        .send_json(Method::PATCH, "/items/1", &json!({"price": price}))
        .await;
    assert_eq!(patched.status(), 200, "PATCH price {price}");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_instance_reaches_the_other_ones_l1() {
    const WRITES: usize = 200;
    let redis = RedisServer::start();
    let (writer, reader, _database) = pair(&redis, true, 0).await;
    let mut windows = Vec::with_capacity(WRITES);
    for version in 1..=WRITES {
        until_local(&reader, "/items/1").await;
        set_price(&writer, version).await;
        let returned = Instant::now();
        loop {
            let (price, _) = price_and_status(&reader, "/items/1").await;
            if price == version as f64 {
                break;
            }
            assert!(
                returned.elapsed() < Duration::from_secs(2),
                "write {version} never reached the other instance"
            );
        }
        windows.push(returned.elapsed());
    }
    windows.sort();
    let (p50, p99, max) = (
        percentile(&windows, 0.5),
        percentile(&windows, 0.99),
        windows[windows.len() - 1],
    );
    eprintln!("L1 invalidation across instances over {WRITES} writes: p50 {p50:?}, p99 {p99:?}, max {max:?}");
    assert!(p99 < Duration::from_millis(100), "p99 {p99:?}");

    let stats: Value = reader.get("/cache/stats").await.json().await.expect("json");
    assert_eq!(stats["l1"]["live"], true, "{stats}");
    assert!(stats["l1"]["entries"].as_u64() >= Some(1), "{stats}");
    let metrics = reader.get("/metrics").await.text().await.expect("text");
    assert!(
        metrics.contains("cache_l1{measure=\"live\"} 1"),
        "{metrics}"
    );
    let without: Value = writer_without_l1_stats(&redis).await;
    assert!(without["l1"].is_null(), "{without}");
}

/// The stats of an instance without L1.
async fn writer_without_l1_stats(redis: &RedisServer) -> Value {
    let database = tempfile::tempdir().expect("temp dir");
    let app = instance(redis, &database, false).await;
    app.get("/cache/stats").await.json().await.expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_l1_a_write_is_read_back_by_every_instance_at_once() {
    let redis = RedisServer::start();
    let (writer, reader, _database) = pair(&redis, false, 0).await;
    for version in 1..=50 {
        reader.get("/items/1").await;
        set_price(&writer, version).await;
        let (price, status) = price_and_status(&reader, "/items/1").await;
        assert_eq!(
            price, version as f64,
            "stale read after write {version}: {status}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_subscription_turns_l1_off_and_forgets_it() {
    let redis = RedisServer::start();
    let (writer, reader, _database) = pair(&redis, true, 1).await;
    until_local(&reader, "/items/1").await;
    // Cut every subscription (the writer's too): invalidations published now reach nobody.
    let _: i64 = redis.command(redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("pubsub"));
    set_price(&writer, 2).await;
    let fresh = eventually(Duration::from_secs(2), || async {
        price_and_status(&reader, "/items/1").await.0 == 2.0
    })
    .await;
    assert!(
        fresh,
        "an L1 entry from before the outage was served after it"
    );
    // And L1 comes back.
    until_local(&reader, "/items/1").await;
}

#[tokio::test]
async fn an_l1_hit_answers_exactly_like_a_redis_hit() {
    let app = spawn_app_with(with_l1).await;
    // Over the 1 KiB compression threshold: stored gzip.
    let description = "a lamp that lights a desk ".repeat(70);
    for _ in 0..2 {
        app.create_item(json!({"name": "Lamp", "price": 1, "description": description}))
            .await;
    }
    let compared = [
        "content-type",
        "etag",
        "cache-control",
        "vary",
        "content-encoding",
        "x-cache",
    ];
    for (path, accept) in [("/items/1", None), ("/items/2", Some("gzip"))] {
        let headers: Vec<(&str, &str)> =
            accept.map(|a| ("accept-encoding", a)).into_iter().collect();
        assert_eq!(x_cache(&app.get_with(path, &headers).await), "MISS");
        let mut answers = Vec::new();
        for _ in 0..2 {
            let response = app.get_with(path, &headers).await;
            let status = header(&response, "cache-status");
            let picked: Vec<String> = compared
                .iter()
                .map(|name| header(&response, name))
                .collect();
            let body = response.bytes().await.expect("body");
            answers.push((status, picked, body));
        }
        let (redis_hit, l1_hit) = (&answers[0], &answers[1]);
        assert!(!redis_hit.0.contains("l1"), "{accept:?}: {}", redis_hit.0);
        assert!(l1_hit.0.contains("detail=l1"), "{accept:?}: {}", l1_hit.0);
        assert_eq!(redis_hit.1, l1_hit.1, "{accept:?}: headers differ");
        assert_eq!(redis_hit.2, l1_hit.2, "{accept:?}: bodies differ");
        let etag = l1_hit.1[1].clone();
        let mut conditional = headers.clone();
        conditional.push(("if-none-match", etag.as_str()));
        let revalidated = app.get_with(path, &conditional).await;
        assert_eq!(revalidated.status(), 304, "{accept:?}");
    }
}
