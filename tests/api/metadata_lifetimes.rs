//! Namespace records (`#gen`) have lifetimes, and no lifetime can bring an entry back: a
//! clear of a namespace that never existed creates nothing, a record lives at least as long
//! as the entries stored under it, and a record that vanished takes its entries with it.

use crate::support::{spawn_app, x_cache, RedisServer};

fn pttl(redis: &RedisServer, key: &str) -> i64 {
    redis.command(redis::cmd("PTTL").arg(key))
}

#[tokio::test]
async fn clearing_or_purging_a_namespace_that_never_existed_creates_no_record() {
    let app = spawn_app().await;
    let cleared = app
        .request(reqwest::Method::POST, "/cache/clear/never-existed", &[])
        .await;
    assert_eq!(cleared.status(), 200);
    let purged = app
        .send_json(
            reqwest::Method::POST,
            "/cache/purge",
            &serde_json::json!({"namespaces": ["ghost-1", "ghost-2"]}),
        )
        .await;
    assert_eq!(purged.status(), 200);
    // Only the instance's own records (`wrc#lineage`, `wrc#alive:<instance>`: see
    // cache::redis::lineage and cache::intents), none of a namespace.
    let keys: Vec<String> = app.redis().command(redis::cmd("KEYS").arg("*"));
    let records: Vec<&String> = keys.iter().filter(|k| !k.starts_with("wrc#")).collect();
    assert!(records.is_empty(), "records created for nothing: {keys:?}");
}

#[tokio::test]
async fn a_namespace_record_lives_as_long_as_its_entries_and_no_longer() {
    let app = spawn_app().await;
    app.create_item(serde_json::json!({"name": "lamp", "price": 1}))
        .await;
    app.get("/items/1").await;
    assert_eq!(x_cache(&app.get("/items/1").await), "HIT");
    let record = pttl(app.redis(), "wrc:#gen:items");
    let entry = pttl(app.redis(), "wrc:items:GET:/items/1");
    assert!(entry > 0, "entry TTL {entry}");
    assert!(record >= entry, "record TTL {record} < entry TTL {entry}");

    let cleared = app
        .request(reqwest::Method::POST, "/cache/clear/items", &[])
        .await;
    assert_eq!(cleared.status(), 200);
    let after_clear = pttl(app.redis(), "wrc:#gen:items");
    assert!(
        after_clear > 0,
        "the clear made the record permanent: {after_clear}"
    );
}

#[tokio::test]
async fn a_vanished_namespace_record_takes_its_entries_with_it() {
    let app = spawn_app().await;
    app.create_item(serde_json::json!({"name": "lamp", "price": 1}))
        .await;
    app.get("/items/1").await;
    assert_eq!(x_cache(&app.get("/items/1").await), "HIT");
    let old: String = app.redis().command(redis::cmd("GET").arg("wrc:#gen:items"));
    let _: i64 = app.redis().command(redis::cmd("DEL").arg("wrc:#gen:items"));
    assert_eq!(x_cache(&app.get("/items/1").await), "MISS");
    assert_eq!(x_cache(&app.get("/items/1").await), "HIT");
    let new: String = app.redis().command(redis::cmd("GET").arg("wrc:#gen:items"));
    assert_ne!(
        old.split(':').next(),
        new.split(':').next(),
        "a recreated record reused the old generation"
    );
    // Putting the old record back cannot revive the entry stored under the new one either.
    let _: () = app
        .redis()
        .command(redis::cmd("SET").arg("wrc:#gen:items").arg(&old));
    assert_eq!(x_cache(&app.get("/items/1").await), "MISS");
}
