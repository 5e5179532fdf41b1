//! HTTP response caching on Redis for [warp] 0.4, as two filters you wrap around your routes.
//!
//! ```no_run
//! use std::time::Duration;
//! use warp::Filter;
//! use warp_redis_cache::{cache_busting, cached, BustPolicy, CacheConfig, CacheManager, CachePolicy, Namespace, RedisConfig};
//!
//! # async fn run() {
//! let cache = CacheManager::connect(&CacheConfig::default(), &RedisConfig::default()).await.unwrap();
//! let users = Namespace::new("users").unwrap();
//! let read = warp::path!("users" / u64).and(warp::get()).map(|id| format!("user {id}"));
//! let write = warp::path!("users" / u64).and(warp::put()).map(|_id| warp::reply());
//! let routes = cached(cache.clone(), CachePolicy::new(users.clone()).ttl(Duration::from_secs(60)), read)
//!     .or(cache_busting(cache, BustPolicy::namespace(users), write));
//! warp::serve(routes).run(([127, 0, 0, 1], 3030)).await;
//! # }
//! ```
//!
//! - [`cached`] answers GET and HEAD from the cache when a fresh entry exists; otherwise the
//!   wrapped route runs and its answer is stored (gzip above a size threshold, a TTL, a
//!   namespace, optional tags), with ETag/304, `Cache-Status`, stale-while-revalidate,
//!   stale-if-error and stampede protection. A hit is one Redis round trip.
//! - [`cache_busting`] wraps a write: after a successful answer it invalidates the namespace,
//!   or the tags the handler names with [`with_bust_tags`]; no reader sees the old answer once
//!   the write has answered, whatever the interleaving.
//! - [`CacheManager`] owns the backend: Redis (one server or a Cluster) through a connection
//!   pool, or process memory. When Redis fails, requests are served uncached (fail-open), and a
//!   circuit breaker keeps a dead Redis from costing each request a timeout.
//! - [`admin`] holds what an operator route needs: statistics, key listings, purges, health.
//!
//! Configuration is [`CacheConfig`] and [`RedisConfig`], both `Default` and serde-ready.
//! Optional feature `openapi` derives `utoipa::ToSchema` on the [`admin`] types.
#![warn(missing_docs)]

mod cache;
mod config;
mod filters;

pub mod admin;

pub use cache::redis::InvalidRedisUrl;
pub use cache::{CacheError, CacheManager, InvalidNamespace, InvalidTag, Namespace, Tag};
pub use config::{
    redact_password, BackendChoice, CacheConfig, ConfigError, RedisConfig, RedisMode,
    MAX_EARLY_REFRESH_BETA, MAX_TTL_SECS,
};
pub use filters::{
    cache_busting, cached, decode_query, with_bust_tags, BustPolicy, BustTagFn, BustTags,
    CachePolicy, CacheSemantics, ClientCacheControl, FilterFailure, KeyFn, RequestParts,
    TagContext, TagFn,
};
