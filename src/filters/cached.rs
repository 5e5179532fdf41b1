//! [`cached`]: answers GET and HEAD from the cache, and stores what the wrapped route answers.
//!
//! # Why `cached(cache, policy, route)`
//! warp's `Wrap` trait is sealed, so a wrapper is a function from filter to filter, like
//! `warp::log`. Taking the route as an argument lets the filter decide *before* the route runs
//! whether it runs at all: on a hit the route's handler is never called. (`route.with(...)`
//! could only act after the handler had produced its reply.)
//!
//! # Rules
//! - Looked up and stored: GET and HEAD only (HEAD is answered from the GET entry). Other
//!   methods pass through untouched.
//! - A hit is one round trip (`MGET` of the entry and its namespace generation) and answers
//!   with the stored status, headers and body, plus `X-Cache: HIT`, `Cache-Status`, `Age`,
//!   `ETag` and `Cache-Control: max-age=<freshness left>`. `If-None-Match` matching the ETag
//!   gets 304 with no body.
//! - A miss runs the route and stores its response (one write) under the generation read by
//!   the lookup, so a response computed before a concurrent bust is never served after it.
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

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use warp::http::{HeaderMap, Method};
use warp::reject::{Reject, Rejection};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::body::{collect_limited, Collected};
use super::entry::{self, EntryMeta, NotStorable};
use super::policy::CachePolicy;
use super::request::{request_parts, RequestParts};
use super::response::{header_map, mark, Answer, Outcome, Representation};
use crate::cache::codec::{gunzip_limited, Decoded, PayloadEncoding};
use crate::cache::{CacheEvent, CacheManager, Generation, Lookup, StorePayload};
use crate::error::ApiError;

/// Wraps `route` so that GET and HEAD are answered from `cache` when a fresh entry exists,
/// and the route's responses are stored as `policy` says. See the module docs for the rules.
///
/// ```
/// use std::time::Duration;
/// use warp::Filter;
/// use warp_redis_cache::cache::CacheManager;
/// use warp_redis_cache::filters::{cached, CachePolicy};
/// use warp_redis_cache::settings::CacheSettings;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let cache = CacheManager::in_memory(&CacheSettings::default());
/// let hello = warp::path!("hello" / String).map(|name| format!("hello, {name}"));
/// let policy = CachePolicy::namespace("greetings").unwrap().ttl(Duration::from_secs(60));
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
    R: Reply,
{
    let state = Arc::new(CachedRoute { cache, policy });
    request_parts()
        .and(warp::any().map(move || Arc::clone(&state)))
        .and_then(prepare)
        .and(route)
        .and_then(finish)
        .recover(answer_hit)
        .unify()
}

struct CachedRoute {
    cache: CacheManager,
    policy: CachePolicy,
}

/// What to do once the route has answered.
struct Plan {
    state: Arc<CachedRoute>,
    request: RequestParts,
    action: Action,
}

enum Action {
    /// Not a cacheable method: pass the response through.
    PassThrough,
    /// Do not use the cache; say why.
    Bypass(&'static str),
    /// Store the response under `key` with `generation` (read before the route ran). HEAD
    /// answers are never stored (`store: false`): a handler may answer HEAD with no body.
    Store {
        key: String,
        generation: Generation,
        refresh: bool,
        store: bool,
    },
}

/// A hit travels to [`answer_hit`] as a rejection: the only way in warp to skip the route.
struct Hit(Mutex<Option<Response>>);

impl std::fmt::Debug for Hit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cache hit")
    }
}

impl Reject for Hit {}

async fn prepare(request: RequestParts, state: Arc<CachedRoute>) -> Result<Plan, Rejection> {
    let action = decide(&request, &state).await?;
    Ok(Plan {
        state,
        request,
        action,
    })
}

async fn decide(request: &RequestParts, state: &CachedRoute) -> Result<Action, Rejection> {
    let policy = &state.policy;
    if !request.is_cacheable_method() {
        return Ok(Action::PassThrough);
    }
    let directives = request.directives();
    if directives.no_store {
        return Ok(Action::Bypass("no-store"));
    }
    if request.has_unkeyed_credentials(&policy.vary) {
        return Ok(Action::Bypass("credentials"));
    }
    let key = match &policy.key {
        Some(key) => key.key(request),
        None => request.default_key(),
    };
    let key = request.finish_key(key, &policy.vary);
    let ns = &policy.namespace;
    if state.cache.settle_pending_bust(ns).await.is_err() {
        return Ok(Action::Bypass("cache-unavailable"));
    }
    let (hit, generation) = match state.cache.lookup(ns, &key).await {
        Ok(Lookup::Hit(decoded)) => {
            let generation = decoded.generation.map(Generation::from_value);
            (Some(decoded), generation)
        }
        Ok(Lookup::Miss { generation }) => (None, generation),
        Err(_) => return Ok(Action::Bypass("cache-unavailable")),
    };
    let refresh = directives.no_cache;
    if let (Some(decoded), false) = (hit, refresh) {
        match hit_response(request, policy, decoded) {
            Some(response) => return Err(warp::reject::custom(Hit(Mutex::new(Some(response))))),
            None => {
                state.cache.delete(ns, &key).await.ok();
            }
        }
    }
    // The generation must be the one current *before* the route runs: a write that commits
    // while the route reads must leave whatever this request stores dead on arrival.
    let generation = match generation {
        Some(generation) => generation,
        None => match state.cache.current_generation(ns).await {
            Ok(generation) => generation,
            Err(_) => return Ok(Action::Bypass("cache-unavailable")),
        },
    };
    Ok(Action::Store {
        key,
        generation,
        refresh,
        store: request.method() == Method::GET,
    })
}

/// The response for a stored entry, or `None` when its metadata is unreadable.
fn hit_response(
    request: &RequestParts,
    policy: &CachePolicy,
    decoded: Decoded,
) -> Option<Response> {
    let meta: EntryMeta = serde_json::from_slice(&decoded.meta).ok()?;
    let status = warp::http::StatusCode::from_u16(meta.status).ok()?;
    let now = entry::now_ms();
    let body = match decoded.encoding {
        PayloadEncoding::Identity => Representation::Plain(decoded.payload),
        PayloadEncoding::Gzip => Representation::Gzip {
            compressed: decoded.payload,
            plain: None,
        },
    };
    let remaining = meta.remaining(now);
    // Downstream caches compute freshness as max-age minus Age, so max-age is the entry's
    // whole lifetime, not what is left of it.
    Answer {
        request,
        status,
        headers: header_map(&meta.headers),
        body,
        etag: &meta.etag,
        max_age: Duration::from_millis(meta.ttl_ms),
        age: Some(meta.age(now)),
        vary: &policy.vary,
        outcome: Outcome::Hit { remaining },
    }
    .into_response()
    .ok()
}

async fn answer_hit(rejection: Rejection) -> Result<Response, Rejection> {
    match rejection.find::<Hit>() {
        Some(hit) => hit
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| {
                warp::reject::custom(ApiError::Internal("cache hit answered twice".into()))
            }),
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
            generation,
            refresh,
            store: true,
        } => {
            let (state, request) = (&plan.state, &plan.request);
            store_and_answer(state, request, response, key, generation, refresh).await
        }
        Action::Store { refresh, .. } => {
            mark(
                response.headers_mut(),
                miss_outcome(refresh, false, Some("head")),
            );
            Ok(response)
        }
    }
}

async fn store_and_answer(
    state: &CachedRoute,
    request: &RequestParts,
    response: Response,
    key: String,
    generation: Generation,
    refresh: bool,
) -> Result<Response, Rejection> {
    let policy = &state.policy;
    let not_stored = |detail: NotStorable| miss_outcome(refresh, false, Some(detail.detail()));
    if let Err(reason) = entry::check_storable(response.status(), response.headers(), policy) {
        let mut response = response;
        mark(response.headers_mut(), not_stored(reason));
        return Ok(response);
    }
    let (head, body) = match collect_limited(response, policy.max_entry_bytes).await {
        Ok(Collected::Whole(head, body)) => (head, body),
        Ok(Collected::TooLarge(mut response)) => {
            mark(response.headers_mut(), not_stored(NotStorable::TooLarge));
            return Ok(response);
        }
        Err(e) => {
            let message = format!("route body failed: {e}");
            return Err(warp::reject::custom(ApiError::Internal(message)));
        }
    };
    // A body the route gzip-encoded itself is checked once, here on the miss path: it must
    // inflate within the size limit, so no hit can ever inflate something larger.
    if entry::is_gzip_encoded(&head.headers)
        && gunzip_limited(&body, policy.max_entry_bytes).is_err()
    {
        let mut response = Response::from_parts(head, body.into());
        mark(response.headers_mut(), not_stored(NotStorable::TooLarge));
        return Ok(response);
    }
    let Some(replayed) = entry::replayable_headers(&head.headers) else {
        let mut response = Response::from_parts(head, body.into());
        mark(response.headers_mut(), not_stored(NotStorable::Encoding));
        return Ok(response);
    };
    let etag = head
        .headers
        .get(warp::http::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| entry::etag_for(&body));
    let representation = represent(&state.cache, &head.headers, body);
    let ttl = policy.ttl.unwrap_or_else(|| state.cache.default_ttl());
    let meta = EntryMeta {
        status: head.status.as_u16(),
        headers: replayed,
        stored_at_ms: entry::now_ms(),
        ttl_ms: ttl.as_millis() as u64,
        etag: etag.clone(),
    };
    let stored = store(state, &key, generation, &meta, &representation, ttl).await;
    let outcome = match stored {
        Ok(()) => miss_outcome(refresh, true, None),
        Err(()) => miss_outcome(refresh, false, Some("cache-unavailable")),
    };
    Answer {
        request,
        status: head.status,
        headers: header_map(&meta.headers),
        body: representation,
        etag: &etag,
        max_age: ttl,
        age: None,
        vary: &policy.vary,
        outcome,
    }
    .into_response()
    .map_err(|e| warp::reject::custom(ApiError::Internal(format!("cached body: {e}"))))
}

fn miss_outcome(refresh: bool, stored: bool, detail: Option<&'static str>) -> Outcome {
    if refresh {
        Outcome::Refresh { stored }
    } else {
        Outcome::Miss { stored, detail }
    }
}

/// The body as it will be stored: compressed once here when over the threshold (the same
/// bytes then go to gzip-accepting clients), or kept as the route gzip-encoded it.
fn represent(cache: &CacheManager, headers: &HeaderMap, body: Bytes) -> Representation {
    if entry::is_gzip_encoded(headers) {
        return Representation::Gzip {
            compressed: body,
            plain: None,
        };
    }
    if cache.codec().should_compress(body.len()) {
        let compressed = cache.codec().gzip(&body);
        if compressed.len() < body.len() {
            return Representation::Gzip {
                compressed: Bytes::from(compressed),
                plain: Some(body),
            };
        }
    }
    Representation::Plain(body)
}

async fn store(
    state: &CachedRoute,
    key: &str,
    generation: Generation,
    meta: &EntryMeta,
    representation: &Representation,
    ttl: Duration,
) -> Result<(), ()> {
    let ns = &state.policy.namespace;
    let meta = serde_json::to_vec(meta).map_err(|_| ())?;
    let payload = match representation {
        Representation::Plain(body) => StorePayload::Plain(body),
        Representation::Gzip { compressed, plain } => StorePayload::Gzip {
            compressed,
            plain_len: plain.as_ref().map_or(compressed.len(), Bytes::len),
        },
    };
    state
        .cache
        .store(ns, key, generation, &meta, payload, Some(ttl))
        .await
        .map_err(|_| ())
}
