//! The service's routes, each a warp filter tree, and the tiny filters that hand them state.

pub mod labels;
pub use labels::{route_index, route_label, ROUTE_LABELS};
pub mod admin;
pub mod admin_guard;
pub mod auth;
pub mod dashboard;
pub mod health;
pub mod items;
pub mod json_body;
pub mod meta;
pub mod purge;

use std::convert::Infallible;

use warp::Filter;

use warp_redis_cache::CacheManager;

/// Every route of the service, combined; errors are turned into JSON by the caller's
/// `recover`. The item routes come first, behind a check of the first path segment: a cached
/// route looks up every GET that reaches it, so only `/items...` may reach it, and the hot
/// path does not fail through every admin route first.
pub fn all(
    cache: CacheManager,
    store: crate::items::ItemStore,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    access: auth::AdminAccess,
    max_body_bytes: u64,
) -> impl Filter<Extract = (impl warp::Reply,), Error = warp::Rejection> + Clone {
    // Each side boxed: the tree's own future is then two pointers and a path check, so
    // `Filter::boxed` on the whole tree (startup) copies a few bytes per request instead of
    // the largest branch's state, and a request allocates only the branch it reaches.
    let rest = health::routes(cache.clone())
        .or(meta::routes(cache.clone(), metrics))
        .or(admin::routes(cache.clone(), access.clone()))
        .or(purge::routes(cache.clone(), access))
        .or(dashboard::routes())
        .map(warp::Reply::into_response)
        .boxed();
    under("items")
        .and(
            items::routes(store, cache, max_body_bytes)
                .map(warp::Reply::into_response)
                .boxed(),
        )
        .or(rest)
        .unify()
}

/// Passes requests whose path starts with the segment `first`, without consuming it.
pub fn under(first: &'static str) -> impl Filter<Extract = (), Error = warp::Rejection> + Clone {
    warp::path::peek()
        .and_then(move |peek: warp::path::Peek| async move {
            if peek.segments().next() == Some(first) {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one()
}

/// Hands a clone of the cache manager to a handler.
pub fn with_cache(
    cache: CacheManager,
) -> impl Filter<Extract = (CacheManager,), Error = Infallible> + Clone {
    warp::any().map(move || cache.clone())
}
