//! [`cache_busting`]: after the wrapped mutation route succeeds (2xx), and before its response
//! leaves, invalidates the namespaces and keys its [`BustPolicy`] names.
//!
//! Namespaces are busted by giving them a new generation (O(1), race-free, see
//! [`crate::cache::generations`]); keys are deleted. A failed mutation (4xx/5xx) busts nothing.
//! When the cache is unreachable the write still stands and the response is unchanged: the
//! namespace is remembered and bypassed until a retried bust succeeds, so no client reads an
//! entry from before the write.

use std::sync::Arc;

use warp::reject::Rejection;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::policy::BustPolicy;
use super::request::{request_parts, RequestParts};
use crate::cache::CacheManager;

/// Wraps a mutation `route` so that its success invalidates what `policy` names.
///
/// ```
/// use warp::Filter;
/// use warp_redis_cache::cache::{CacheManager, Namespace};
/// use warp_redis_cache::filters::{cache_busting, BustPolicy};
/// use warp_redis_cache::settings::CacheSettings;
///
/// let cache = CacheManager::in_memory(&CacheSettings::default());
/// let create = warp::post().and(warp::path("greetings")).map(|| "created");
/// let route = cache_busting(cache, BustPolicy::namespace(Namespace::new("greetings").unwrap()), create);
/// ```
pub fn cache_busting<F, R>(
    cache: CacheManager,
    policy: BustPolicy,
    route: F,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone
where
    F: Filter<Extract = (R,), Error = Rejection> + Clone + Send + Sync + 'static,
    R: Reply,
{
    let state = Arc::new((cache, policy));
    route
        .and(request_parts())
        .and(warp::any().map(move || Arc::clone(&state)))
        .then(bust_after_success)
}

async fn bust_after_success<R: Reply>(
    reply: R,
    request: RequestParts,
    state: Arc<(CacheManager, BustPolicy)>,
) -> Response {
    let response = reply.into_response();
    if response.status().is_success() {
        let (cache, policy) = &*state;
        bust(cache, policy, &request).await;
    }
    response
}

async fn bust(cache: &CacheManager, policy: &BustPolicy, request: &RequestParts) {
    for namespace in &policy.namespaces {
        cache.bust_or_remember(namespace).await;
    }
    for (namespace, key) in &policy.keys {
        let key = request.finish_key(key.key(request), &[]);
        if cache.delete(namespace, &key).await.is_err() {
            cache.remember_failed_bust(namespace);
        }
    }
}
