//! The service's routes, each a warp filter tree, and the tiny filters that hand them state.

pub mod health;

use std::convert::Infallible;

use warp::Filter;

use crate::cache::CacheManager;

/// Hands a clone of the cache manager to a handler.
pub fn with_cache(
    cache: CacheManager,
) -> impl Filter<Extract = (CacheManager,), Error = Infallible> + Clone {
    warp::any().map(move || cache.clone())
}
