//! Freshness under every failure: after a write is acknowledged, no client of any instance is
//! served the old value. One test per way it used to break: a trailing slash, Redis restarting
//! from its own RDB file, a bust that failed on one instance while another reads, an `auto`
//! instance that started on its memory fallback, and caches downstream.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{
    app_settings, eventually, header, spawn_app, spawn_app_from, spawn_app_on, x_cache,
    RedisServer, TestApp,
};
use warp_redis_cache::BackendChoice;
use warp_redis_cache_service::settings::Settings;

fn lamp() -> Value {
    json!({"name": "Lamp", "price": 12.5, "tags": ["home"]})
}

/// Settings for one of several instances sharing `redis` and one SQLite file in `dir`.
fn instance_settings(redis: &RedisServer, dir: &tempfile::TempDir) -> Settings {
    let mut settings = app_settings(&redis.url());
    settings.database.path = dir.path().join("items.sqlite3").display().to_string();
    settings
}

async fn name_of(app: &TestApp, path: &str) -> (String, String) {
    let response = app.get(path).await;
    let cache = x_cache(&response);
    let body: Value = response.json().await.expect("json body");
    (body["name"].as_str().unwrap_or_default().to_string(), cache)
}

/// Reads `path` twice so the second answer comes from the cache.
async fn warm(app: &TestApp, path: &str) {
    app.get(path).await;
    assert_eq!(x_cache(&app.get(path).await), "HIT", "{path} is cached");
}

#[tokio::test]
async fn writes_through_a_trailing_slash_bust_the_item_they_changed() {
    let app = spawn_app().await;
    app.create_item(lamp()).await;
    app.create_item(json!({"name": "Desk", "price": 99})).await;

    warm(&app, "/items/1").await;
    let put = app
        .send_json(
            Method::PUT,
            "/items/1/",
            &json!({"name": "Lamp v2", "price": 13}),
        )
        .await;
    assert_eq!(put.status(), 200);
    assert_eq!(
        name_of(&app, "/items/1").await,
        ("Lamp v2".into(), "MISS".into())
    );

    warm(&app, "/items/1").await;
    let patch = app
        .send_json(Method::PATCH, "/items/1/", &json!({"name": "Lamp v3"}))
        .await;
    assert_eq!(patch.status(), 200);
    assert_eq!(name_of(&app, "/items/1").await.0, "Lamp v3");

    warm(&app, "/items/2").await;
    assert_eq!(app.delete("/items/2/").await.status(), 204);
    assert_eq!(
        app.get("/items/2").await.status(),
        404,
        "a deleted item is gone"
    );
}

#[tokio::test]
async fn every_spelling_of_an_item_path_is_one_entry() {
    let app = spawn_app().await;
    app.create_item(lamp()).await;

    assert_eq!(x_cache(&app.get("/items/1").await), "MISS");
    for spelling in ["/items/1", "/items/1/", "/items/01", "/items/%31"] {
        assert_eq!(
            name_of(&app, spelling).await,
            ("Lamp".into(), "HIT".into()),
            "{spelling}"
        );
    }
    let patch = app
        .send_json(Method::PATCH, "/items/01/", &json!({"name": "Lamp v2"}))
        .await;
    assert_eq!(patch.status(), 200);
    for spelling in ["/items/1", "/items/1/"] {
        assert_eq!(name_of(&app, spelling).await.0, "Lamp v2", "{spelling}");
    }
}

#[tokio::test]
async fn unknown_parameters_are_refused_and_one_page_has_one_entry() {
    let app = spawn_app().await;
    app.create_item(lamp()).await;
    let keys_before: u64 = app.redis().command(&redis::cmd("DBSIZE"));

    for n in 0..50 {
        let response = app.get(&format!("/items/1?r={n}")).await;
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.expect("json error");
        assert_eq!(body["error"]["code"], "bad_request", "{body}");
    }
    for method in [Method::PUT, Method::PATCH] {
        let response = app
            .send_json(
                method,
                "/items/1?x=1",
                &json!({"name": "Other", "price": 1}),
            )
            .await;
        assert_eq!(
            response.status(),
            400,
            "a write with a query changes nothing"
        );
    }
    assert_eq!(name_of(&app, "/items/1").await.0, "Lamp");

    assert_eq!(x_cache(&app.get("/items?limit=100").await), "MISS");
    for spelling in [
        "limit=0100",
        "offset=0&limit=100",
        "limit=%2B100&offset=00",
        "q=&limit=100",
    ] {
        let response = app.get(&format!("/items?{spelling}")).await;
        assert_eq!(
            (response.status().as_u16(), x_cache(&response)),
            (200, "HIT".into()),
            "{spelling}"
        );
    }
    let keys_after: u64 = app.redis().command(&redis::cmd("DBSIZE"));
    // The item and the page, plus their namespace and tag records: no entry per spelling.
    assert!(
        keys_after - keys_before <= 8,
        "{keys_before} -> {keys_after} keys"
    );
}

#[tokio::test]
async fn item_responses_make_downstream_caches_revalidate() {
    let app = spawn_app().await;
    app.create_item(lamp()).await;

    for _ in 0..2 {
        let response = app.get("/items/1").await;
        assert_eq!(header(&response, "cache-control"), "no-cache");
        let etag = header(&response, "etag");
        let revalidated = app.get_with("/items/1", &[("if-none-match", &etag)]).await;
        assert_eq!(revalidated.status(), 304);
    }
    app.send_json(Method::PATCH, "/items/1", &json!({"name": "Lamp v2"}))
        .await;
    let response = app.get("/items/1").await;
    let etag = header(&response, "etag");
    assert_eq!(
        response.json::<Value>().await.expect("json")["name"],
        "Lamp v2"
    );
    let stale_tag_check = app
        .get_with("/items/1", &[("if-none-match", "\"old\"")])
        .await;
    assert_eq!(
        stale_tag_check.status(),
        200,
        "an old ETag gets the new body"
    );
    assert_ne!(etag, "\"old\"");
}

#[tokio::test]
async fn a_bust_that_failed_lands_in_the_background_for_other_instances() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut writer_settings = instance_settings(&redis, &dir);
    writer_settings.redis.breaker_failures = 1;
    writer_settings.redis.breaker_cooldown_ms = 2_000;
    let writer = spawn_app_from(writer_settings).await;
    let reader = spawn_app_from(instance_settings(&redis, &dir)).await;
    writer.create_item(lamp()).await;
    warm(&reader, "/items/1").await;

    // A read through the writer while Redis is frozen opens its breaker: the write's bust is
    // then refused outright (not merely delayed in a socket).
    redis.pause();
    writer.get("/items/1").await;
    let stats: Value = writer
        .get("/cache/stats")
        .await
        .json()
        .await
        .expect("stats");
    assert_eq!(stats["backend"]["circuit"]["state"], "open", "{stats}");
    let patch = writer
        .send_json(Method::PATCH, "/items/1", &json!({"name": "Lamp v2"}))
        .await;
    assert_eq!(
        patch.status(),
        200,
        "the write stands while Redis is frozen"
    );
    let stats: Value = writer
        .get("/cache/stats")
        .await
        .json()
        .await
        .expect("stats");
    assert_eq!(stats["backend"]["pending_busts"], 1, "{stats}");
    redis.resume();

    // No request reaches the writer from here on: its background retry alone must land.
    let seen = eventually(Duration::from_secs(10), || async {
        name_of(&reader, "/items/1").await.0 == "Lamp v2"
    })
    .await;
    assert!(
        seen,
        "the other instance still serves the value from before the write"
    );
    let settled = eventually(Duration::from_secs(5), || async {
        let stats: Value = writer
            .get("/cache/stats")
            .await
            .json()
            .await
            .expect("stats");
        stats["backend"]["pending_busts"] == 0
    })
    .await;
    assert!(settled, "the writer still counts a pending bust");
    let metrics = writer.get("/metrics").await.text().await.expect("metrics");
    assert!(metrics.contains("\ncache_pending_busts 0\n"), "{metrics}");
}

#[tokio::test]
async fn redis_restarted_from_its_rdb_file_does_not_serve_busted_entries() {
    let app = spawn_app_on(RedisServer::start_persistent()).await;
    app.create_item(lamp()).await;
    warm(&app, "/items/1").await;

    let saved: String = app.redis().command(&redis::cmd("SAVE"));
    assert_eq!(saved, "OK");
    let patch = app
        .send_json(Method::PATCH, "/items/1", &json!({"name": "Lamp v2"}))
        .await;
    assert_eq!(patch.status(), 200);
    assert_eq!(name_of(&app, "/items/1").await.0, "Lamp v2");

    app.redis().restart(); // SIGKILL, then start again on the same data directory.
    let restored: u64 = app.redis().command(&redis::cmd("DBSIZE"));
    assert!(restored > 0, "the RDB file was loaded");
    let answered = eventually(Duration::from_secs(5), || async {
        let (name, cache) = name_of(&app, "/items/1").await;
        assert_eq!(
            name, "Lamp v2",
            "served the value from before the write ({cache})"
        );
        cache != "BYPASS"
    })
    .await;
    assert!(answered, "the cache is in use again after the restart");
    assert_eq!(
        name_of(&app, "/items/1").await,
        ("Lamp v2".into(), "HIT".into())
    );
}

#[tokio::test]
async fn an_auto_instance_moves_to_redis_when_it_answers_and_sees_other_writes() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    redis.stop();
    let mut auto_settings = instance_settings(&redis, &dir);
    auto_settings.cache.backend = BackendChoice::Auto;
    let auto = spawn_app_from(auto_settings).await;
    auto.create_item(lamp()).await;
    warm(&auto, "/items/1").await;
    let ready: Value = auto.get("/health/ready").await.json().await.expect("json");
    assert_eq!(
        (ready["status"].as_str(), ready["backend"].as_str()),
        (Some("degraded"), Some("memory")),
        "{ready}"
    );

    redis.restart();
    let switched = eventually(Duration::from_secs(5), || async {
        let ready: Value = auto.get("/health/ready").await.json().await.expect("json");
        ready["backend"] == "redis" && ready["status"] == "ready"
    })
    .await;
    assert!(switched, "the auto instance never moved to Redis");

    let other = spawn_app_from(instance_settings(&redis, &dir)).await;
    let patch = other
        .send_json(Method::PATCH, "/items/1", &json!({"name": "Lamp v2"}))
        .await;
    assert_eq!(patch.status(), 200);
    assert_eq!(name_of(&auto, "/items/1").await.0, "Lamp v2");
}

#[tokio::test]
async fn a_client_sending_a_write_slowly_makes_no_instance_bust_the_namespace() {
    use std::io::Write;
    use warp_redis_cache::admin::WRITE_INTENT_SWEEP_INTERVAL as SWEEP_INTERVAL;
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = instance_settings(&redis, &dir);
    settings.cache.write_intent_grace_ms = 100;
    let writer = spawn_app_from(settings.clone()).await;
    let reader = spawn_app_from(settings).await;
    writer.create_item(lamp()).await;
    warm(&reader, "/items/1").await;

    // A POST whose body never comes, held open on the writer: its intent is recorded.
    let address = writer.base.trim_start_matches("http://").to_string();
    let mut slow = std::net::TcpStream::connect(&address).expect("connect");
    slow.write_all(
        b"POST /items HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{",
    )
    .expect("send the headers");
    let intents = || -> u64 { redis.command(redis::cmd("HLEN").arg("wrc#intent:items")) };
    let recorded = eventually(Duration::from_secs(5), || async { intents() == 1 }).await;
    assert!(recorded, "the slow write's intent was never recorded");

    // Past the grace, two sweeps of the reader see the intent: its owner is alive, so neither
    // replays it.
    tokio::time::sleep(SWEEP_INTERVAL * 2 + Duration::from_millis(200)).await;
    assert_eq!(
        name_of(&reader, "/items/1").await,
        ("Lamp".into(), "HIT".into())
    );
    assert_eq!(intents(), 1, "the live write's intent is kept");
    drop(slow);
}

#[tokio::test]
async fn an_auto_instance_keeps_its_own_fallback_writes_when_it_moves_to_redis() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let other = spawn_app_from(instance_settings(&redis, &dir)).await;
    other.create_item(lamp()).await;
    warm(&other, "/items/1").await;

    // Redis frozen with the entry in it: the auto instance starts on its memory fallback and
    // takes a write there, which Redis never sees.
    redis.pause();
    let mut auto_settings = instance_settings(&redis, &dir);
    auto_settings.cache.backend = BackendChoice::Auto;
    let auto = spawn_app_from(auto_settings).await;
    let patch = auto
        .send_json(Method::PATCH, "/items/1", &json!({"name": "Lamp v2"}))
        .await;
    assert_eq!(patch.status(), 200);
    redis.resume();

    let switched = eventually(Duration::from_secs(5), || async {
        let ready: Value = auto.get("/health/ready").await.json().await.expect("json");
        ready["backend"] == "redis"
    })
    .await;
    assert!(switched, "the auto instance never moved to Redis");
    assert_eq!(name_of(&auto, "/items/1").await.0, "Lamp v2");
    let everywhere = eventually(Duration::from_secs(5), || async {
        name_of(&other, "/items/1").await.0 == "Lamp v2"
    })
    .await;
    assert!(everywhere, "the fallback write's bust never reached Redis");
}
