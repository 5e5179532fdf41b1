//! Someone else's warp app using the filters: a cached read and a busting write.
//! Run: `cargo run --example hello_cached`, then `curl -i localhost:3030/hello/ada` twice.

use std::time::Duration;
use warp::Filter;
use warp_redis_cache::cache::{CacheManager, Namespace};
use warp_redis_cache::filters::{cache_busting, cached, BustPolicy, CachePolicy};
use warp_redis_cache::settings::Settings;

#[tokio::main]
async fn main() {
    let settings = Settings::default(); // Redis at 127.0.0.1:6379 if it answers, else memory
    let cache = CacheManager::connect(&settings.cache, &settings.redis)
        .await
        .expect("valid url");
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
