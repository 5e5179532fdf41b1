//! Someone else's warp app using the filters: a cached read and a busting write.
//! Run: `cargo run -p warp-redis-cache --example hello_cached`, then
//! `curl -i localhost:3030/hello/ada` twice (MISS, then HIT) and `curl -X DELETE localhost:3030/hello`.

use std::time::Duration;
use warp::Filter;
use warp_redis_cache::{
    cache_busting, cached, BustPolicy, CacheConfig, CacheManager, CachePolicy, Namespace,
    RedisConfig,
};

#[tokio::main]
async fn main() {
    // Redis at 127.0.0.1:6379 if it answers, else process memory.
    let cache = CacheManager::connect(&CacheConfig::default(), &RedisConfig::default())
        .await
        .expect("valid Redis URL");
    let greetings = Namespace::new("greetings").expect("valid namespace");

    let hello = warp::path!("hello" / String).map(|name| format!("hello, {name}"));
    let reset = warp::path!("hello").and(warp::delete()).map(warp::reply);

    let policy = CachePolicy::new(greetings.clone()).ttl(Duration::from_secs(60));
    let routes = cached(cache.clone(), policy, hello).or(cache_busting(
        cache,
        BustPolicy::namespace(greetings),
        reset,
    ));
    warp::serve(routes).run(([127, 0, 0, 1], 3030)).await;
}
