//! [`cache_busting`]: after the wrapped mutation route succeeds (2xx), and before its response
//! leaves, invalidates the namespaces and keys its [`BustPolicy`] names.
//!
//! Namespaces are busted by giving them a new generation, and tags by bumping the namespace's
//! invalidation clock into their records (both O(1) and race-free, see
//! [`crate::cache::stamp`]); keys are deleted (not race-free: a slow miss may store the old
//! value again; use tags or namespaces where that matters). A soft policy marks all of these
//! stale instead of dead. A failed mutation (4xx/5xx) busts
//! nothing. When the cache is unreachable the write still stands and the response is
//! unchanged: the namespace is remembered and bypassed until a retried bust succeeds, so no
//! client reads an entry from before the write. If the request is dropped while the route runs
//! (the client went away after sending a write), the bust still happens, from a task of its own.
//! If the process dies between the write's commit and its bust, the write intent recorded before
//! the route ran is replayed by any instance after `cache.write_intent_grace_ms` (see
//! [`crate::cache::intents`]); an unsafe request that reaches this filter costs that one extra
//! round trip, so mount it under the routes' path (`warp::path("items").and(...)`-like scoping).

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use warp::reject::Rejection;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::policy::{BustPolicy, BustTagSource, BustTags};
use super::request::{request_parts, RequestParts};
use crate::cache::intents::WriteIntent;
use crate::cache::{CacheManager, Invalidation, Namespace, Tag};

/// Wraps a mutation `route` so that its success invalidates what `policy` names.
///
/// ```
/// use warp::Filter;
/// use warp_redis_cache::{cache_busting, BustPolicy, CacheConfig, CacheManager, Namespace};
///
/// let cache = CacheManager::in_memory(&CacheConfig::default());
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
    // Resolved once here, not on every write.
    let touched = policy.namespaces_touched();
    for ns in &touched {
        cache.sweep_write_intents(ns);
    }
    let state = Arc::new((cache, policy, touched));
    let outcome = route
        .map(|reply: R| RouteOutcome::Replied(reply.into_response()))
        .or_else(
            |rejection| async move { Ok::<_, Rejection>((RouteOutcome::Rejected(rejection),)) },
        );
    request_parts()
        .then(move |request| arm(Arc::clone(&state), request))
        .and(outcome)
        .and_then(settle)
        .boxed()
}

/// When a write's request is dropped, its commit may still be under way on a task of its own
/// (the item store's `spawn_blocking`), and a read between an early bust and that commit could
/// store the old value under the new generation. So the namespace is busted at once and again
/// once the commit has surely landed (after 1 s, and after 6 s: past SQLite's 5 s busy timeout).
const CANCELLED_WRITE_BUSTS: [Duration; 3] = [
    Duration::ZERO,
    Duration::from_secs(1),
    Duration::from_secs(5),
];

/// The manager, the policy and the namespaces it touches (resolved once, when the filter is
/// built).
type BustState = (CacheManager, BustPolicy, Vec<Namespace>);

/// The test hook that stands for a crash between a write's commit and its bust:
/// `WARP_REDIS_CACHE_FAILPOINT=abort-before-bust` aborts the process there. Never set it
/// outside tests.
static ABORT_BEFORE_BUST: LazyLock<bool> = LazyLock::new(|| {
    std::env::var("WARP_REDIS_CACHE_FAILPOINT").is_ok_and(|v| v == "abort-before-bust")
});

/// Arms the guard before the route runs; an unsafe request first records its write intents.
async fn arm(state: Arc<BustState>, request: RequestParts) -> BustGuard {
    let mut intents = Vec::new();
    if !matches!(
        request.method().as_str(),
        "GET" | "HEAD" | "OPTIONS" | "TRACE"
    ) {
        for ns in &state.2 {
            if let Some(intent) = state.0.begin_write(ns).await {
                intents.push((ns.clone(), intent));
            }
        }
    }
    BustGuard {
        state: Some(state),
        request: Arc::new(request),
        intents,
    }
}

/// Removes write intents whose busts landed or whose writes changed nothing.
async fn end_writes(cache: &CacheManager, intents: Vec<(Namespace, WriteIntent)>) {
    for (ns, intent) in intents {
        cache.end_write(&ns, intent).await;
    }
}

/// What the wrapped route did.
enum RouteOutcome {
    Replied(Response),
    Rejected(Rejection),
}

/// Armed from before the route runs until its bust is done. If the request is dropped in
/// between (client gone, shutdown grace over) while the route's write may have committed, the
/// guard busts from a task of its own: a write must never outlive its invalidation.
struct BustGuard {
    state: Option<Arc<BustState>>,
    request: Arc<RequestParts>,
    intents: Vec<(Namespace, WriteIntent)>,
}

impl BustGuard {
    fn disarm(&mut self) {
        self.state = None;
    }
}

impl Drop for BustGuard {
    fn drop(&mut self) {
        let Some(state) = self.state.take() else {
            return;
        };
        let request = Arc::clone(&self.request);
        let intents = std::mem::take(&mut self.intents);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let (cache, policy, touched) = &*state;
                    let mut landed = false;
                    for delay in CANCELLED_WRITE_BUSTS {
                        tokio::time::sleep(delay).await;
                        landed = bust(cache, policy, touched, &request, None).await;
                    }
                    if landed {
                        end_writes(cache, intents).await;
                    }
                });
            }
            Err(_) => log::error!("a cancelled write could not be busted: no runtime"),
        }
    }
}

async fn settle(mut guard: BustGuard, outcome: RouteOutcome) -> Result<Response, Rejection> {
    let Some(state) = guard.state.clone() else {
        return match outcome {
            RouteOutcome::Rejected(rejection) => Err(rejection),
            RouteOutcome::Replied(response) => Ok(response),
        };
    };
    let (cache, policy, touched) = &*state;
    let intents = std::mem::take(&mut guard.intents);
    let response = match outcome {
        RouteOutcome::Rejected(rejection) => {
            guard.disarm();
            end_writes(cache, intents).await;
            return Err(rejection);
        }
        RouteOutcome::Replied(response) => response,
    };
    let landed = if response.status().is_success() {
        if *ABORT_BEFORE_BUST {
            log::error!("failpoint abort-before-bust: aborting after a write, before its bust");
            std::process::abort();
        }
        let reply_tags = response.extensions().get::<BustTags>();
        bust(cache, policy, touched, &guard.request, reply_tags).await
    } else {
        true
    };
    guard.disarm();
    if landed {
        end_writes(cache, intents).await;
    }
    Ok(response)
}

/// Carries out `policy` for a write of `request` whose reply named `reply_tags` (`None` when
/// the reply never came or named none); returns whether every invalidation landed now (the
/// others are retried in the background).
async fn bust(
    cache: &CacheManager,
    policy: &BustPolicy,
    touched: &[Namespace],
    request: &RequestParts,
    reply_tags: Option<&BustTags>,
) -> bool {
    let mut landed = true;
    for ns in touched {
        cache.note_fallback_write(ns);
    }
    let how = if policy.soft {
        Invalidation::Soft
    } else {
        Invalidation::Hard
    };
    for namespace in &policy.namespaces {
        match how {
            Invalidation::Hard => {
                landed &= cache.bust_or_remember(namespace).await;
            }
            Invalidation::Soft => {
                if cache.soft_purge_namespace(namespace).await.is_err() {
                    cache.remember_failed_bust(namespace);
                    landed = false;
                }
            }
        }
    }
    for (namespace, source) in &policy.tags {
        let names = match (source, reply_tags) {
            (BustTagSource::Request(tags), _) => Some(tags.tags(request)),
            (BustTagSource::Reply, Some(BustTags(names))) => Some(names.clone()),
            (BustTagSource::Reply, None) => None,
        };
        let tags: Option<Result<Vec<Tag>, _>> =
            names.map(|names| names.iter().map(|t| Tag::new(t)).collect());
        let done = match tags {
            Some(Ok(tags)) => cache.invalidate_tags(namespace, &tags, how).await.is_ok(),
            None => false,
            Some(Err(err)) => {
                // A write whose invalidation cannot be expressed must not leave stale entries
                // behind: the whole namespace goes instead.
                log::warn!(
                    "bust policy computed {err}; invalidating namespace {namespace} instead"
                );
                false
            }
        };
        if !done {
            landed &= cache.bust_or_remember(namespace).await;
        }
    }
    for (namespace, key) in &policy.keys {
        let key = request.finish_key(key.key(request), &[]);
        let done = match how {
            Invalidation::Hard => cache.delete(namespace, &key).await.is_ok(),
            Invalidation::Soft => cache.soft_purge_keys(namespace, &[key]).await.is_ok(),
        };
        if !done {
            cache.remember_failed_bust(namespace);
            landed = false;
        }
    }
    landed
}
