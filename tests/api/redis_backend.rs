//! What only the Redis backend does: the key layout seen from Redis itself, budgets when the
//! server is stopped or paused, recovery after a restart, and the `auto` fallback to memory.

use std::time::{Duration, Instant};

use warp_redis_cache::admin::{BackendError, BackendKind};
use warp_redis_cache::BackendChoice;
use warp_redis_cache::{CacheError, CacheManager, Namespace};

use crate::support::{
    cache_settings, eventually, free_port, redis_manager, redis_settings, RedisServer,
};

fn items() -> Namespace {
    Namespace::new("items").expect("valid")
}

#[tokio::test]
async fn keys_are_prefix_namespace_key_with_a_ttl() {
    let server = RedisServer::start();
    let cache = redis_manager(&server).await;
    cache
        .set(&items(), "GET:/items/1", &1, None)
        .await
        .expect("set");
    let (_, keys): (u64, Vec<String>) = server.command(
        redis::cmd("SCAN")
            .arg(0)
            .arg("MATCH")
            .arg("wrc:*")
            .arg("COUNT")
            .arg(100),
    );
    assert_eq!(keys, vec!["wrc:items:GET:/items/1".to_string()]);
    let ttl: i64 = server.command(redis::cmd("TTL").arg("wrc:items:GET:/items/1"));
    assert!(ttl > 290 && ttl <= 300, "ttl {ttl}");
}

#[tokio::test]
async fn stopped_redis_fails_calls_within_the_budget_and_recovers_after_restart() {
    let server = RedisServer::start();
    let cache = redis_manager(&server).await;
    cache
        .set(&items(), "1", &1, None)
        .await
        .expect("set while up");
    server.stop();

    let budget = Duration::from_millis(300 + 200 + 150);
    for _ in 0..5 {
        let started = Instant::now();
        let result: Result<Option<u64>, CacheError> = cache.get(&items(), "1").await;
        assert!(matches!(result, Err(CacheError::Backend(_))), "{result:?}");
        assert!(
            started.elapsed() < budget,
            "call took {:?}",
            started.elapsed()
        );
    }
    assert!(cache.stats().snapshot().total.errors >= 5);

    server.restart();
    let back = eventually(Duration::from_secs(2), || async {
        cache.set(&items(), "2", &2, None).await.is_ok()
    })
    .await;
    assert!(back, "cache not used again within 2 s of Redis restarting");
    let got: Option<u64> = cache.get(&items(), "2").await.expect("get after restart");
    assert_eq!(got, Some(2));
}

#[tokio::test]
async fn paused_redis_times_out_within_the_command_timeout() {
    let server = RedisServer::start();
    let cache = redis_manager(&server).await;
    cache.ping().await.expect("connected");
    let _: () = server.command(redis::cmd("CLIENT").arg("PAUSE").arg(1_500).arg("ALL"));
    let started = Instant::now();
    let result: Result<Option<u64>, CacheError> = cache.get(&items(), "1").await;
    assert_eq!(
        result,
        Err(CacheError::Backend(BackendError::Timeout(
            Duration::from_millis(200)
        )))
    );
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    let recovered = eventually(Duration::from_secs(3), || async {
        cache.get::<u64>(&items(), "1").await.is_ok()
    })
    .await;
    assert!(recovered, "cache unusable after the pause ended");
}

#[tokio::test]
async fn auto_backend_falls_back_to_memory_when_redis_is_down() {
    let dead_url = format!("redis://127.0.0.1:{}/0", free_port());
    let mut settings = cache_settings();
    settings.backend = BackendChoice::Auto;
    let cache = CacheManager::connect(&settings, &redis_settings(&dead_url))
        .await
        .expect("valid settings");
    assert_eq!(cache.backend_kind(), BackendKind::Memory);
    cache
        .set(&items(), "1", &1, None)
        .await
        .expect("memory works");

    let server = RedisServer::start();
    let cache = CacheManager::connect(&settings, &redis_settings(&server.url()))
        .await
        .expect("valid settings");
    assert_eq!(cache.backend_kind(), BackendKind::Redis);
}

#[tokio::test]
async fn garbage_under_our_key_is_dropped() {
    let server = RedisServer::start();
    let cache = redis_manager(&server).await;
    let _: () = server.command(
        redis::cmd("SET")
            .arg("wrc:items:9")
            .arg("{\"not\":\"framed\"}"),
    );
    let got: Option<serde_json::Value> = cache.get(&items(), "9").await.expect("get");
    assert_eq!(got, None);
    let exists: u64 = server.command(redis::cmd("EXISTS").arg("wrc:items:9"));
    assert_eq!(exists, 0);
    assert_eq!(cache.stats().snapshot().total.corrupt_entries, 1);
}
