//! The scale-out topology on one machine: a 3-master Redis Cluster with replicas, PostgreSQL,
//! and three service instances with their L1 tiers on. A write through one instance is read
//! fresh through the others; killing the items master degrades to `BYPASS` and recovers; no
//! acknowledged write is lost.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::cluster::RedisCluster;
use crate::support::postgres::TestDatabase;
use crate::support::{app_settings, eventually, header, spawn_app_from, x_cache, TestApp};

const ITEMS: i64 = 4;

async fn instance(cluster: &RedisCluster, database: &TestDatabase) -> TestApp {
    let mut settings = app_settings(&cluster.seed_urls());
    settings.redis = cluster.settings();
    settings.database.url = database.url().to_string();
    settings.cache.l1_max_bytes = 8 * 1024 * 1024;
    settings.cache.l1_ttl_ms = 1000;
    spawn_app_from(settings).await
}

async fn price(app: &TestApp, id: i64) -> (f64, String, String) {
    let response = app.get(&format!("/items/{id}")).await;
    assert_eq!(response.status(), 200, "GET /items/{id}");
    let (x, status) = (x_cache(&response), header(&response, "cache-status"));
    let body: Value = response.json().await.expect("json");
    (body["price"].as_f64().expect("price"), x, status)
}

/// Waits until every instance answers `id` with `expected`; returns how long that took.
async fn fresh_everywhere(apps: &[TestApp], id: i64, expected: f64, within: Duration) -> Duration {
    let started = Instant::now();
    for (n, app) in apps.iter().enumerate() {
        let fresh = eventually(within, || async { price(app, id).await.0 == expected }).await;
        assert!(fresh, "instance {n} never showed item {id} at {expected}");
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_a_cluster_and_postgres_stay_fresh_through_a_failover() {
    let Some(database) = TestDatabase::create().await else {
        return; // said why (no PostgreSQL)
    };
    let mut cluster = RedisCluster::start(true);
    let apps = vec![
        instance(&cluster, &database).await,
        instance(&cluster, &database).await,
        instance(&cluster, &database).await,
    ];
    for i in 1..=ITEMS {
        apps[0]
            .create_item(json!({"name": format!("Chair {i}"), "price": 0}))
            .await;
    }
    let mut acknowledged = vec![0.0; ITEMS as usize + 1];

    // Writes through each instance in turn reach every instance, L1 tiers included.
    let mut slowest = Duration::ZERO;
    for round in 1..=12 {
        let id = round % ITEMS + 1;
        for app in &apps {
            price(app, id).await; // warm caches and L1 tiers
            price(app, id).await;
        }
        let writer = &apps[round as usize % apps.len()];
        let body = json!({"price": round});
        let patched = writer
            .send_json(Method::PATCH, &format!("/items/{id}"), &body)
            .await;
        assert_eq!(patched.status(), 200);
        acknowledged[id as usize] = round as f64;
        slowest =
            slowest.max(fresh_everywhere(&apps, id, round as f64, Duration::from_secs(2)).await);
    }
    eprintln!("slowest write-to-fresh-everywhere before the failover: {slowest:?}");
    assert!(slowest < Duration::from_secs(1), "{slowest:?}");

    // Kill the master that holds the items namespace while writes and reads go on.
    let owner = cluster.master_of("{wrc:items}");
    cluster.kill(owner);
    let killed = Instant::now();
    let (mut bypassed, mut recovered) = (0, None);
    let mut version = 100.0;
    while killed.elapsed() < Duration::from_secs(20) {
        version += 1.0;
        let id = (version as i64) % ITEMS + 1;
        let writer = &apps[version as usize % apps.len()];
        let patched = writer
            .send_json(
                Method::PATCH,
                &format!("/items/{id}"),
                &json!({"price": version}),
            )
            .await;
        assert_eq!(patched.status(), 200, "a write failed during the failover");
        acknowledged[id as usize] = version;
        for app in &apps {
            let (_, x, _) = price(app, id).await;
            if x == "BYPASS" {
                bypassed += 1;
            }
        }
        let all_hit = {
            let mut hits = 0;
            for app in &apps {
                price(app, id).await;
                if price(app, id).await.1 == "HIT" {
                    hits += 1;
                }
            }
            hits == apps.len()
        };
        if bypassed > 0 && all_hit && cluster.failed_over(owner) {
            recovered = Some(killed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        bypassed > 0,
        "losing the items master never showed as BYPASS"
    );
    let recovered = recovered.expect("the cache never came back after the failover");
    eprintln!("failover: {bypassed} BYPASS answers, cache back {recovered:?} after the kill");

    // No acknowledged write is lost: PostgreSQL holds the last one of each item, and every
    // instance answers it (within the L1 lifetime, whatever was missed during the outage).
    let client = database.client().await;
    for id in 1..=ITEMS {
        let row = client
            .query_one("SELECT price FROM items WHERE id = $1", &[&id])
            .await
            .expect("row");
        let stored: f64 = row.get(0);
        assert_eq!(stored, acknowledged[id as usize], "item {id} in PostgreSQL");
        fresh_everywhere(&apps, id, stored, Duration::from_secs(3)).await;
    }
}
