//! The service on a 3-master Redis Cluster (`redis.mode: cluster`): a hit is still one round
//! trip, to the master that owns the namespace's slot; writes bust race-free through tags;
//! clears and key listings reach every master; stats and health report each master; and losing
//! the items master degrades to `X-Cache: BYPASS` until its replica takes over.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use warp_redis_cache::BackendChoice;
use warp_redis_cache::{CacheManager, Namespace};
use warp_redis_cache_service::settings::Settings;

use crate::support::cluster::RedisCluster;
use crate::support::{
    app_settings, cache_settings, eventually, round_trips_on, spawn_app_from, x_cache, TestApp,
};

/// The hash tag every key of the items namespace carries.
const ITEMS_SLOT_KEY: &str = "{wrc:items}";

fn cluster_app_settings(cluster: &RedisCluster) -> Settings {
    let mut settings = app_settings(&cluster.seed_urls());
    settings.redis = cluster.settings();
    settings
}

async fn price_of(app: &TestApp, path: &str) -> (String, Value) {
    let response = app.get(path).await;
    assert_eq!(response.status(), 200, "{path}");
    let cache = x_cache(&response);
    let body: Value = response.json().await.expect("JSON item");
    (cache, body["price"].clone())
}

#[tokio::test]
async fn a_hit_is_one_round_trip_to_the_namespace_master_and_writes_bust_through_tags() {
    let cluster = RedisCluster::start(false);
    let app = spawn_app_from(cluster_app_settings(&cluster)).await;
    for i in 1..=3 {
        app.create_item(json!({"name": format!("Lamp {i}"), "price": i}))
            .await;
    }
    let owner = cluster.master_of(ITEMS_SLOT_KEY);
    assert_eq!(x_cache(&app.get("/items/1").await), "MISS");
    for _ in 0..2 {
        let (response, commands) = round_trips_on(owner, || app.get("/items/1")).await;
        assert_eq!(x_cache(&response), "HIT");
        assert_eq!(commands, ["evalsha"], "round trips per hit on the owner");
    }
    // Besides the namespace's keys, only instance records (`wrc#lineage{..}`, `wrc#alive:..`:
    // see cache::redis::lineage and cache::intents) that hashed to this master.
    let keys: Vec<String> = cluster.keys_on(owner);
    assert!(
        keys.iter()
            .filter(|key| !key.starts_with("wrc#"))
            .all(|key| key.starts_with(ITEMS_SLOT_KEY)),
        "{keys:?}"
    );

    let page = "/items?limit=10";
    app.get(page).await;
    app.get("/items/2").await;
    assert_eq!(x_cache(&app.get(page).await), "HIT");
    let patched = app
        .send_json(Method::PATCH, "/items/1", &json!({"price": 100}))
        .await;
    assert_eq!(patched.status(), 200);
    assert_eq!(
        price_of(&app, "/items/1").await,
        ("MISS".into(), json!(100.0))
    );
    let page_after: Value = {
        let response = app.get(page).await;
        assert_eq!(
            x_cache(&response),
            "MISS",
            "the page holding item 1 is busted"
        );
        response.json().await.expect("JSON page")
    };
    assert_eq!(page_after["items"][0]["price"], 100.0);
    assert_eq!(x_cache(&app.get("/items/2").await), "HIT", "item 2 kept");

    // A write followed at once by a read never sees the old value.
    for price in 101..111 {
        let put = app
            .send_json(Method::PATCH, "/items/3", &json!({"price": price}))
            .await;
        assert_eq!(put.status(), 200);
        assert_eq!(price_of(&app, "/items/3").await.1, json!(f64::from(price)));
        assert_eq!(price_of(&app, "/items/3").await.1, json!(f64::from(price)));
    }
}

/// Fills `namespaces` namespaces with `per` entries each, through a manager in cluster mode.
async fn fill(cluster: &RedisCluster, namespaces: usize, per: usize) -> BTreeSet<String> {
    let mut settings = cache_settings();
    settings.backend = BackendChoice::Redis;
    let cache = CacheManager::connect(&settings, &cluster.settings())
        .await
        .expect("cluster settings");
    let mut keys = BTreeSet::new();
    for n in 0..namespaces {
        let ns = Namespace::new(&format!("ns{n}")).expect("valid");
        for k in 0..per {
            cache
                .set(&ns, &format!("k{k}"), &k, None)
                .await
                .expect("set");
            keys.insert(cache.layout().full_key(&ns, &format!("k{k}")));
        }
    }
    keys
}

#[tokio::test]
async fn clears_and_listings_reach_every_master_and_stats_report_each() {
    let cluster = RedisCluster::start(false);
    let app = spawn_app_from(cluster_app_settings(&cluster)).await;
    let stored = fill(&cluster, 12, 5).await;
    let masters = cluster.master_ports();
    assert_eq!(masters.len(), 3);
    for port in &masters {
        assert!(
            !cluster.keys_on(*port).is_empty(),
            "master {port} holds keys"
        );
    }
    let foreign = cluster.master_of("other:keep");
    cluster.command::<()>(foreign, redis::cmd("SET").arg("other:keep").arg(1));

    let mut listed = BTreeSet::new();
    let mut cursor = 0u64;
    let mut pages = 0;
    loop {
        let page: Value = app
            .get(&format!("/cache/keys?limit=10&cursor={cursor}"))
            .await
            .json()
            .await
            .expect("JSON page");
        for key in page["keys"].as_array().expect("keys") {
            listed.insert(key["key"].as_str().expect("key").to_string());
        }
        cursor = page["next_cursor"].as_u64().expect("cursor");
        pages += 1;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(listed, stored, "one listing across {pages} pages");

    let cleared: Value = app
        .send_json(Method::POST, "/cache/clear/ns0", &json!({}))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(cleared["deleted"], 5);
    let left: Vec<String> = masters.iter().flat_map(|p| cluster.keys_on(*p)).collect();
    assert!(
        !left.iter().any(|k| k.starts_with("{wrc:ns0}:")),
        "{left:?}"
    );
    assert!(left.iter().any(|k| k.starts_with("{wrc:ns1}:")), "ns1 kept");

    let stats: Value = app.get("/cache/stats").await.json().await.expect("JSON");
    let nodes = stats["backend"]["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 3, "{stats}");
    assert!(nodes.iter().all(|node| node["healthy"] == true), "{stats}");
    let ready: Value = app.get("/health/ready").await.json().await.expect("JSON");
    assert_eq!(ready["nodes"].as_array().map(Vec::len), Some(3), "{ready}");

    let cleared: Value = app.delete("/cache/clear").await.json().await.expect("JSON");
    assert!(cleared["deleted"].as_u64() >= Some(55), "{cleared}");
    for port in &masters {
        let ours: Vec<String> = cluster
            .keys_on(*port)
            .into_iter()
            .filter(|k| k.starts_with("{wrc:"))
            .collect();
        assert!(ours.is_empty(), "master {port} still holds {ours:?}");
    }
    assert_eq!(
        cluster
            .keys_on(foreign)
            .into_iter()
            .filter(|key| !key.starts_with("wrc#"))
            .collect::<Vec<_>>(),
        ["other:keep"],
        "foreign keys kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_items_master_degrades_to_bypass_and_recovers_after_failover() {
    let mut cluster = RedisCluster::start(true);
    let app = spawn_app_from(cluster_app_settings(&cluster)).await;
    for i in 1..=3 {
        app.create_item(json!({"name": format!("Chair {i}"), "price": i}))
            .await;
    }
    for path in ["/items/1", "/items/2", "/items/3"] {
        app.get(path).await;
        assert_eq!(x_cache(&app.get(path).await), "HIT");
    }
    let owner = cluster.master_of(ITEMS_SLOT_KEY);
    cluster.kill(owner);
    let killed = Instant::now();

    let mut seen = Vec::new();
    let mut recovered_at = None;
    let mut n = 0u64;
    while killed.elapsed() < Duration::from_secs(15) {
        n += 1;
        let path = format!("/items/{}", n % 3 + 1);
        let response = app.get(&path).await;
        assert_eq!(response.status(), 200, "{path} while the master is down");
        let cache = x_cache(&response);
        if cache == "HIT" && seen.iter().any(|c| c == "BYPASS") && cluster.failed_over(owner) {
            recovered_at = Some(killed.elapsed());
            break;
        }
        seen.push(cache);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen.iter().any(|c| c == "BYPASS"), "no BYPASS: {seen:?}");
    let recovered_at = recovered_at.unwrap_or_else(|| panic!("no HIT after failover: {seen:?}"));
    assert_ne!(
        cluster.master_of(ITEMS_SLOT_KEY),
        owner,
        "a replica took over"
    );
    eprintln!("failover: cache back {recovered_at:?} after the master was killed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_replica_that_missed_a_bust_serves_nothing_from_before_it() {
    let mut cluster = RedisCluster::start(true);
    let app = spawn_app_from(cluster_app_settings(&cluster)).await;
    app.create_item(json!({"name": "Chair", "price": 1})).await;
    app.get("/items/1").await;
    assert_eq!(x_cache(&app.get("/items/1").await), "HIT");
    let owner = cluster.master_of(ITEMS_SLOT_KEY);
    let replica = cluster.replica_of(owner);
    let replicated = eventually(Duration::from_secs(10), || async {
        cluster
            .keys_on(replica)
            .iter()
            .any(|key| key.starts_with("{wrc:items}:GET:/items/1"))
    })
    .await;
    assert!(replicated, "the replica never received the entry");

    // The replica misses the bust (frozen, and its link cut so nothing waits in its socket);
    // then its master dies and it takes over.
    cluster.pause(replica);
    let cut: i64 = cluster.command(
        owner,
        redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("replica"),
    );
    assert_eq!(cut, 1, "the replica's link was cut");
    let patch = app
        .send_json(Method::PATCH, "/items/1", &json!({"name": "Chair v2"}))
        .await;
    assert_eq!(patch.status(), 200);
    cluster.kill(owner);
    cluster.resume(replica);

    let started = Instant::now();
    let mut seen = Vec::new();
    loop {
        let response = app.get("/items/1").await;
        let cache = x_cache(&response);
        let body: Value = response.json().await.expect("json");
        assert_eq!(
            body["name"],
            "Chair v2",
            "served from before the write ({cache}) after {:?}: {seen:?}",
            started.elapsed()
        );
        if cache == "HIT" && cluster.failed_over(owner) {
            break;
        }
        seen.push(cache);
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "the cache never came back after the failover: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        cluster.master_of(ITEMS_SLOT_KEY),
        replica,
        "the replica took over"
    );
}
