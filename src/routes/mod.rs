//! The service's routes, each a warp filter tree, and the tiny filters that hand them state.

pub mod health;
pub mod items;

use std::convert::Infallible;

use warp::Filter;

use crate::cache::CacheManager;

/// Every route of the service, combined; errors are turned into JSON by the caller's
/// `recover`. Health first (cheap, never cached), then the cached item routes.
pub fn all(
    cache: CacheManager,
    store: crate::items::ItemStore,
    max_body_bytes: u64,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    health::routes(cache.clone()).or(items::routes(store, cache, max_body_bytes))
}

/// Hands a clone of the cache manager to a handler.
pub fn with_cache(
    cache: CacheManager,
) -> impl Filter<Extract = (CacheManager,), Error = Infallible> + Clone {
    warp::any().map(move || cache.clone())
}
