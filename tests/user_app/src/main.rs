//! A user's warp app: a cached greeting per name and a cached counter page, each busted by its
//! own write route. Every time a handler really runs, it says so in the body (`run N`), so a
//! client can tell a cached answer from a fresh one.
//!
//! `REDIS_URL` (required) and `PORT` (0 picks one; the chosen port is printed on stdout as
//! `listening on <port>`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use warp::Filter;
use warp_redis_cache::{
    cache_busting, cached, BackendChoice, BustPolicy, CacheConfig, CacheManager, CachePolicy,
    Namespace, RedisConfig,
};

#[tokio::main]
async fn main() {
    let redis = RedisConfig {
        url: std::env::var("REDIS_URL").expect("REDIS_URL"),
        ..RedisConfig::default()
    };
    let config = CacheConfig {
        backend: BackendChoice::Redis,
        key_prefix: "userapp".into(),
        ..CacheConfig::default()
    };
    let cache = CacheManager::connect(&config, &redis).await.expect("valid Redis URL");
    let greetings = Namespace::new("greetings").expect("valid namespace");
    let pages = Namespace::new("pages").expect("valid namespace");
    let runs = Arc::new(AtomicU64::new(0));

    let counter = Arc::clone(&runs);
    let greet = warp::path!("greetings" / String).and(warp::get()).map(move |name: String| {
        let run = counter.fetch_add(1, Ordering::SeqCst) + 1;
        format!("hello, {name} (run {run})")
    });
    let counter = Arc::clone(&runs);
    let about = warp::path!("about").and(warp::get()).map(move || {
        let run = counter.fetch_add(1, Ordering::SeqCst) + 1;
        format!("about page (run {run})")
    });
    let rename = warp::path!("greetings" / String).and(warp::post()).map(|_name| warp::reply());
    let edit = warp::path!("about").and(warp::put()).map(warp::reply);

    let minute = Duration::from_secs(60);
    let routes = cached(cache.clone(), CachePolicy::new(greetings.clone()).ttl(minute), greet)
        .or(cached(cache.clone(), CachePolicy::new(pages.clone()).ttl(minute), about))
        .or(cache_busting(cache.clone(), BustPolicy::namespace(greetings), rename))
        .or(cache_busting(cache, BustPolicy::namespace(pages), edit));

    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(0);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    println!("listening on {}", listener.local_addr().expect("bound").port());
    warp::serve(routes).incoming(listener).run().await;
}
