//! The service's routes, each a warp filter tree, and the tiny filters that hand them state.

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

/// Every route template, for metric labels: [`route_index`] picks one; the last is `other`.
pub const ROUTE_LABELS: [&str; 19] = [
    "/health",
    "/health/live",
    "/health/ready",
    "/metrics",
    "/openapi.json",
    "/items",
    "/cache/stats",
    "/cache/stats/reset",
    "/cache/ping",
    "/cache/clear",
    "/cache/keys",
    "/cache/purge",
    "/cache/dashboard",
    "/cache/dashboard.js",
    "/",
    "/items/{id}",
    "/cache/clear/{namespace}",
    "/cache/entries/{namespace}/{key}",
    "other",
];

/// The paths of the templates without parameters: the first entries of [`ROUTE_LABELS`].
const EXACT_ROUTES: usize = 15;

/// The route template a path belongs to, for metric labels: one of a fixed set, `other` for
/// any path the routes do not serve.
///
/// ```
/// use warp_redis_cache_service::routes::route_label;
///
/// assert_eq!(route_label("/items/7"), "/items/{id}");
/// assert_eq!(route_label("/cache/entries/ns/a/b"), "/cache/entries/{namespace}/{key}");
/// assert_eq!(route_label("/items/7/x"), "other");
/// ```
pub fn route_label(path: &str) -> &'static str {
    ROUTE_LABELS[route_index(path)]
}

/// The position in [`ROUTE_LABELS`] of the template `path` belongs to (no allocation: this
/// runs on every request).
pub fn route_index(path: &str) -> usize {
    if let Some(known) = ROUTE_LABELS[..EXACT_ROUTES]
        .iter()
        .position(|known| *known == path)
    {
        return known;
    }
    let mut segments = path.trim_start_matches('/').split('/');
    match (segments.next(), segments.next(), segments.next()) {
        (Some("items"), Some(_), None) => EXACT_ROUTES,
        (Some("cache"), Some("clear"), Some(_)) if segments.next().is_none() => EXACT_ROUTES + 1,
        (Some("cache"), Some("entries"), Some(_)) => EXACT_ROUTES + 2,
        _ => EXACT_ROUTES + 3,
    }
}

/// Hands a clone of the cache manager to a handler.
pub fn with_cache(
    cache: CacheManager,
) -> impl Filter<Extract = (CacheManager,), Error = Infallible> + Clone {
    warp::any().map(move || cache.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The labelling before it avoided allocating, as the reference.
    fn reference_label(path: &str) -> &'static str {
        if let Some(known) = ROUTE_LABELS[..EXACT_ROUTES]
            .iter()
            .find(|known| **known == path)
        {
            return known;
        }
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match segments.as_slice() {
            ["items", _] => "/items/{id}",
            ["cache", "clear", _] => "/cache/clear/{namespace}",
            ["cache", "entries", _, ..] => "/cache/entries/{namespace}/{key}",
            _ => "other",
        }
    }

    #[test]
    fn route_labels_are_the_templates_as_before() {
        for path in [
            "",
            "/",
            "//",
            "/items",
            "/items/",
            "/items/1",
            "//items/1",
            "/items/1/",
            "/items/1/2",
            "/cache",
            "/cache/clear",
            "/cache/clear/",
            "/cache/clear/ns",
            "/cache/clear/ns/x",
            "/cache/entries",
            "/cache/entries/ns",
            "/cache/entries/ns/",
            "/cache/entries/ns/k",
            "/cache/entries/ns/k/more",
            "/health/live",
            "/health/live/",
            "/metrics",
            "/x",
            "/cache/dashboard.js",
            "/openapi.json",
        ] {
            assert_eq!(route_label(path), reference_label(path), "{path:?}");
        }
    }
}
