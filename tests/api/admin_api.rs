//! The cache admin routes, health, metrics, OpenAPI and the headers every response carries.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Value};
use warp::Filter;
use warp_redis_cache::{CacheManager, Namespace};
use warp_redis_cache_service::routes::admin;
use warp_redis_cache_service::routes::auth::AdminAccess;

use crate::support::{header, redis_manager, spawn_app, spawn_app_with, RedisServer, TestApp};

const TOKEN: &str = "s3cret-token";

async fn app_with_token() -> TestApp {
    spawn_app_with(|settings| settings.admin.token = Some(TOKEN.into())).await
}

async fn admin_call(app: &TestApp, method: Method, path: &str) -> reqwest::Response {
    let auth = format!("Bearer {TOKEN}");
    app.request(method, path, &[("authorization", &auth)]).await
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("JSON body")
}

fn redis_keys(redis: &RedisServer) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, page): (u64, Vec<String>) =
            redis.command(redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(1000));
        keys.extend(page);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

#[tokio::test]
async fn stats_count_per_namespace_and_report_the_backend_and_reset_zeroes_them() {
    let app = app_with_token().await;
    app.create_item(json!({"name": "Lamp", "price": 1})).await;
    app.get("/items/1").await;
    app.get("/items/1").await;
    let stats = json_of(admin_call(&app, Method::GET, "/cache/stats").await).await;
    assert_eq!(stats["backend"]["kind"], "redis");
    assert_eq!(stats["backend"]["healthy"], true);
    assert_eq!(stats["hits"], 1);
    assert_eq!(stats["misses"], 1);
    assert_eq!(stats["namespaces"]["items"]["hits"], 1);
    assert_eq!(stats["hit_rate"], 0.5);
    assert!(stats["stored_bytes"].as_u64().is_some_and(|b| b > 0));
    assert!(stats["uptime_secs"].as_f64().is_some());

    let reset = json_of(admin_call(&app, Method::POST, "/cache/stats/reset").await).await;
    assert_eq!(reset["hits"], 0);
    assert_eq!(reset["namespaces"], json!({}));
}

#[tokio::test]
async fn ping_answers_200_and_503_with_redis_stopped() {
    let app = app_with_token().await;
    let ok = admin_call(&app, Method::GET, "/cache/ping").await;
    assert_eq!(ok.status(), 200);
    assert!(json_of(ok).await["latency_ms"].as_f64().is_some());
    assert_eq!(app.get("/health/ready").await.status(), 200);

    app.redis().stop();
    let down = admin_call(&app, Method::GET, "/cache/ping").await;
    assert_eq!(down.status(), 503);
    assert_eq!(json_of(down).await["error"]["code"], "unavailable");
    assert_eq!(app.get("/health/ready").await.status(), 503);
    assert_eq!(app.get("/health/live").await.status(), 200);
    let stats = json_of(admin_call(&app, Method::GET, "/cache/stats").await).await;
    assert_eq!(stats["backend"]["healthy"], false);
    for (method, path) in [
        (Method::DELETE, "/cache/clear"),
        (Method::POST, "/cache/clear/items"),
        (Method::GET, "/cache/keys"),
    ] {
        let response = admin_call(&app, method.clone(), path).await;
        assert_eq!(response.status(), 503, "{method} {path}");
        assert_eq!(json_of(response).await["error"]["code"], "unavailable");
    }
}

#[tokio::test]
async fn clear_all_deletes_exactly_the_keys_under_the_prefix() {
    let app = app_with_token().await;
    app.create_item(json!({"name": "Lamp", "price": 1})).await;
    app.get("/items/1").await;
    app.get("/items").await;
    let outsiders = ["other:items:1", "wrcx:items:GET:/items/1", "wrc", "plain"];
    for key in outsiders {
        let _: () = app
            .redis()
            .command(redis::cmd("SET").arg(key).arg("keep me"));
    }
    let ours = redis_keys(app.redis())
        .into_iter()
        .filter(|k| k.starts_with("wrc:"))
        .count();
    assert!(
        ours >= 3,
        "expected entries and a generation key, found {ours}"
    );

    let cleared = json_of(admin_call(&app, Method::DELETE, "/cache/clear").await).await;
    assert_eq!(cleared["deleted"], ours as u64);
    let left = redis_keys(app.redis());
    // The instance's own records (`wrc#lineage`: which Redis process the data was checked
    // against; `wrc#alive:<instance>`: its heartbeat) are not entries: clears leave them, so a
    // clear is never mistaken for a restart.
    assert!(left.contains("wrc#lineage"), "{left:?}");
    let left: BTreeSet<String> = left
        .into_iter()
        .filter(|k| !k.starts_with("wrc#"))
        .collect();
    assert_eq!(left, outsiders.iter().map(|k| k.to_string()).collect());
}

#[tokio::test]
async fn clear_namespace_deletes_only_that_namespace_and_rejects_invalid_names() {
    let app = app_with_token().await;
    let cache = redis_manager(app.redis()).await;
    for ns in ["a", "ab", "a-b"] {
        for key in ["1", "2"] {
            cache
                .set(&Namespace::new(ns).expect("valid"), key, &1, None)
                .await
                .expect("set");
        }
    }
    let cleared = json_of(admin_call(&app, Method::POST, "/cache/clear/a").await).await;
    assert_eq!(cleared, json!({"namespace": "a", "deleted": 2}));
    let left: BTreeSet<String> = redis_keys(app.redis())
        .into_iter()
        .filter(|k| !k.contains("#gen") && !k.starts_with("wrc#"))
        .collect();
    let expected = ["wrc:ab:1", "wrc:ab:2", "wrc:a-b:1", "wrc:a-b:2"];
    assert_eq!(left, expected.iter().map(|k| k.to_string()).collect());
    for bad in ["a*", "a%3F", "%5Bab%5D", "x".repeat(65).as_str()] {
        let response = admin_call(&app, Method::POST, &format!("/cache/clear/{bad}")).await;
        assert_eq!(response.status(), 400, "{bad}");
        assert_eq!(json_of(response).await["error"]["code"], "bad_request");
    }
    assert_eq!(
        redis_keys(app.redis())
            .into_iter()
            .filter(|k| !k.contains("#gen") && !k.starts_with("wrc#"))
            .count(),
        4
    );
}

#[tokio::test]
async fn keys_are_listed_page_by_page_with_ttl_and_size() {
    let app = app_with_token().await;
    let cache: CacheManager = redis_manager(app.redis()).await;
    let bulk = Namespace::new("bulk").expect("valid");
    for i in 0..250 {
        cache
            .set(&bulk, &format!("k{i}"), &i, None)
            .await
            .expect("set");
    }
    cache
        .set(&Namespace::new("other").expect("valid"), "x", &1, None)
        .await
        .expect("set");

    let mut seen = BTreeSet::new();
    let mut cursor = 0u64;
    let mut pages = 0;
    loop {
        let path = format!("/cache/keys?namespace=bulk&limit=100&cursor={cursor}");
        let page = json_of(admin_call(&app, Method::GET, &path).await).await;
        for key in page["keys"].as_array().expect("keys") {
            assert_eq!(key["namespace"], "bulk");
            assert!(key["ttl_ms"].as_u64().is_some_and(|ms| ms > 290_000));
            assert!(key["size_bytes"].as_u64().is_some_and(|size| size > 0));
            seen.insert(key["entry_key"].as_str().expect("entry key").to_string());
        }
        pages += 1;
        cursor = page["next_cursor"].as_u64().expect("cursor");
        if cursor == 0 {
            break;
        }
        assert!(pages < 50, "listing does not end");
    }
    assert!(pages >= 2, "250 keys fit in one page of 100?");
    assert_eq!(seen, (0..250).map(|i| format!("k{i}")).collect());
    for bad in [
        "/cache/keys?limit=0",
        "/cache/keys?limit=5000",
        "/cache/keys?bogus=1",
        "/cache/keys?namespace=a*",
    ] {
        assert_eq!(
            admin_call(&app, Method::GET, bad).await.status(),
            400,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn one_entry_can_be_inspected_and_deleted() {
    let app = app_with_token().await;
    app.create_item(json!({"name": "Lamp", "price": 1})).await;
    app.get("/items/1").await;
    for path in [
        "/cache/entries/items/GET:/items/1",
        "/cache/entries/items/GET%3A%2Fitems%2F1",
    ] {
        let entry = json_of(admin_call(&app, Method::GET, path).await).await;
        assert_eq!(entry["key"], "wrc:items:GET:/items/1");
        assert_eq!(entry["live"], true);
        assert_eq!(entry["meta"]["s"], 200);
        let body: Value =
            serde_json::from_str(entry["body"].as_str().expect("body")).expect("json");
        assert_eq!(body["name"], "Lamp");
    }
    let deleted =
        json_of(admin_call(&app, Method::DELETE, "/cache/entries/items/GET:/items/1").await).await;
    assert_eq!(deleted["deleted"], true);
    let missing = admin_call(&app, Method::GET, "/cache/entries/items/GET:/items/1").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(app.get("/items/1").await.headers()["x-cache"], "MISS");
}

#[tokio::test]
async fn admin_routes_need_the_right_bearer_token() {
    let app = app_with_token().await;
    let routes = [
        (Method::GET, "/cache/stats"),
        (Method::POST, "/cache/stats/reset"),
        (Method::GET, "/cache/ping"),
        (Method::DELETE, "/cache/clear"),
        (Method::POST, "/cache/clear/items"),
        (Method::GET, "/cache/keys"),
        (Method::GET, "/cache/entries/items/x"),
        (Method::DELETE, "/cache/entries/items/x"),
    ];
    for (method, path) in routes {
        let none = app.request(method.clone(), path, &[]).await;
        assert_eq!(none.status(), 401, "{method} {path}");
        assert!(header(&none, "www-authenticate").starts_with("Bearer"));
        assert_eq!(json_of(none).await["error"]["code"], "unauthorized");
        let wrong = app
            .request(
                method.clone(),
                path,
                &[("authorization", "Bearer s3cret-tokem")],
            )
            .await;
        assert_eq!(wrong.status(), 401, "{method} {path}");
        let right = admin_call(&app, method.clone(), path).await;
        assert!(
            right.status() == 200 || right.status() == 404,
            "{method} {path}: {}",
            right.status()
        );
    }
    let unknown = app.request(Method::GET, "/cache/nonexistent", &[]).await;
    assert_eq!(unknown.status(), 404, "a wrong path must be 404, not 401");
}

#[tokio::test]
async fn without_a_token_only_loopback_clients_are_served() {
    let app = spawn_app().await;
    assert_eq!(
        app.get("/cache/stats").await.status(),
        200,
        "loopback client refused"
    );

    let cache = redis_manager(app.redis()).await;
    let routes = admin::routes(cache, AdminAccess::from_token(None))
        .recover(warp_redis_cache_service::error::handle_rejection);
    for (remote, status) in [
        ("10.1.2.3:4000", 403),
        ("[2001:db8::1]:4000", 403),
        ("127.0.0.1:4000", 200),
        ("[::1]:4000", 200),
    ] {
        let response = warp::test::request()
            .path("/cache/stats")
            .remote_addr(remote.parse().expect("socket address"))
            .reply(&routes)
            .await;
        assert_eq!(response.status(), status, "{remote}");
    }
}

#[tokio::test]
async fn every_response_carries_security_headers_and_a_request_id() {
    let app = spawn_app_with(|settings| settings.app.hsts_max_age_secs = 31_536_000).await;
    let mut ids = BTreeSet::new();
    for path in ["/items", "/items/999", "/nope", "/health/live", "/metrics"] {
        let response = app.get(path).await;
        assert_eq!(
            header(&response, "x-content-type-options"),
            "nosniff",
            "{path}"
        );
        assert_eq!(header(&response, "x-frame-options"), "DENY");
        assert_eq!(header(&response, "referrer-policy"), "no-referrer");
        assert!(header(&response, "content-security-policy").contains("default-src 'none'"));
        assert!(header(&response, "strict-transport-security").starts_with("max-age=31536000"));
        let id = header(&response, "x-request-id");
        assert_eq!(id.len(), 32, "{path}: {id}");
        ids.insert(id);
    }
    assert_eq!(ids.len(), 5, "request ids repeat");
    let echoed = app
        .get_with("/health/live", &[("x-request-id", "trace-42.a_b")])
        .await;
    assert_eq!(header(&echoed, "x-request-id"), "trace-42.a_b");
    let replaced = app
        .get_with("/health/live", &[("x-request-id", "bad id!")])
        .await;
    assert_eq!(header(&replaced, "x-request-id").len(), 32);

    let plain = spawn_app().await;
    assert_eq!(
        header(
            &plain.get("/health/live").await,
            "strict-transport-security"
        ),
        ""
    );
}

/// Parses Prometheus text: every sample line is `name{labels} value` with a numeric value.
fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {line:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}"));
            let name_end = series.find('{').unwrap_or(series.len());
            let name = &series[..name_end];
            assert!(
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "bad metric name in {line:?}"
            );
            if name_end < series.len() {
                assert!(series.ends_with('}'), "unterminated labels in {line:?}");
            }
            (series.to_string(), value)
        })
        .collect()
}

fn sample(samples: &[(String, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(s, _)| s == series)
        .map_or(0.0, |(_, v)| *v)
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_move_with_requests() {
    let app = spawn_app().await;
    app.create_item(json!({"name": "Lamp", "price": 1})).await;
    let before = parse_prometheus(&app.get("/metrics").await.text().await.expect("text"));
    for _ in 0..3 {
        app.get("/items/1").await;
    }
    app.get("/items/abc").await;
    let response = app.get("/metrics").await;
    assert!(header(&response, "content-type").starts_with("text/plain"));
    let after = parse_prometheus(&response.text().await.expect("text"));

    let item_ok = r#"http_requests_total{method="GET",route="/items/{id}",status="200"}"#;
    assert_eq!(sample(&after, item_ok) - sample(&before, item_ok), 3.0);
    let item_400 = r#"http_requests_total{method="GET",route="/items/{id}",status="400"}"#;
    assert_eq!(sample(&after, item_400) - sample(&before, item_400), 1.0);
    let latency =
        r#"http_request_duration_seconds_count{method="GET",route="/items/{id}",status="200"}"#;
    assert_eq!(sample(&after, latency), 3.0);
    let hits = r#"cache_hits_total{namespace="items"}"#;
    assert_eq!(sample(&after, hits) - sample(&before, hits), 2.0);
    assert_eq!(
        sample(&after, r#"cache_misses_total{namespace="items"}"#),
        2.0
    );
    assert_eq!(sample(&after, r#"cache_backend_up{backend="redis"}"#), 1.0);
    assert!(sample(&after, r#"redis_pool_connections{state="in_use"}"#) >= 1.0);
}

#[tokio::test]
async fn openapi_document_is_openapi_3_and_lists_every_route() {
    let app = app_with_token().await;
    let document: Value = app.get("/openapi.json").await.json().await.expect("JSON");
    assert!(document["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.")));
    let parsed: utoipa::openapi::OpenApi =
        serde_json::from_value(document.clone()).expect("a well-formed OpenAPI document");
    assert!(!parsed.paths.paths.is_empty());
    assert!(document["components"]["schemas"]["ErrorBody"].is_object());
    assert!(document["components"]["securitySchemes"]["bearer"].is_object());

    let expected = [
        ("get", "/items"),
        ("post", "/items"),
        ("get", "/items/{id}"),
        ("put", "/items/{id}"),
        ("patch", "/items/{id}"),
        ("delete", "/items/{id}"),
        ("get", "/cache/stats"),
        ("post", "/cache/stats/reset"),
        ("get", "/cache/ping"),
        ("delete", "/cache/clear"),
        ("post", "/cache/clear/{namespace}"),
        ("get", "/cache/keys"),
        ("get", "/cache/entries/{namespace}/{key}"),
        ("delete", "/cache/entries/{namespace}/{key}"),
        ("post", "/cache/purge"),
        ("get", "/health"),
        ("get", "/health/live"),
        ("get", "/health/ready"),
        ("get", "/"),
        ("get", "/cache/dashboard"),
        ("get", "/metrics"),
        ("get", "/openapi.json"),
    ];
    let mut documented = BTreeSet::new();
    for (path, operations) in document["paths"].as_object().expect("paths") {
        for method in operations.as_object().expect("operations").keys() {
            documented.insert((method.clone(), path.clone()));
        }
    }
    let expected_set: BTreeSet<(String, String)> = expected
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, expected_set);

    for (method, path) in expected {
        let concrete = path
            .replace("{id}", "1")
            .replace("{namespace}", "items")
            .replace("{key}", "x");
        let method: Method = method.to_uppercase().parse().expect("method");
        let response = admin_call(&app, method.clone(), &concrete).await;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert!(
            !(status == 404 && body.contains("no such route")) && status != 405,
            "documented {method} {path} is not served: {status}"
        );
    }
}
