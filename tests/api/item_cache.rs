//! The item API through the cache, end to end: a real redis-server, the service in this process
//! on a free port, and an HTTP client.

use std::io::Read;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{
    app_settings, command_calls, eventually, header, round_trips, spawn_app, spawn_app_from,
    x_cache, RedisServer,
};

fn lamp() -> Value {
    json!({"name": "Lamp", "price": 12.5, "tags": ["home"], "description": "A lamp"})
}

fn long_item() -> Value {
    json!({"name": "Encyclopedia", "price": 99.0, "description": "volume ".repeat(250)})
}

#[tokio::test]
async fn get_is_a_miss_then_a_hit_with_cache_headers() {
    let app = spawn_app().await;
    let item = app.create_item(lamp()).await;

    let first = app.get("/items/1").await;
    assert_eq!(first.status(), 200);
    assert_eq!(x_cache(&first), "MISS");
    assert_eq!(
        header(&first, "cache-status"),
        "warp-redis-cache; fwd=miss; stored"
    );
    assert_eq!(header(&first, "cache-control"), "no-cache");
    let etag = header(&first, "etag");
    assert!(etag.starts_with('"'), "{etag}");
    assert_eq!(first.json::<Value>().await.expect("json"), item);

    let second = app.get("/items/1").await;
    assert_eq!(x_cache(&second), "HIT");
    let status = header(&second, "cache-status");
    let ttl: u64 = status
        .strip_prefix("warp-redis-cache; hit; ttl=")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("Cache-Status {status:?}"));
    assert!((290..=300).contains(&ttl), "{status}");
    assert_eq!(header(&second, "etag"), etag);
    let age: u64 = header(&second, "age").parse().expect("numeric Age");
    assert!(age <= 10, "age {age}");
    // Downstream caches revalidate item responses (with the ETag) instead of keeping them.
    assert_eq!(header(&second, "cache-control"), "no-cache");
    assert_eq!(header(&second, "content-type"), "application/json");
    assert_eq!(second.json::<Value>().await.expect("json"), item);
}

#[tokio::test]
async fn a_hit_costs_exactly_one_redis_command() {
    let app = spawn_app().await;
    app.create_item(lamp()).await;
    assert_eq!(x_cache(&app.get("/items/1").await), "MISS");
    for _ in 0..3 {
        let (response, commands) = round_trips(app.redis(), || app.get("/items/1")).await;
        assert_eq!(x_cache(&response), "HIT");
        // Item entries are tagged: the entry, its namespace record and its tag records are
        // read by one script call.
        assert_eq!(commands, ["evalsha"], "round trips per hit");
    }
}

#[tokio::test]
async fn a_miss_writes_once() {
    let app = spawn_app().await;
    app.create_item(lamp()).await;
    app.create_item(lamp()).await;
    // The namespace has a record once one entry was looked up, and Redis knows our scripts
    // once they ran: misses then cost one lookup and one write. (The very first miss of a
    // namespace also creates its record, and a script's first call loads it.)
    assert_eq!(x_cache(&app.get("/items/2").await), "MISS");
    let sets_before = command_calls(app.redis(), "set");
    let (response, commands) = round_trips(app.redis(), || app.get("/items/1")).await;
    assert_eq!(x_cache(&response), "MISS");
    assert_eq!(commands, ["evalsha", "evalsha"], "one lookup, one write");
    // The write stores the entry and its one tag record (item:1), nothing else.
    assert_eq!(command_calls(app.redis(), "set") - sets_before, 2);
}

#[tokio::test]
async fn matching_if_none_match_gets_304_without_a_body() {
    let app = spawn_app().await;
    app.create_item(lamp()).await;
    let etag = header(&app.get("/items/1").await, "etag");
    for _ in 0..2 {
        let revalidated = app.get_with("/items/1", &[("if-none-match", &etag)]).await;
        assert_eq!(revalidated.status(), 304);
        assert_eq!(header(&revalidated, "etag"), etag);
        assert!(revalidated.bytes().await.expect("body").is_empty());
    }
    let other = app
        .get_with("/items/1", &[("if-none-match", "\"other\"")])
        .await;
    assert_eq!(other.status(), 200);
}

#[tokio::test]
async fn large_body_is_stored_gzip_and_sent_as_stored_or_inflated() {
    let app = spawn_app().await;
    let item = app.create_item(long_item()).await;

    let miss = app
        .get_with("/items/1", &[("accept-encoding", "gzip")])
        .await;
    assert_eq!(header(&miss, "content-encoding"), "gzip");
    let hit = app
        .get_with("/items/1", &[("accept-encoding", "gzip")])
        .await;
    assert_eq!(x_cache(&hit), "HIT");
    assert_eq!(header(&hit, "content-encoding"), "gzip");
    assert!(header(&hit, "vary").contains("accept-encoding"));
    assert!(header(&hit, "etag").ends_with("-gzip\""));
    let sent = hit.bytes().await.expect("body");

    let stored: Vec<u8> = app
        .redis()
        .command(redis::cmd("GET").arg("wrc:items:GET:/items/1"));
    assert_eq!(stored[2] & 1, 1, "stored with the gzip flag");
    assert!(
        stored.ends_with(&sent),
        "hit sent bytes other than those stored"
    );
    let mut inflated = String::new();
    flate2::read::GzDecoder::new(&sent[..])
        .read_to_string(&mut inflated)
        .expect("valid gzip");
    assert_eq!(
        serde_json::from_str::<Value>(&inflated).expect("json"),
        item
    );

    let plain = app.get("/items/1").await;
    assert_eq!(x_cache(&plain), "HIT");
    assert_eq!(header(&plain, "content-encoding"), "");
    assert_eq!(plain.json::<Value>().await.expect("json"), item);
}

#[tokio::test]
async fn query_parameter_order_shares_one_entry() {
    let app = spawn_app().await;
    app.create_item(lamp()).await;
    assert_eq!(
        x_cache(&app.get("/items?limit=5&offset=0&tag=home").await),
        "MISS"
    );
    assert_eq!(
        x_cache(&app.get("/items?tag=home&offset=0&limit=5").await),
        "HIT"
    );
    assert_eq!(x_cache(&app.get("/items?offset=0&limit=5").await), "MISS");
}

#[tokio::test]
async fn errors_are_not_cached() {
    let app = spawn_app().await;
    for _ in 0..2 {
        let missing = app.get("/items/41").await;
        assert_eq!(missing.status(), 404);
        assert_ne!(x_cache(&missing), "HIT");
    }
    let exists: u64 = app
        .redis()
        .command(redis::cmd("EXISTS").arg("wrc:items:GET:/items/41"));
    assert_eq!(exists, 0);
    let created = app.create_item(lamp()).await;
    assert_eq!(created["id"], 1);
    assert_eq!(app.get("/items/1").await.status(), 200);
}

#[tokio::test]
async fn requests_with_credentials_or_no_store_bypass_the_cache() {
    let app = spawn_app().await;
    app.create_item(lamp()).await;
    for headers in [
        [("authorization", "Bearer alice")],
        [("cookie", "session=alice")],
        [("cache-control", "no-store")],
    ] {
        let response = app.get_with("/items/1", &headers).await;
        assert_eq!(response.status(), 200);
        assert_eq!(x_cache(&response), "BYPASS", "{headers:?}");
    }
    let exists: u64 = app
        .redis()
        .command(redis::cmd("EXISTS").arg("wrc:items:GET:/items/1"));
    assert_eq!(exists, 0, "a bypassed response was stored");
}

#[tokio::test]
async fn no_cache_request_refreshes_the_entry() {
    let app = spawn_app().await;
    app.create_item(lamp()).await;
    app.get("/items/1").await;
    let changed = warp_redis_cache_service::items::NewItem {
        name: "Changed behind the cache".into(),
        description: String::new(),
        price: 1.0,
        tags: vec![],
    };
    app.store
        .replace(1, changed)
        .await
        .expect("store write")
        .expect("exists");
    let stale: Value = app.get("/items/1").await.json().await.expect("json");
    assert_eq!(stale["name"], "Lamp", "the entry is served until refreshed");

    let refreshed = app
        .get_with("/items/1", &[("cache-control", "no-cache")])
        .await;
    assert_eq!(x_cache(&refreshed), "MISS");
    assert_eq!(
        header(&refreshed, "cache-status"),
        "warp-redis-cache; fwd=request; stored"
    );
    let after = app.get("/items/1").await;
    assert_eq!(x_cache(&after), "HIT");
    assert_eq!(
        after.json::<Value>().await.expect("json")["name"],
        "Changed behind the cache"
    );
}

#[tokio::test]
async fn every_kind_of_successful_mutation_busts_and_failed_ones_do_not() {
    let app = spawn_app().await;
    app.create_item(lamp()).await;

    let warm = |path: &'static str| {
        let app = &app;
        async move {
            app.get(path).await;
            assert_eq!(x_cache(&app.get(path).await), "HIT");
        }
    };
    // Each write invalidates what it can have changed, and nothing else: a new item changes
    // every list page but not item 1; a change to item 1 changes item 1 and the pages that hold
    // it; deleting item 2 changes the lists but not item 1.
    let mutations: Vec<(Method, &str, Option<Value>, bool)> = vec![
        (
            Method::POST,
            "/items",
            Some(json!({"name": "Chair", "price": 30})),
            false,
        ),
        (
            Method::PUT,
            "/items/1",
            Some(json!({"name": "Desk lamp", "price": 15})),
            true,
        ),
        (Method::PATCH, "/items/1", Some(json!({"price": 16})), true),
        (Method::DELETE, "/items/2", None, false),
    ];
    for (method, path, body, item_1_changes) in mutations {
        warm("/items/1").await;
        warm("/items").await;
        let response = match &body {
            Some(body) => app.send_json(method.clone(), path, body).await,
            None => app.delete(path).await,
        };
        assert!(response.status().is_success(), "{method} {path}");
        let expected = if item_1_changes { "MISS" } else { "HIT" };
        assert_eq!(
            x_cache(&app.get("/items/1").await),
            expected,
            "/items/1 after {method}"
        );
        assert_eq!(x_cache(&app.get("/items").await), "MISS", "after {method}");
    }

    let failures: Vec<(Method, &str, Value)> = vec![
        (Method::POST, "/items", json!({"name": "", "price": 1})),
        (
            Method::PUT,
            "/items/99",
            json!({"name": "Ghost", "price": 1}),
        ),
        (Method::PATCH, "/items/1", json!({"price": -5})),
    ];
    for (method, path, body) in failures {
        warm("/items/1").await;
        let response = app.send_json(method.clone(), path, &body).await;
        assert!(response.status().is_client_error(), "{method} {path}");
        assert_eq!(
            x_cache(&app.get("/items/1").await),
            "HIT",
            "failed {method} busted"
        );
    }
    assert_eq!(app.delete("/items/99").await.status(), 404);
    assert_eq!(
        x_cache(&app.get("/items/1").await),
        "HIT",
        "failed DELETE busted"
    );
}

#[tokio::test]
async fn a_get_right_after_a_put_returns_the_new_value() {
    let app = spawn_app().await;
    app.create_item(lamp()).await;
    for version in 0..50 {
        app.get("/items/1").await;
        let body = json!({"name": format!("Lamp v{version}"), "price": version});
        let put = app.send_json(Method::PUT, "/items/1", &body).await;
        assert_eq!(put.status(), 200);
        let read: Value = app.get("/items/1").await.json().await.expect("json");
        assert_eq!(read["name"], format!("Lamp v{version}"));
    }
}

#[tokio::test]
async fn pragma_no_cache_refreshes_like_cache_control() {
    let app = spawn_app().await;
    app.create_item(lamp()).await;
    app.get("/items/1").await;
    let refreshed = app.get_with("/items/1", &[("pragma", "no-cache")]).await;
    assert_eq!(x_cache(&refreshed), "MISS");
    assert_eq!(
        header(&refreshed, "cache-status"),
        "warp-redis-cache; fwd=request; stored"
    );
}

#[tokio::test]
async fn a_head_miss_is_answered_but_not_stored() {
    let app = spawn_app().await;
    app.create_item(lamp()).await;
    let head = app.request(Method::HEAD, "/items/1", &[]).await;
    assert_eq!(head.status(), 200);
    assert_eq!(x_cache(&head), "MISS");
    let exists: u64 = app
        .redis()
        .command(redis::cmd("EXISTS").arg("wrc:items:GET:/items/1"));
    assert_eq!(exists, 0, "a HEAD answer was stored as the GET entry");
    assert_eq!(x_cache(&app.get("/items/1").await), "MISS");
}

#[tokio::test]
async fn head_is_answered_from_the_get_entry() {
    let app = spawn_app().await;
    app.create_item(lamp()).await;
    let get = app.get("/items/1").await;
    let length = header(&get, "content-length");
    let head = reqwest::Client::new()
        .head(format!("{}/items/1", app.base))
        .send()
        .await
        .expect("HEAD answered");
    assert_eq!(head.status(), 200);
    assert_eq!(x_cache(&head), "HIT");
    assert_eq!(header(&head, "content-length"), length);
}

#[tokio::test]
async fn stopped_redis_serves_uncached_and_the_cache_returns_after_restart() {
    let app = spawn_app().await;
    app.create_item(lamp()).await;
    app.get("/items/1").await;
    assert_eq!(x_cache(&app.get("/items/1").await), "HIT");

    app.redis().stop();
    for _ in 0..5 {
        let response = app.get("/items/1").await;
        assert_eq!(response.status(), 200);
        assert_eq!(x_cache(&response), "BYPASS");
        assert_eq!(
            response.json::<Value>().await.expect("json")["name"],
            "Lamp"
        );
    }
    let put = app
        .send_json(
            Method::PUT,
            "/items/1",
            &json!({"name": "Written while down", "price": 1}),
        )
        .await;
    assert_eq!(
        put.status(),
        200,
        "a write must not fail because the cache is down"
    );

    app.redis().restart();
    let cached_again = eventually(Duration::from_secs(3), || async {
        app.get("/items/1").await;
        x_cache(&app.get("/items/1").await) == "HIT"
    })
    .await;
    assert!(
        cached_again,
        "the cache was not used again after Redis restarted"
    );
    let read: Value = app.get("/items/1").await.json().await.expect("json");
    assert_eq!(read["name"], "Written while down");
}

#[tokio::test]
async fn items_survive_a_service_restart() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = app_settings(&redis.url());
    settings.database.path = dir
        .path()
        .join("items.sqlite3")
        .to_string_lossy()
        .into_owned();

    let app = spawn_app_from(settings.clone()).await;
    for i in 0..5 {
        app.create_item(json!({"name": format!("Item {i}"), "price": i}))
            .await;
    }
    app.stop().await;

    let app = spawn_app_from(settings).await;
    let page: Value = app
        .get("/items?limit=100")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(page["total"], 5);
    assert_eq!(page["items"][4]["name"], "Item 4");
}

/// Method, path, content type, body, expected status and error code.
type BadRequest = (
    Method,
    &'static str,
    &'static str,
    Vec<u8>,
    u16,
    &'static str,
);

#[tokio::test]
async fn bad_input_gets_a_clear_json_error_and_changes_nothing() {
    let app = spawn_app().await;
    app.create_item(lamp()).await;
    let json_type = "application/json";
    let cases: Vec<BadRequest> = vec![
        (
            Method::POST,
            "/items",
            json_type,
            b"{not json".to_vec(),
            400,
            "malformed_body",
        ),
        (
            Method::POST,
            "/items",
            json_type,
            br#"{"name":"x","price":"free"}"#.to_vec(),
            400,
            "malformed_body",
        ),
        (
            Method::POST,
            "/items",
            json_type,
            br#"{"name":"x","price":1,"extra":1}"#.to_vec(),
            400,
            "malformed_body",
        ),
        (
            Method::POST,
            "/items",
            json_type,
            br#"{"name":"  ","price":1}"#.to_vec(),
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            "/items",
            json_type,
            br#"{"name":"x","price":-1}"#.to_vec(),
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            "/items",
            json_type,
            format!(r#"{{"name":"x","price":1,"tags":{:?}}}"#, vec!["t"; 21]).into_bytes(),
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            "/items",
            json_type,
            vec![b' '; 70_000],
            413,
            "payload_too_large",
        ),
        (
            Method::POST,
            "/items",
            "text/plain",
            br#"{"name":"x","price":1}"#.to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            Method::PUT,
            "/items/abc",
            json_type,
            br#"{"name":"x","price":1}"#.to_vec(),
            400,
            "bad_request",
        ),
        (
            Method::PUT,
            "/items/7",
            json_type,
            br#"{"name":"x","price":1}"#.to_vec(),
            404,
            "not_found",
        ),
        (
            Method::PATCH,
            "/items/1",
            json_type,
            b"{}".to_vec(),
            422,
            "validation_failed",
        ),
        (
            Method::DELETE,
            "/items",
            json_type,
            Vec::new(),
            405,
            "method_not_allowed",
        ),
    ];
    for (method, path, content_type, body, status, code) in cases {
        let response = app.send_raw(method.clone(), path, content_type, body).await;
        assert_eq!(response.status(), status, "{method} {path}");
        let error: Value = response.json().await.expect("JSON error body");
        assert_eq!(error["error"]["code"], code, "{method} {path}: {error}");
        assert!(error["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    for path in ["/items/abc", "/items/0", "/items/-3"] {
        assert_eq!(app.get(path).await.status(), 400, "{path}");
    }
    assert_eq!(app.get("/items?limit=abc").await.status(), 400);
    assert_eq!(app.get("/items?limit=1000").await.status(), 400);
    let page: Value = app.get("/items").await.json().await.expect("json");
    assert_eq!(page["total"], 1, "bad input changed the store");
    let item: Value = app.get("/items/1").await.json().await.expect("json");
    assert_eq!(item["name"], "Lamp");
}

#[tokio::test]
async fn malformed_headers_and_query_strings_get_4xx_never_5xx() {
    let app = spawn_app().await;
    app.create_item(lamp()).await;
    let queries = [
        "/items?limit=%ZZ",
        "/items?%%%",
        "/items?limit=1&limit=2",
        "/items?offset=-1",
        "/items?q=%00",
        &format!("/items?q={}", "x".repeat(5_000)),
        &format!("/items?{}", "a=1&".repeat(2_000)),
    ];
    for path in queries {
        let status = app.get(path).await.status();
        assert!(
            status.is_client_error() || status.is_success(),
            "{path}: {status}"
        );
        assert!(!status.is_server_error(), "{path}: {status}");
    }
    let weird =
        reqwest::header::HeaderValue::from_bytes(b"\xff\xfe gzip;q=\x80").expect("obs-text");
    for name in [
        "accept-encoding",
        "cache-control",
        "if-none-match",
        "x-request-id",
        "pragma",
        "cookie",
    ] {
        let response = reqwest::Client::new()
            .get(format!("{}/items/1", app.base))
            .header(name, weird.clone())
            .send()
            .await
            .expect("answered");
        assert!(
            !response.status().is_server_error(),
            "{name}: {}",
            response.status()
        );
    }
    let huge = "x".repeat(1_000_000);
    let response = reqwest::Client::new()
        .get(format!("{}/items/1", app.base))
        .header("x-padding", huge)
        .send()
        .await;
    if let Ok(response) = response {
        assert!(
            response.status().is_client_error(),
            "oversized header: {}",
            response.status()
        );
    }
    assert_eq!(
        app.get("/items/1").await.status(),
        200,
        "the service survived"
    );
}
