//! What only the PostgreSQL item store has: migrations at startup (idempotent, safe when
//! instances start together), its own refusals, the service end to end on PostgreSQL (several
//! instances sharing it), and outages, at startup and while serving.
//!
//! Each test gets a fresh database (`postgres.rs`) and passes without running when there is no
//! server, except the startup test, which needs none.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use warp_redis_cache_service::items::{ItemStore, NewItem, StoreError};
use warp_redis_cache_service::startup::Application;

use crate::support::postgres::{Relay, TestDatabase};
use crate::support::{
    app_settings, eventually, free_port, spawn_app_from, spawn_app_with, RedisServer,
};

fn pen() -> NewItem {
    NewItem {
        name: "pen".into(),
        description: String::new(),
        price: 1.5,
        tags: vec!["office".into()],
    }
}

async fn recorded_versions(database: &TestDatabase) -> Vec<i32> {
    let rows = database
        .client()
        .await
        .query(
            "SELECT version FROM items_schema_migrations ORDER BY version",
            &[],
        )
        .await
        .expect("read the migrations table");
    rows.iter().map(|row| row.get(0)).collect()
}

#[tokio::test]
async fn migrations_are_applied_once_and_reopening_changes_nothing() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let first = ItemStore::open_postgres(database.url())
        .await
        .expect("first open");
    let created = first.create(pen()).await.expect("create");
    drop(first);
    let second = ItemStore::open_postgres(database.url())
        .await
        .expect("second open");
    assert_eq!(second.get(created.id).await, Ok(Some(created)));
    assert_eq!(recorded_versions(&database).await, [1]);
}

#[tokio::test]
async fn instances_opening_a_new_database_together_all_succeed() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let opens = (0..4).map(|_| {
        let url = database.url().to_string();
        tokio::spawn(async move { ItemStore::open_postgres(&url).await })
    });
    let mut stores = Vec::new();
    for open in opens {
        stores.push(open.await.expect("task").expect("open"));
    }
    for store in &stores {
        store.create(pen()).await.expect("create through each");
    }
    assert_eq!(recorded_versions(&database).await, [1]);
}

#[tokio::test]
async fn a_schema_newer_than_this_build_is_refused() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    ItemStore::open_postgres(database.url())
        .await
        .expect("open");
    database
        .client()
        .await
        .execute(
            "INSERT INTO items_schema_migrations (version) VALUES (99)",
            &[],
        )
        .await
        .expect("record a future migration");
    let err = ItemStore::open_postgres(database.url())
        .await
        .expect_err("newer schema");
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    assert!(err.to_string().contains("99"), "{err}");
}

#[tokio::test]
async fn a_database_not_in_utf8_is_refused_at_open() {
    let Some(database) = TestDatabase::create_with_encoding("LATIN1").await else {
        return;
    };
    let err = ItemStore::open_postgres(database.url())
        .await
        .expect_err("LATIN1 database");
    assert!(matches!(err, StoreError::Postgres(_)), "{err}");
    assert!(err.to_string().contains("UTF8"), "{err}");
}

#[tokio::test]
async fn a_nan_price_is_refused_by_the_database() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let store = ItemStore::open_postgres(database.url())
        .await
        .expect("open");
    let nan = NewItem {
        price: f64::NAN,
        ..pen()
    };
    let err = store.create(nan).await.expect_err("NaN price");
    assert!(matches!(err, StoreError::Postgres(_)), "{err}");
}

#[tokio::test]
async fn a_corrupt_tags_column_is_an_error_not_a_panic() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let store = ItemStore::open_postgres(database.url())
        .await
        .expect("open");
    let created = store.create(pen()).await.expect("create");
    let client = database.client().await;
    for bad_tags in ["ARRAY[NULL]::text[]", "ARRAY[['a', 'b']]::text[]"] {
        client
            .batch_execute(&format!("UPDATE items SET tags = {bad_tags}"))
            .await
            .expect("corrupt the row");
        let err = store.get(created.id).await.expect_err("corrupt tags");
        assert!(matches!(err, StoreError::Corrupt(_)), "{bad_tags}: {err}");
        let err = store
            .list(Default::default())
            .await
            .expect_err("corrupt tags");
        assert!(matches!(err, StoreError::Corrupt(_)), "{bad_tags}: {err}");
    }
}

#[tokio::test]
async fn an_unreachable_postgres_at_startup_is_a_clear_error_without_the_password() {
    let port = free_port();
    let mut settings = app_settings("redis://127.0.0.1:1/0");
    settings.database.url = format!("postgres://wrc:hunter2@127.0.0.1:{port}/items");
    let started = tokio::time::timeout(Duration::from_secs(10), Application::build(settings))
        .await
        .expect("startup gives up promptly");
    let Err(err) = started else {
        panic!("the service started without its database");
    };
    let message = err.to_string();
    let expected =
        format!("cannot open the item store at postgres://wrc:***@127.0.0.1:{port}/items");
    assert!(message.starts_with(&expected), "{message}");
    assert!(message.contains("unavailable"), "{message}");
    assert!(message.contains("connect"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test]
async fn items_round_trip_through_the_service_on_postgres() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let app = spawn_app_with(|settings| settings.database.url = database.url().to_string()).await;

    let lamp =
        json!({"name": " Desk Lamp ", "price": 12.5, "tags": ["home"], "description": "bright"});
    let created = app.create_item(lamp).await;
    let id = created["id"].as_i64().expect("numeric id");
    assert_eq!(created["name"], "Desk Lamp");
    let read = app.get(&format!("/items/{id}")).await;
    assert_eq!(read.status(), 200);
    assert_eq!(read.json::<Value>().await.expect("item"), created);
    app.create_item(json!({"name": "Garden Chair", "price": 40, "tags": ["garden"]}))
        .await;

    let page: Value = app
        .get("/items?q=lamp&limit=5")
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0], created);
    let page: Value = app
        .get("/items?tag=garden")
        .await
        .json()
        .await
        .expect("page");
    assert_eq!(page["items"][0]["name"], "Garden Chair");
    let all: Value = app.get("/items").await.json().await.expect("page");
    assert_eq!(all["total"], 2);
    let bad = app
        .send_json(
            Method::POST,
            "/items",
            &json!({"name": "a\u{0}b", "price": 1}),
        )
        .await;
    assert_eq!(
        bad.status(),
        422,
        "NUL is refused before the database sees it"
    );
}

#[tokio::test]
async fn every_acknowledged_write_is_in_postgres_when_acknowledged() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let app = spawn_app_with(|settings| settings.database.url = database.url().to_string()).await;
    let client = database.client().await;
    let row_of = |id: i64| {
        let client = &client;
        async move {
            client
                .query_opt("SELECT name, price, tags FROM items WHERE id = $1", &[&id])
                .await
                .expect("direct read")
                .map(|row| {
                    (
                        row.get::<_, String>(0),
                        row.get::<_, f64>(1),
                        row.get::<_, Vec<String>>(2),
                    )
                })
        }
    };

    let created = app
        .send_json(
            Method::POST,
            "/items",
            &json!({"name": "cup", "price": 2, "tags": ["t"]}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.expect("item")["id"]
        .as_i64()
        .expect("id");
    assert_eq!(
        row_of(id).await,
        Some(("cup".into(), 2.0, vec!["t".into()]))
    );

    let path = format!("/items/{id}");
    let replaced = app
        .send_json(Method::PUT, &path, &json!({"name": "mug", "price": 3}))
        .await;
    assert_eq!(replaced.status(), 200);
    assert_eq!(row_of(id).await, Some(("mug".into(), 3.0, vec![])));
    let patched = app
        .send_json(Method::PATCH, &path, &json!({"tags": ["x", "y"]}))
        .await;
    assert_eq!(patched.status(), 200);
    assert_eq!(
        row_of(id).await,
        Some(("mug".into(), 3.0, vec!["x".into(), "y".into()]))
    );
    assert_eq!(app.delete(&path).await.status(), 204);
    assert_eq!(row_of(id).await, None);
}

#[tokio::test]
async fn two_instances_on_one_database_see_each_others_writes() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let redis = RedisServer::start();
    let mut settings = app_settings(&redis.url());
    settings.database.url = database.url().to_string();
    let writer = spawn_app_from(settings.clone()).await;
    let reader = spawn_app_from(settings).await;

    let item = writer
        .create_item(json!({"name": "shared", "price": 1}))
        .await;
    let path = format!("/items/{}", item["id"]);
    let read: Value = reader.get(&path).await.json().await.expect("item");
    assert_eq!(read, item);
    // The reader has cached it now; the writer's PUT busts the namespace in the shared Redis.
    let replaced = writer
        .send_json(Method::PUT, &path, &json!({"name": "renamed", "price": 2}))
        .await;
    assert_eq!(replaced.status(), 200);
    let read: Value = reader.get(&path).await.json().await.expect("item");
    assert_eq!(read["name"], "renamed");
    let second = reader
        .create_item(json!({"name": "from reader", "price": 1}))
        .await;
    assert!(
        second["id"].as_i64() > item["id"].as_i64(),
        "ids come from one sequence"
    );
}

#[tokio::test]
async fn a_postgres_outage_is_a_json_503_and_the_service_recovers() {
    let Some(database) = TestDatabase::create().await else {
        return;
    };
    let Some(server) = database.server_addr().await else {
        eprintln!("skipped: the admin URL names no TCP address to relay");
        return;
    };
    let mut relay = Relay::start(server).await;
    let app =
        spawn_app_with(|settings| settings.database.url = database.url_via(relay.port())).await;
    let item = app.create_item(json!({"name": "before", "price": 1})).await;

    relay.cut().await;
    let started = std::time::Instant::now();
    let write = app
        .send_json(
            Method::POST,
            "/items",
            &json!({"name": "during", "price": 1}),
        )
        .await;
    assert_eq!(write.status(), 503);
    let body: Value = write.json().await.expect("JSON error body");
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("item store")),
        "{body}"
    );
    let uncached = app.get(&format!("/items/{}", item["id"])).await;
    assert_eq!(uncached.status(), 503, "nothing cached, nothing to serve");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );

    relay.restore().await;
    let recovered = eventually(Duration::from_secs(10), || async {
        let response = app
            .send_json(
                Method::POST,
                "/items",
                &json!({"name": "after", "price": 1}),
            )
            .await;
        response.status() == 201
    })
    .await;
    assert!(recovered, "writes did not come back after the outage");
    let page: Value = app.get("/items?q=after").await.json().await.expect("page");
    assert_eq!(page["total"], 1);
    let page: Value = app.get("/items?q=during").await.json().await.expect("page");
    assert_eq!(
        page["total"], 0,
        "a write answered 503 must not have landed"
    );
}
