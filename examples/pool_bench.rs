//! Side-by-side server for the Redis pool measurement in the README (`scripts/bench_pool.sh`).
//!
//! Serves the same 1 KiB JSON body four ways: from memory (`/bare`), through [`CacheManager`]
//! (one shared multiplexed connection leased from the mobc pool: `/manager`), through a raw
//! shared `MultiplexedConnection` (`/multiplexed`, the floor), and by checking a connection out
//! of a default-configured mobc pool for every request (`/mobc`).
//!
//! Usage: `pool_bench REDIS_URL PORT`.

use bytes::Bytes;
use mobc::Pool;
use mobc_redis::RedisConnectionManager;
use warp::Filter;
use warp_redis_cache::{BackendChoice, CacheConfig, RedisConfig};
use warp_redis_cache::{CacheManager, Namespace};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("usage: pool_bench REDIS_URL PORT");
    let port: u16 = args.next().and_then(|p| p.parse().ok()).expect("PORT");

    let body = Bytes::from(format!("{{\"data\":\"{}\"}}", "x".repeat(1013)));
    let cache_settings = CacheConfig {
        backend: BackendChoice::Redis,
        compression_threshold_bytes: 1 << 20,
        ..CacheConfig::default()
    };
    let redis_settings = RedisConfig {
        url: url.clone(),
        ..RedisConfig::default()
    };
    let cache = CacheManager::connect(&cache_settings, &redis_settings)
        .await
        .expect("redis settings");
    let ns = Namespace::new("bench").expect("valid");
    cache
        .set_bytes(&ns, "body", &body, None)
        .await
        .expect("seed the manager key");

    let client = redis::Client::open(url.as_str()).expect("url");
    let mut seed = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let _: () = redis::cmd("SET")
        .arg("bench:raw")
        .arg(body.as_ref())
        .query_async(&mut seed)
        .await
        .expect("seed the raw key");
    let shared = seed.clone();
    let pool = Pool::builder().build(RedisConnectionManager::new(client));

    let bare_body = body.clone();
    let bare = warp::path("bare").map(move || warp::reply::Response::new(bare_body.clone().into()));
    let manager = warp::path("manager").then(move || {
        let (cache, ns) = (cache.clone(), ns.clone());
        async move {
            let hit = cache
                .get_bytes(&ns, "body")
                .await
                .expect("get")
                .expect("hit");
            warp::reply::Response::new(hit.into())
        }
    });
    let multiplexed = warp::path("multiplexed").then(move || {
        let mut conn = shared.clone();
        async move {
            respond(
                redis::cmd("GET")
                    .arg("bench:raw")
                    .query_async(&mut conn)
                    .await,
            )
        }
    });
    let mobc = warp::path("mobc").then(move || {
        let pool = pool.clone();
        async move {
            let mut conn = pool.get().await.expect("pool checkout");
            respond(
                redis::cmd("GET")
                    .arg("bench:raw")
                    .query_async(&mut *conn)
                    .await,
            )
        }
    });
    warp::serve(bare.or(manager).or(multiplexed).or(mobc))
        .run(([127, 0, 0, 1], port))
        .await;
}

fn respond(result: redis::RedisResult<Vec<u8>>) -> warp::reply::Response {
    warp::reply::Response::new(result.expect("GET").into())
}
