//! What a newcomer meets first: `GET /`, `GET /health`, items as long as the body limit allows,
//! key listings that list entries (never metadata, never an empty page with a cursor), stats
//! whose names say what they count, and the dashboard's page.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{header, spawn_app, spawn_app_with};

#[tokio::test]
async fn root_names_the_service_and_links_to_health_openapi_and_the_dashboard() {
    let app = spawn_app().await;
    let response = app.get("/").await;
    assert_eq!(response.status(), 200);
    let root: Value = response.json().await.expect("JSON");
    assert_eq!(root["service"], "warp-redis-cache");
    assert_eq!(root["version"], env!("CARGO_PKG_VERSION"));
    for (link, path) in [
        ("health", "/health"),
        ("openapi", "/openapi.json"),
        ("dashboard", "/cache/dashboard"),
    ] {
        assert_eq!(root["links"][link], path, "{root}");
        assert_eq!(app.get(path).await.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn health_answers_like_the_original_and_reports_a_failing_cache_as_degraded() {
    let app = spawn_app().await;
    let healthy: Value = app.get("/health").await.json().await.expect("JSON");
    assert_eq!(healthy["status"], "healthy");
    assert_eq!(healthy["service"], "warp-redis-cache");
    assert_eq!(healthy["cache"]["backend"], "redis");
    assert_eq!(healthy["cache"]["healthy"], true);

    app.redis().stop();
    let response = app.get("/health").await;
    assert_eq!(response.status(), 200, "the service still serves");
    let degraded: Value = response.json().await.expect("JSON");
    assert_eq!(degraded["status"], "degraded");
    assert_eq!(degraded["cache"]["healthy"], false);
    assert!(degraded["cache"]["error"].is_string(), "{degraded}");
    assert_eq!(app.get("/health/ready").await.status(), 503);
    assert_eq!(app.get("/health/live").await.status(), 200);
}

#[tokio::test]
async fn an_item_with_a_long_description_is_accepted_when_it_fits_the_body_limit() {
    let app = spawn_app_with(|settings| settings.app.max_body_bytes = 64 * 1024).await;
    let description = "a long description. ".repeat(2_500); // 50,000 characters
    let item = app
        .create_item(json!({"name": "manual", "price": 1.0, "description": description}))
        .await;
    assert_eq!(item["description"].as_str().map(str::len), Some(50_000));

    let too_big = "x".repeat(70 * 1024);
    let response = app
        .send_json(
            Method::POST,
            "/items",
            &json!({"name": "too big", "price": 1.0, "description": too_big}),
        )
        .await;
    assert_eq!(response.status(), 413, "the body limit is the bound");
}

/// Every page of `GET /cache/keys` (admin from loopback), followed to the end.
async fn all_pages(app: &crate::support::TestApp, query: &str) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut cursor = 0u64;
    loop {
        let path = format!("/cache/keys?{query}&cursor={cursor}");
        let response = app.get(&path).await;
        assert_eq!(response.status(), 200, "{path}");
        let page: Value = response.json().await.expect("JSON");
        let keys = page["keys"].as_array().expect("keys").clone();
        cursor = page["next_cursor"].as_u64().expect("cursor");
        assert!(
            !keys.is_empty() || cursor == 0,
            "an empty page with a cursor: {path}"
        );
        pages.push(keys);
        if cursor == 0 {
            return pages;
        }
        assert!(pages.len() < 1000, "the listing does not end");
    }
}

#[tokio::test]
async fn key_listings_show_entries_only_and_never_an_empty_page_before_the_end() {
    let app = spawn_app().await;
    for name in ["a", "b", "c"] {
        let item = app
            .create_item(json!({"name": name, "price": 1.0, "tags": ["t"]}))
            .await;
        let path = format!("/items/{}", item["id"]);
        assert_eq!(app.get(&path).await.status(), 200);
    }
    // A sparse keyspace: thousands of other keys, so SCAN finds nothing of ours for many calls.
    let mut pipe = redis::pipe();
    for i in 0..5_000 {
        pipe.cmd("SET")
            .arg(format!("other-app:{i}"))
            .arg("x")
            .ignore();
    }
    let mut connection = app.redis().client().get_connection().expect("connection");
    pipe.query::<()>(&mut connection).expect("filler keys");
    let (_, records): (u64, Vec<String>) = app.redis().command(
        redis::cmd("SCAN")
            .arg(0)
            .arg("MATCH")
            .arg("*#*")
            .arg("COUNT")
            .arg(100_000),
    );
    assert!(
        !records.is_empty(),
        "generation/tag records exist to leave out"
    );

    for query in ["limit=2", "namespace=items&limit=1"] {
        let keys: BTreeSet<String> = all_pages(&app, query)
            .await
            .into_iter()
            .flatten()
            .map(|key| key["key"].as_str().expect("key").to_string())
            .collect();
        assert!(keys.iter().all(|key| !key.contains('#')), "{keys:?}");
        let item_entries = keys.iter().filter(|k| k.contains(":GET:/items/")).count();
        assert_eq!(item_entries, 3, "{query}: {keys:?}");
    }
    let pages = all_pages(&app, "namespace=items&prefix=GET:/items/2&limit=10").await;
    let found: Vec<Value> = pages.into_iter().flatten().collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["entry_key"], "GET:/items/2");
    let refused = app.get("/cache/keys?prefix=GET:").await;
    assert_eq!(refused.status(), 400, "a prefix needs a namespace");
}

#[tokio::test]
async fn stats_name_body_and_stored_bytes_and_count_stale_serves() {
    let app = spawn_app().await;
    let item = app.create_item(json!({"name": "pen", "price": 1.0})).await;
    app.get(&format!("/items/{}", item["id"])).await;
    let stats: Value = app.get("/cache/stats").await.json().await.expect("JSON");
    let body = stats["body_bytes"].as_u64().expect("body_bytes");
    let stored = stats["stored_bytes"].as_u64().expect("stored_bytes");
    assert!(body > 0 && stored > 0, "{stats}");
    assert!(stats["stale_serves"].is_u64(), "{stats}");
    assert!(stats.get("bytes_before_compression").is_none());
    assert!(stats["namespaces"]["items"]["stale_serves"].is_u64());
}

#[tokio::test]
async fn the_dashboard_page_and_script_are_served_with_a_policy_allowing_only_themselves() {
    let app = spawn_app().await;
    let page = app.get("/cache/dashboard").await;
    assert_eq!(page.status(), 200);
    assert!(header(&page, "content-type").starts_with("text/html"));
    let policy = header(&page, "content-security-policy");
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(policy.contains("connect-src 'self'"), "{policy}");
    assert!(!policy.contains("script-src 'self' 'unsafe"), "{policy}");
    let html = page.text().await.expect("text");
    assert!(html.contains(r#"<script src="/cache/dashboard.js">"#));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no outside resource"
    );
    let script = app.get("/cache/dashboard.js").await;
    assert_eq!(script.status(), 200);
    assert!(header(&script, "content-type").starts_with("text/javascript"));
    let code = script.text().await.expect("text");
    assert!(code.contains("sessionStorage") && !code.contains("localStorage"));
    assert!(
        !code.contains("innerHTML"),
        "client data is written as text only"
    );
}
