//! [`cached`]: answers GET and HEAD from the cache, and stores what the wrapped route answers.
//!
//! # Why `cached(cache, policy, route)`
//! warp's `Wrap` trait is sealed, so a wrapper is a function from filter to filter, like
//! `warp::log`. Taking the route as an argument lets the filter decide *before* the route runs
//! whether it runs at all: on a hit the route's handler is never called. (`route.with(...)`
//! could only act after the handler had produced its reply.)
//!
//! # Rules
//! These are the rules of the default [`CacheSemantics::Policy`](super::CacheSemantics); with
//! [`CacheSemantics::Http`](super::CacheSemantics) the response's own headers decide
//! freshness, storing, `Vary` and revalidation as RFC 9111 describes for a shared cache (see
//! that variant and [`super::http`]).
//!
//! - Looked up and stored: GET and HEAD only (HEAD is answered from the GET entry). Other
//!   methods pass through untouched.
//! - A hit is one round trip (`MGET` of the entry and its namespace generation) and answers
//!   with the stored status, headers and body, plus `X-Cache: HIT`, `Cache-Status`, `Age`,
//!   `ETag` and the policy's downstream `Cache-Control` (default `no-cache`: clients and
//!   proxies revalidate, see [`ClientCacheControl`](super::ClientCacheControl)).
//!   `If-None-Match` matching the ETag gets 304 with no body.
//! - A miss runs the route and stores its response (one write) under the generation read
//!   before the route ran, so a response computed before a concurrent bust is never served
//!   after it. Concurrent misses of one key in this process run the route once: the others
//!   wait for it and answer with its entry (`Cache-Status: ...; collapsed`).
//! - Past its TTL, an entry inside its stale-while-revalidate window is answered at once
//!   (`X-Cache: STALE`) while one background request refreshes it; inside its stale-if-error
//!   window, the route is asked first (bounded by the origin timeout) and the stale entry is
//!   answered only if the route fails with a 5xx or does not answer in time.
//! - Never stored: statuses the policy does not list (default: 200 only); responses with
//!   `Set-Cookie`, `Cache-Control: no-store`, `private` or `no-cache`, a `Content-Encoding`
//!   other than gzip, a `Vary` on headers the key does not include, or a body over the
//!   policy's size limit.
//! - Not looked up nor stored (`X-Cache: BYPASS`): requests with `Cache-Control: no-store`, and
//!   requests carrying `Authorization` or `Cookie` unless the policy varies on that header
//!   (one user's response must never reach another).
//! - `Cache-Control: no-cache` (or `max-age=0`, or `Pragma: no-cache`) on a request skips the
//!   lookup, runs the route and refreshes the entry.
//! - Bodies over the compression threshold are stored gzip-compressed once, sent as stored with
//!   `Content-Encoding: gzip` and `Vary: Accept-Encoding` to clients that accept gzip, and
//!   inflated only for clients that do not. A body the route already gzip-encoded is stored as
//!   it is, never compressed twice.
//! - When the cache fails (backend down, timeout, corrupt entry), the route answers and the
//!   response carries `X-Cache: BYPASS`; the error is counted and logged (throttled).
//!
//! The lookup happens before the route's own filters run, so place cached routes under their
//! path prefix (or after cheaper routes in an `or` chain): every GET that reaches the filter
//! costs one lookup, even if the route then rejects it.
//!
//! # How the module is laid out
//! A request meets [`decision`] first: a pure-as-possible choice between answering now (from
//! the L1 tier in [`local`], a stored entry in [`stored`], or a collapsed flight) and running
//! the route with an [`decision::Action`]. Only [`cached`]'s wiring here turns an answer made
//! before the route into the one rejection warp needs to skip the route. What happens when the
//! origin is asked (store and answer, background refresh) is [`miss`]; building an answer from
//! an entry is [`answer`].

mod answer;
mod decision;
mod local;
mod miss;
mod stored;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use warp::reject::{Reject, Rejection};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::failure::FilterFailure;
use super::flights::Flights;
use super::origin::{detached, Origin};
use super::policy::{CachePolicy, Lifetimes};
use super::request::{request_parts, RequestParts};
use super::response::{mark, Outcome};
use crate::cache::{CacheEvent, CacheManager};
use decision::{decide, Action, Decision};
use miss::{miss_outcome, share_unstored, store_and_answer, Stored};

/// Wraps `route` so that GET and HEAD are answered from `cache` when a fresh entry exists,
/// and the route's responses are stored as `policy` says. See the module docs for the rules.
///
/// ```
/// use std::time::Duration;
/// use warp::Filter;
/// use warp_redis_cache::{cached, CacheConfig, CacheManager, CachePolicy, Namespace};
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let cache = CacheManager::in_memory(&CacheConfig::default());
/// let hello = warp::path!("hello" / String).map(|name| format!("hello, {name}"));
/// let policy = CachePolicy::new(Namespace::new("greetings").unwrap()).ttl(Duration::from_secs(60));
/// let route = cached(cache, policy, hello);
///
/// let first = warp::test::request().path("/hello/ada").reply(&route).await;
/// assert_eq!(first.headers()["x-cache"], "MISS");
/// let second = warp::test::request().path("/hello/ada").reply(&route).await;
/// assert_eq!(second.headers()["x-cache"], "HIT");
/// assert_eq!(second.body(), "hello, ada");
/// # });
/// ```
pub fn cached<F, R>(
    cache: CacheManager,
    policy: CachePolicy,
    route: F,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone
where
    F: Filter<Extract = (R,), Error = Rejection> + Clone + Send + Sync + 'static,
    R: Reply + 'static,
{
    let resolved = Resolved::new(&policy, &cache);
    let state = Arc::new(CachedRoute {
        cache,
        policy,
        resolved,
        flights: Arc::new(Flights::default()),
        origin: detached(route.clone()),
    });
    request_parts()
        .and(warp::any().map(move || Arc::clone(&state)))
        .and_then(prepare)
        .and(route)
        .and_then(finish)
        .recover(answer_hit)
        .unify()
        // Boxed so the request future an enclosing `or` chain moves around is a pointer, not
        // the whole cache state machine (measured: a few thousand instructions per request).
        .boxed()
}

/// One cached route: its cache, its policy with the manager's defaults resolved once, the
/// flights collapsing its concurrent misses, and a detached way to call its origin.
struct CachedRoute {
    cache: CacheManager,
    policy: CachePolicy,
    resolved: Resolved,
    flights: Arc<Flights>,
    origin: Origin,
}

/// The policy's choices that default to the manager's settings, resolved when the filter is
/// built rather than on every request.
struct Resolved {
    lifetimes: Lifetimes,
    early_refresh_beta: f64,
    refill_lock: bool,
    /// Whether hits use the L1 tier: the policy allows it, the manager has one, and freshness
    /// is the policy's (HTTP semantics revalidate with the origin, which L1 copies cannot).
    l1: bool,
    /// The key varies on `Cookie`, so requests with one may share entries (HTTP semantics).
    cookie_keyed: bool,
}

impl Resolved {
    fn new(policy: &CachePolicy, cache: &CacheManager) -> Self {
        Self {
            lifetimes: policy.lifetimes(cache),
            early_refresh_beta: policy.early_refresh_beta(cache),
            refill_lock: policy.uses_refill_lock(cache),
            l1: policy.l1 && !policy.is_http() && cache.has_local_tier(),
            cookie_keyed: policy.varies_on(&warp::http::header::COOKIE),
        }
    }
}

/// What to do once the route has answered.
struct Plan {
    state: Arc<CachedRoute>,
    request: RequestParts,
    action: Action,
    /// When the route was handed the request: the origin's time is measured from here.
    started: Instant,
}

/// An answer made before the route ran travels to [`answer_hit`] as a rejection: the only way
/// in warp to skip the route.
struct Hit(Mutex<Option<Response>>);

impl std::fmt::Debug for Hit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cache hit")
    }
}

impl Reject for Hit {}

fn answered(response: Response) -> Rejection {
    warp::reject::custom(Hit(Mutex::new(Some(response))))
}

/// Decides before the route runs; an answer made here leaves as the [`Hit`] rejection, the only
/// place the trick is used.
async fn prepare(request: RequestParts, state: Arc<CachedRoute>) -> Result<Plan, Rejection> {
    match decide(&request, &state).await {
        Ok(Decision::Answer(response)) => Err(answered(response)),
        Ok(Decision::RunRoute(action)) => Ok(Plan {
            state,
            request,
            action,
            started: Instant::now(),
        }),
        Err(failure) => Err(warp::reject::custom(failure)),
    }
}

async fn answer_hit(rejection: Rejection) -> Result<Response, Rejection> {
    match rejection.find::<Hit>() {
        Some(hit) => hit
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| warp::reject::custom(FilterFailure("cache hit answered twice".into()))),
        None => Err(rejection),
    }
}

async fn finish<R: Reply>(plan: Plan, reply: R) -> Result<Response, Rejection> {
    let mut response = reply.into_response();
    match plan.action {
        Action::PassThrough => Ok(response),
        Action::Bypass(detail) => {
            let ns = &plan.state.policy.namespace;
            plan.state
                .cache
                .stats()
                .record(Some(ns), CacheEvent::Bypass);
            mark(response.headers_mut(), Outcome::Bypass { detail });
            Ok(response)
        }
        Action::Store {
            key,
            stamp,
            forward,
            not_stored: None,
            leader,
            refill_lock,
        } => {
            let (state, request) = (&plan.state, &plan.request);
            let answer = store_and_answer(
                state,
                request,
                response,
                Stored {
                    key: &key,
                    stamp,
                    forward,
                    origin_ms: answer::elapsed_ms(plan.started),
                },
                leader.as_ref(),
            )
            .await
            .map_err(warp::reject::custom);
            // Release the lock before leaving the flight: a follower that takes over must
            // not find it still held.
            if let Some(lock) = refill_lock {
                lock.release().await;
            }
            drop(leader);
            answer
        }
        // Another variant of a fresh entry: not stored, but handed to the requests that wait
        // on this one (they check that it is their variant), so they do not all ask the origin.
        Action::Store {
            forward,
            not_stored: Some(reason),
            leader: Some(leader),
            ..
        } => share_unstored(
            &plan.state,
            &plan.request,
            response,
            forward,
            reason,
            &leader,
            plan.started,
        )
        .await
        .map_err(warp::reject::custom),
        Action::Store {
            forward,
            not_stored,
            ..
        } => {
            mark(
                response.headers_mut(),
                miss_outcome(forward, false, not_stored),
            );
            Ok(response)
        }
    }
}
