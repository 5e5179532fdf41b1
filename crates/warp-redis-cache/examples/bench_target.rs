//! The target of `scripts/bench_scaling.sh`: one warp server whose routes serve a body of a
//! chosen size, cached with a chosen number of tags or not cached at all, so that hit cost can
//! be measured against body size, tags per entry and keyspace size, and the miss path against
//! the same route uncached.
//!
//! - `GET /hit/{bytes}/{tags}/{key}`: cached in namespace `bench` for an hour, filed under
//!   `{tags}` tags `t0` .. `t{tags-1}` (shared by every entry, as a category tag is). So the
//!   entry of one key, copied under another key's name, is byte for byte what a miss on that
//!   key would have stored: the script builds its large keyspaces that way.
//! - `GET /miss/{bytes}/{tags}/{key}`: the same in namespace `bench-miss` with a 1 s TTL and no
//!   stale windows, so a load over fresh keys is all misses (origin + store) while Redis holds
//!   only the last seconds' entries.
//! - `GET /plain/{bytes}/{key}`: the same body, not cached (the reference).
//!
//! The body is the first `{bytes}` bytes (at most 256 KiB) of a fixed JSON-like text, served
//! from memory, so the origin costs next to nothing and every difference is the cache's.
//! Cache settings are the library defaults (as in the service's `settings.yaml`: bodies over
//! 1 KiB stored gzip-compressed, 4 Redis connections), except that
//! `BENCH_COMPRESSION_THRESHOLD_BYTES` sets the size above which entries are compressed.
//!
//! Usage: `BENCH_REDIS_URL=redis://127.0.0.1:PORT/0 bench_target [PORT]` (port 0 or none: a
//! free one); prints `listening on http://127.0.0.1:N`.

use std::time::Duration;

use bytes::Bytes;
use warp::http::header::CONTENT_TYPE;
use warp::Filter;
use warp_redis_cache::{
    cached, BackendChoice, CacheConfig, CacheManager, CachePolicy, Namespace, RedisConfig,
    TagContext,
};

/// Largest body served.
const MAX_BODY: usize = 256 * 1024;

/// The fixed text bodies are cut from: JSON records with varying numbers (gzip at level 6
/// shrinks 200 KiB of it to ~35 KB).
fn body_text() -> Bytes {
    let mut text = String::with_capacity(MAX_BODY + 128);
    let mut i: u64 = 0;
    while text.len() < MAX_BODY {
        text.push_str(&format!(
            "{{\"id\":{i},\"name\":\"item {i}\",\"price\":{}.{:02},\"stock\":{}}},\n",
            i * 7 % 1000,
            i * 13 % 100,
            i * 31 % 977
        ));
        i += 1;
    }
    text.truncate(MAX_BODY);
    Bytes::from(text)
}

/// The tags of `/hit/{bytes}/{tags}/{key}` (or `/miss/...`): `t0` .. `t{tags-1}`.
fn tags_of(context: &TagContext<'_>) -> Vec<String> {
    let count: usize = (context.request.path().split('/').nth(3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(1);
    (0..count).map(|i| format!("t{i}")).collect()
}

/// `body[..bytes]` as a JSON response, or `None` past the largest body.
fn respond(body: &Bytes, bytes: usize) -> Option<warp::reply::Response> {
    if bytes > body.len() {
        return None;
    }
    let mut response = warp::reply::Response::new(body.slice(..bytes).into());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, "application/json".parse().ok()?);
    Some(response)
}

/// The route under `/hit` and `/miss`: `/{bytes}/{tags}/{key}` answers with the body (the tags
/// are the policy's business).
fn sized(
    body: Bytes,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    warp::path!(usize / usize / String)
        .and(warp::get())
        .and_then(move |bytes: usize, _tags: usize, _key: String| {
            let response = respond(&body, bytes);
            async move { response.ok_or_else(warp::reject::not_found) }
        })
}

#[tokio::main]
async fn main() {
    let url = std::env::var("BENCH_REDIS_URL").expect("BENCH_REDIS_URL=redis://HOST:PORT/DB");
    let port: u16 = std::env::args()
        .nth(1)
        .map_or(0, |p| p.parse().expect("PORT"));
    let defaults = CacheConfig::default();
    let cache_config = CacheConfig {
        backend: BackendChoice::Redis,
        compression_threshold_bytes: std::env::var("BENCH_COMPRESSION_THRESHOLD_BYTES").map_or(
            defaults.compression_threshold_bytes,
            |t| {
                t.parse()
                    .expect("BENCH_COMPRESSION_THRESHOLD_BYTES: a number")
            },
        ),
        ..defaults
    };
    let redis_config = RedisConfig {
        url,
        ..RedisConfig::default()
    };
    let cache = CacheManager::connect(&cache_config, &redis_config)
        .await
        .expect("valid Redis URL");
    let body = body_text();

    let hit_policy = CachePolicy::new(Namespace::new("bench").expect("valid namespace"))
        .ttl(Duration::from_secs(3600))
        .tags_with(tags_of);
    let miss_policy = CachePolicy::new(Namespace::new("bench-miss").expect("valid namespace"))
        .ttl(Duration::from_secs(1))
        .stale_while_revalidate(Duration::ZERO)
        .stale_if_error(Duration::ZERO)
        .tags_with(tags_of);
    let plain_body = body.clone();
    let plain = warp::path!("plain" / usize / String)
        .and(warp::get())
        .and_then(move |bytes: usize, _key: String| {
            let response = respond(&plain_body, bytes);
            async move { response.ok_or_else(warp::reject::not_found) }
        });
    // Each cached route under its own path prefix: the filter looks up before its route's own
    // filters run, so a request for another route must not reach it (see `cached`'s docs).
    let hit = warp::path("hit").and(cached(cache.clone(), hit_policy, sized(body.clone())));
    let miss = warp::path("miss").and(cached(cache, miss_policy, sized(body)));
    let routes = plain.or(hit).or(miss);

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the port");
    println!(
        "listening on http://{}",
        listener.local_addr().expect("a bound address")
    );
    warp::serve(routes).incoming(listener).run().await;
}
