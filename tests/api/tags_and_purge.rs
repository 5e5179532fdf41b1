//! Tags and purges through the service: a write invalidates exactly what it changed, and
//! `POST /cache/purge` invalidates keys, tags and namespaces, hard or soft, or only reports.

use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

use crate::support::{
    eventually, header, round_trips, spawn_app, spawn_app_with, x_cache, TestApp,
};

async fn seed(app: &TestApp, count: usize) {
    for i in 1..=count {
        let name = if i % 10 == 0 { "Lamp" } else { "Chair" };
        app.create_item(json!({"name": format!("{name} {i}"), "price": i}))
            .await;
    }
}

/// Reads each path until it is a plain hit (a stale entry is refreshed in the background).
async fn warm(app: &TestApp, paths: &[&str]) {
    for path in paths {
        let cached = eventually(Duration::from_secs(5), || async {
            x_cache(&app.get(path).await) == "HIT"
        })
        .await;
        assert!(cached, "{path} not cached");
    }
}

/// Items 3 and 4, and the first two pages of five (item 3 is on the first).
const FOUR_ENTRIES: [&str; 4] = [
    "/items/3",
    "/items/4",
    "/items?limit=5",
    "/items?limit=5&offset=5",
];

async fn purge(app: &TestApp, body: Value) -> (u16, Value) {
    let response = app.send_json(Method::POST, "/cache/purge", &body).await;
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON answer"))
}

#[tokio::test]
async fn updating_item_42_busts_its_entry_and_the_pages_holding_it_but_not_item_43() {
    let app = spawn_app().await;
    seed(&app, 60).await;
    let holding = "/items?limit=10&offset=40"; // items 41..=50
    let not_holding = "/items?limit=10"; // items 1..=10
    let filtered = "/items?q=lamp"; // a name filter: item 42 could start to match it
    warm(
        &app,
        &["/items/42", "/items/43", holding, not_holding, filtered],
    )
    .await;

    let patch = json!({"price": 4200});
    let patched = app.send_json(Method::PATCH, "/items/42", &patch).await;
    assert_eq!(patched.status(), 200);

    let item = app.get("/items/42").await;
    assert_eq!(x_cache(&item), "MISS");
    assert_eq!(item.json::<Value>().await.expect("json")["price"], 4200.0);
    let page = app.get(holding).await;
    assert_eq!(x_cache(&page), "MISS");
    let page: Value = page.json().await.expect("json");
    assert_eq!(
        page["items"][1]["price"], 4200.0,
        "the page shows the change"
    );
    assert_eq!(x_cache(&app.get(filtered).await), "MISS");
    assert_eq!(x_cache(&app.get("/items/43").await), "HIT", "item 43 kept");
    assert_eq!(x_cache(&app.get(not_holding).await), "HIT", "page 1 kept");

    // The entries say what they are filed under.
    let entry: Value = app
        .get("/cache/entries/items/GET:%2Fitems%3Flimit%3D10%26offset%3D40")
        .await
        .json()
        .await
        .expect("json");
    let tags: Vec<&str> = entry["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        tags.contains(&"item:42") && tags.contains(&"items:lists"),
        "{tags:?}"
    );
    assert_eq!(entry["validity"], "valid");
}

#[tokio::test]
async fn a_tagged_hit_is_still_one_round_trip() {
    let app = spawn_app().await;
    seed(&app, 30).await;
    warm(&app, &["/items?limit=25"]).await;
    let (response, commands) = round_trips(app.redis(), || app.get("/items?limit=25")).await;
    assert_eq!(x_cache(&response), "HIT");
    // 25 items + the list tag: 26 tag records, read by the same script call as the entry.
    assert_eq!(commands, ["evalsha"]);
}

#[tokio::test]
async fn purging_a_tag_hard_reaches_exactly_the_entries_filed_under_it() {
    let app = spawn_app().await;
    seed(&app, 12).await;
    let paths = FOUR_ENTRIES;
    warm(&app, &paths).await;
    let (status, body) = purge(&app, json!({"namespace": "items", "tags": ["item:3"]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tags"][0]["tag"], "item:3");
    assert_eq!(body["dry_run"], false);
    let expected = [
        ("/items/3", "MISS"),
        ("/items/4", "HIT"),
        ("/items?limit=5", "MISS"),
        ("/items?limit=5&offset=5", "HIT"),
    ];
    for (path, x) in expected {
        assert_eq!(x_cache(&app.get(path).await), x, "{path}");
    }
}

#[tokio::test]
async fn a_soft_purge_serves_stale_then_refreshes() {
    let app = spawn_app().await; // stale-while-revalidate 30 s by default
    seed(&app, 3).await;
    warm(&app, &["/items/2"]).await;
    // Change the data behind the cache's back, then soft-purge its tag.
    let patch = warp_redis_cache_service::items::ItemPatch {
        price: Some(99.0),
        ..Default::default()
    };
    app.store.patch(2, patch).await.expect("patched");
    let (status, _) = purge(
        &app,
        json!({"namespace": "items", "tags": ["item:2"], "soft": true}),
    )
    .await;
    assert_eq!(status, 200);

    let stale = app.get("/items/2").await;
    assert_eq!(x_cache(&stale), "STALE");
    assert_eq!(
        header(&stale, "cache-status"),
        "warp-redis-cache; hit; ttl=0; detail=soft-purged"
    );
    assert_eq!(stale.json::<Value>().await.expect("json")["price"], 2.0);
    let refreshed = eventually(Duration::from_secs(5), || async {
        let response = app.get("/items/2").await;
        x_cache(&response) == "HIT"
            && response.json::<Value>().await.expect("json")["price"] == 99.0
    })
    .await;
    assert!(refreshed, "the soft-purged entry was never refreshed");
}

#[tokio::test]
async fn soft_and_hard_purges_of_keys_and_namespaces() {
    let app = spawn_app().await;
    seed(&app, 3).await;
    warm(&app, &["/items/1", "/items/2"]).await;

    let (status, body) = purge(
        &app,
        json!({"namespace": "items", "keys": ["GET:/items/1", "GET:/nope"], "soft": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["keys"][0]["existed"], true);
    assert_eq!(body["keys"][1]["existed"], false);
    assert_eq!(x_cache(&app.get("/items/1").await), "STALE");
    assert_eq!(x_cache(&app.get("/items/2").await), "HIT");

    warm(&app, &["/items/1"]).await;
    let (status, _) = purge(&app, json!({"namespaces": ["items"], "soft": true})).await;
    assert_eq!(status, 200);
    assert_eq!(x_cache(&app.get("/items/2").await), "STALE");

    warm(&app, &["/items/1", "/items/2"]).await;
    let (status, _) = purge(
        &app,
        json!({"namespace": "items", "keys": ["GET:/items/1"]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(x_cache(&app.get("/items/1").await), "MISS");
    assert_eq!(x_cache(&app.get("/items/2").await), "HIT");
    let (status, _) = purge(&app, json!({"namespaces": ["items"]})).await;
    assert_eq!(status, 200);
    assert_eq!(x_cache(&app.get("/items/2").await), "MISS");
}

#[tokio::test]
async fn a_dry_run_reports_and_changes_nothing() {
    let app = spawn_app().await;
    seed(&app, 12).await;
    let paths = FOUR_ENTRIES;
    warm(&app, &paths).await;
    let keys_before: Vec<String> = app.redis().command(redis::cmd("KEYS").arg("*"));
    let (status, body) = purge(
        &app,
        json!({
            "namespace": "items",
            "tags": ["item:3", "items:lists", "item:999"],
            "keys": ["GET:/items/4", "GET:/items/5"],
            "namespaces": ["items"],
            "dry_run": true
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dry_run"], true);
    assert_eq!(body["namespaces"][0]["entries"], 4);
    assert_eq!(body["tags"][0]["entries"], 2, "item 3 and the first page");
    assert_eq!(body["tags"][1]["entries"], 2, "both pages");
    assert_eq!(body["tags"][2]["entries"], 0);
    assert_eq!(body["keys"][0]["existed"], true);
    assert_eq!(body["keys"][1]["existed"], false);
    for path in paths {
        assert_eq!(
            x_cache(&app.get(path).await),
            "HIT",
            "{path} after a dry run"
        );
    }
    let mut keys_after: Vec<String> = app.redis().command(redis::cmd("KEYS").arg("*"));
    let mut keys_before = keys_before;
    keys_before.sort();
    keys_after.sort();
    assert_eq!(keys_before, keys_after);
}

#[tokio::test]
async fn bad_purge_requests_get_clear_400s_and_change_nothing() {
    let app = spawn_app().await;
    seed(&app, 2).await;
    warm(&app, &["/items/1"]).await;
    let bad = [
        (json!({}), "at least one"),
        (json!({"tags": ["item:1"]}), "namespace: required"),
        (
            json!({"namespace": "items", "tags": ["two words"]}),
            "tags: invalid tag",
        ),
        (
            json!({"namespace": "it ems", "keys": ["k"]}),
            "namespace: invalid",
        ),
        (json!({"namespaces": ["a*"]}), "namespaces: invalid"),
        (
            json!({"namespace": "items", "keys": [""]}),
            "must not be empty",
        ),
        (
            json!({"namespaces": ["items"], "hard": true}),
            "unknown field",
        ),
        (json!({"namespaces": "items"}), "invalid type"),
    ];
    for (body, says) in bad {
        let (status, answer) = purge(&app, body.clone()).await;
        assert_eq!(status, 400, "{body}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{body}: {message}");
    }
    let many: Vec<String> = (0..1001).map(|i| format!("t{i}")).collect();
    let (status, _) = purge(&app, json!({"namespace": "items", "tags": many})).await;
    assert_eq!(status, 400);
    assert_eq!(
        x_cache(&app.get("/items/1").await),
        "HIT",
        "a bad purge changed something"
    );
}

#[tokio::test]
async fn purge_needs_the_admin_token() {
    let app = spawn_app_with(|settings| settings.admin.token = Some("purge-token".into())).await;
    let body = json!({"namespaces": ["items"]});
    let (status, answer) = purge(&app, body.clone()).await;
    assert_eq!(status, 401);
    assert_eq!(answer["error"]["code"], "unauthorized");
    let authorised = app
        .request(
            Method::POST,
            "/cache/purge",
            &[
                ("authorization", "Bearer purge-token"),
                ("content-type", "application/json"),
            ],
        )
        .await;
    // Authorised, but no body: 411 Length Required, not a 401.
    assert_eq!(authorised.status(), 411);
}
