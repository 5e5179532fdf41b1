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

use std::sync::{Arc, Mutex};

use warp::http::{Method, StatusCode};
use warp::reject::{Reject, Rejection};
use warp::reply::Response;
use warp::{Filter, Reply};

use super::early_refresh;
use super::entry::{self, EntryMeta, Freshness};
use super::failure::FilterFailure;
use super::flights::{follow, Flights, Leader, Role, SharedEntry};
use super::origin::{detached, origin_request, Origin};
use super::policy::CachePolicy;
use super::request::{request_parts, RequestParts};
use super::response::{header_map, mark, Answer, Outcome, Prebuilt, Representation};
use super::storing::{self, Preparation, Prepared};
use crate::cache::codec::{Decoded, PayloadEncoding};
use crate::cache::l1::{Held, L1};
use crate::cache::refill_lock::RefillLock;
use crate::cache::tag::decode_names;
use crate::cache::{CacheEvent, CacheManager, Lookup, Stamp};

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
    let state = Arc::new(CachedRoute {
        cache,
        policy,
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

struct CachedRoute {
    cache: CacheManager,
    policy: CachePolicy,
    flights: Arc<Flights>,
    origin: Origin,
}

/// What to do once the route has answered.
struct Plan {
    state: Arc<CachedRoute>,
    request: RequestParts,
    action: Action,
    /// When the route was handed the request: the origin's time is measured from here.
    started: std::time::Instant,
}

enum Action {
    /// Not a cacheable method: pass the response through.
    PassThrough,
    /// Do not use the cache; say why.
    Bypass(&'static str),
    /// Store the response under `key` with `stamp` (read before the route ran). HEAD
    /// answers are never stored (`store: false`): a handler may answer HEAD with no body.
    Store {
        key: String,
        stamp: Stamp,
        forward: Forward,
        store: bool,
        leader: Option<Leader>,
        refill_lock: Option<RefillLock>,
    },
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

async fn prepare(request: RequestParts, state: Arc<CachedRoute>) -> Result<Plan, Rejection> {
    let action = decide(&request, &state).await?;
    Ok(Plan {
        state,
        request,
        action,
        started: std::time::Instant::now(),
    })
}

async fn decide(request: &RequestParts, state: &Arc<CachedRoute>) -> Result<Action, Rejection> {
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
    let l1 = state.cache.l1().filter(|_| policy.l1);
    let full_key = l1.map(|_| state.cache.layout().full_key(ns, &key));
    if let (Some(l1), Some(full_key), false) = (l1, &full_key, directives.no_cache) {
        if let Some(response) = answer_local(state, request, l1, full_key, &key)? {
            return Err(answered(response));
        }
    }
    // Taken before the lookup: an invalidation that arrives while the entry travels from Redis
    // keeps it out of L1.
    let l1_seen = l1.and_then(|l1| l1.snapshot());
    if state.cache.settle_pending_bust(ns).await.is_err() {
        return Ok(Action::Bypass("cache-unavailable"));
    }
    let (hit, current) = match state.cache.lookup(ns, &key, policy.is_tagged()).await {
        Ok(Lookup::Hit {
            decoded,
            soft_purged,
            current,
        }) => (Some((decoded, soft_purged)), Some(current)),
        Ok(Lookup::Miss { current }) => (None, current),
        Err(_) => return Ok(Action::Bypass("cache-unavailable")),
    };
    let refresh = directives.no_cache;
    let mut forward = if refresh {
        Forward::Refresh
    } else {
        Forward::Miss
    };
    if let (Some((decoded, soft_purged)), false, Some(current)) = (hit, refresh, current) {
        match StoredEntry::read(decoded) {
            Some(stored) => {
                let local = match (l1, &full_key, l1_seen) {
                    (Some(l1), Some(full_key), Some(seen)) => {
                        Some(LocalTier { l1, full_key, seen })
                    }
                    _ => None,
                };
                let found = Found {
                    key: &key,
                    current,
                    stored,
                    soft_purged,
                    local,
                };
                match answer_stored(state, request, found).await? {
                    Some(response) => return Err(answered(response)),
                    None => forward = Forward::Stale,
                }
            }
            None => {
                state.cache.delete(ns, &key).await.ok();
            }
        }
    }
    // The stamp must be the one current *before* the route runs: a write that commits while
    // the route reads must leave whatever this request stores dead on arrival.
    let stamp = match current {
        Some(stamp) => stamp,
        None => match state.cache.current_stamp(ns).await {
            Ok(stamp) => stamp,
            Err(_) => return Ok(Action::Bypass("cache-unavailable")),
        },
    };
    let is_get = request.method() == Method::GET;
    let stale = forward == Forward::Stale;
    let leader = if is_get && !refresh {
        lead_or_follow(state, request, &flight_key(stamp, &key), stale).await?
    } else {
        None
    };
    let mut refill_lock = None;
    if leader.is_some() && policy.uses_refill_lock(&state.cache) {
        match state
            .cache
            .try_refill_lock(ns, &key, policy.origin_timeout)
            .await
        {
            Ok(Some(lock)) => refill_lock = Some(lock),
            Ok(None) => {
                if let Some(shared) = wait_for_refill(state, &key, stamp).await {
                    if let Some(leader) = &leader {
                        leader.publish(Arc::clone(&shared));
                    }
                    return Err(answered(answer_shared(state, request, &shared, stale)?));
                }
            }
            Err(_) => {}
        }
    }
    Ok(Action::Store {
        key,
        stamp,
        forward,
        store: is_get,
        leader,
        refill_lock,
    })
}

/// How often a request waiting for another instance's refill looks for the entry.
const REFILL_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// Joins the flight for `flight`: returns the leader's role, or answers with the leader's
/// entry. A follower whose leader left without one tries once more to lead or follow.
async fn lead_or_follow(
    state: &CachedRoute,
    request: &RequestParts,
    flight: &str,
    stale: bool,
) -> Result<Option<Leader>, Rejection> {
    for _ in 0..2 {
        match state.flights.join(flight) {
            Role::Leader(leader) => return Ok(Some(leader)),
            Role::Follower(receiver) => {
                if let Some(shared) = follow(receiver, state.policy.origin_timeout).await {
                    return Err(answered(answer_shared(state, request, &shared, stale)?));
                }
            }
        }
    }
    Ok(None)
}

/// Another instance holds the refill lock: wait (up to the origin timeout) for the entry it
/// stores; `None` when it did not come in time.
async fn wait_for_refill(state: &CachedRoute, key: &str, stamp: Stamp) -> Option<Arc<SharedEntry>> {
    let (cache, ns) = (&state.cache, &state.policy.namespace);
    let deadline = tokio::time::Instant::now() + state.policy.origin_timeout;
    // While the holder works, only its lock is checked; once the lock is gone (released,
    // expired, or its holder had nothing storable) the entry is looked up once.
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(REFILL_POLL).await;
        match RefillLock::is_held(cache, ns, key).await {
            Ok(true) => continue,
            Ok(false) => break,
            Err(_) => return None,
        }
    }
    let Ok(Lookup::Hit {
        decoded,
        soft_purged: false,
        current,
    }) = cache.lookup(ns, key, state.policy.is_tagged()).await
    else {
        return None;
    };
    // Only an entry no newer invalidation reached since this request's own lookup will do.
    if current.generation != stamp.generation || decoded.clock < Some(stamp.clock) {
        return None;
    }
    let stored = StoredEntry::read(decoded)?;
    if stored.meta.freshness(entry::now_ms()) != Freshness::Fresh {
        return None;
    }
    Some(Arc::new(SharedEntry {
        meta: stored.meta,
        representation: stored.representation,
    }))
}

/// A decoded entry with its metadata.
struct StoredEntry {
    meta: EntryMeta,
    representation: Representation,
    /// The tag section as stored (names separated by `\n`).
    tags: bytes::Bytes,
}

impl StoredEntry {
    fn read(decoded: Decoded) -> Option<Self> {
        let meta: EntryMeta = serde_json::from_slice(&decoded.meta).ok()?;
        StatusCode::from_u16(meta.status).ok()?;
        let representation = match decoded.encoding {
            PayloadEncoding::Identity => Representation::Plain(decoded.payload),
            PayloadEncoding::Gzip => Representation::Gzip {
                compressed: decoded.payload,
                plain: None,
            },
        };
        Some(Self {
            meta,
            representation,
            tags: decoded.tags,
        })
    }
}

/// An entry held in the L1 tier: parsed, with its usual answers prebuilt.
struct LocalEntry {
    meta: EntryMeta,
    representation: Representation,
    /// The namespace's stamp when it was read from Redis (an early refresh stores under it).
    current: Stamp,
    /// The answer for clients that get the plain body, when it is at hand.
    plain: Option<Prebuilt>,
    /// The answer for gzip-accepting clients, for an entry stored compressed.
    gzip: Option<Prebuilt>,
}

/// Where a Redis hit may be copied into the L1 tier.
struct LocalTier<'a> {
    l1: &'a L1,
    full_key: &'a str,
    /// Taken before the lookup.
    seen: u64,
}

impl LocalTier<'_> {
    fn keep(&self, stored: &StoredEntry, current: Stamp, policy: &CachePolicy, now: u64) {
        let (ns, vary) = (&policy.namespace, &policy.vary);
        let bytes = match &stored.representation {
            Representation::Plain(body) => body.len(),
            Representation::Gzip { compressed, plain } => {
                compressed.len() + plain.as_ref().map_or(0, bytes::Bytes::len)
            }
        };
        let tags: Vec<String> = decode_names(&stored.tags).map(str::to_string).collect();
        let (plain, gzip) = Prebuilt::for_entry(
            &header_map(&stored.meta.headers),
            &stored.representation,
            &stored.meta.etag,
            &policy
                .client_cache_control
                .header_value(std::time::Duration::from_millis(stored.meta.ttl_ms)),
            vary,
        );
        let entry = LocalEntry {
            meta: stored.meta.clone(),
            representation: stored.representation.clone(),
            current,
            plain,
            gzip,
        };
        let held = Held {
            namespace: ns,
            tags: &tags,
            value: Arc::new(entry),
            bytes,
            lifetime: stored.meta.remaining(now),
        };
        self.l1.insert(self.full_key, held, self.seen);
    }
}

/// Answers from the L1 tier when it holds a fresh entry for `full_key`.
fn answer_local(
    state: &Arc<CachedRoute>,
    request: &RequestParts,
    l1: &L1,
    full_key: &str,
    key: &str,
) -> Result<Option<Response>, Rejection> {
    let Some(value) = l1.get(full_key) else {
        return Ok(None);
    };
    let Ok(local) = value.downcast::<LocalEntry>() else {
        return Ok(None);
    };
    let now = entry::now_ms();
    if local.meta.freshness(now) != Freshness::Fresh {
        return Ok(None);
    }
    let remaining = local.meta.remaining(now);
    let origin = std::time::Duration::from_millis(local.meta.origin_ms);
    let beta = state.policy.early_refresh_beta(&state.cache);
    let early_refresh = early_refresh::should_refresh(remaining, origin, beta)
        && revalidate_in_background(state, request, key, local.current);
    state
        .cache
        .stats()
        .record(Some(&state.policy.namespace), CacheEvent::Hit);
    let outcome = Outcome::Hit {
        remaining,
        early_refresh,
        local: true,
    };
    // The usual case, from the prebuilt answer; conditional requests and inflating for a
    // client without gzip take the general path.
    if !request
        .headers()
        .contains_key(warp::http::header::IF_NONE_MATCH)
    {
        let compressed = matches!(local.representation, Representation::Gzip { .. });
        let prebuilt = if compressed && request.accepts_gzip() {
            local.gzip.as_ref()
        } else {
            local.plain.as_ref()
        };
        if let Some(prebuilt) = prebuilt {
            let status = StatusCode::from_u16(local.meta.status).unwrap_or(StatusCode::OK);
            return Ok(Some(prebuilt.answer(status, local.meta.age(now), outcome)));
        }
    }
    answer_from(
        request,
        &state.policy,
        &local.meta,
        local.representation.clone(),
        now,
        outcome,
    )
    .map(Some)
}

/// An entry the lookup found, with what is needed to answer from it or refresh it.
struct Found<'a> {
    key: &'a str,
    /// The namespace's stamp now: a refresh is stored under it.
    current: Stamp,
    stored: StoredEntry,
    /// A soft purge reached it: it is stale whatever its age.
    soft_purged: bool,
    /// Where a fresh entry is copied for later hits, when the route uses L1.
    local: Option<LocalTier<'a>>,
}

/// How usable `meta` is at `now`; a soft-purged entry is past its fresh lifetime whatever its
/// age, and usable only inside the stale windows it was stored with.
fn freshness_of(meta: &EntryMeta, now: u64, soft_purged: bool) -> Freshness {
    match meta.freshness(now) {
        Freshness::Fresh | Freshness::Revalidate if soft_purged => {
            if meta.stale_while_revalidate_ms > 0 {
                Freshness::Revalidate
            } else if meta.stale_if_error_ms > 0 {
                Freshness::OnlyIfError
            } else {
                Freshness::Dead
            }
        }
        freshness => freshness,
    }
}

/// Answers from a stored entry according to its freshness; `None` when it is of no use and
/// the request should go on as a miss.
async fn answer_stored(
    state: &Arc<CachedRoute>,
    request: &RequestParts,
    found: Found<'_>,
) -> Result<Option<Response>, Rejection> {
    let Found {
        key,
        current,
        stored,
        soft_purged,
        local,
    } = found;
    let now = entry::now_ms();
    let outcome = match freshness_of(&stored.meta, now, soft_purged) {
        Freshness::Fresh => {
            let remaining = stored.meta.remaining(now);
            let origin = std::time::Duration::from_millis(stored.meta.origin_ms);
            let beta = state.policy.early_refresh_beta(&state.cache);
            let early_refresh = early_refresh::should_refresh(remaining, origin, beta)
                && revalidate_in_background(state, request, key, current);
            if let Some(local) = &local {
                local.keep(&stored, current, &state.policy, now);
            }
            Outcome::Hit {
                remaining,
                early_refresh,
                local: false,
            }
        }
        Freshness::Revalidate => {
            revalidate_in_background(state, request, key, current);
            Outcome::StaleWhileRevalidate {
                stale_for: stored.meta.staleness(now),
                soft_purged,
            }
        }
        Freshness::OnlyIfError => {
            let origin_timeout = state.policy.origin_timeout;
            match state.flights.join(&flight_key(current, key)) {
                Role::Follower(receiver) => {
                    // Another request is already asking the origin: take its answer if it comes
                    // in time, else the stale entry.
                    if let Some(shared) = follow(receiver, origin_timeout).await {
                        return Ok(Some(answer_shared(state, request, &shared, true)?));
                    }
                    Outcome::StaleIfError {
                        origin_status: None,
                    }
                }
                Role::Leader(leader) => {
                    let started = std::time::Instant::now();
                    let origin = (state.origin)(origin_request(request));
                    match tokio::time::timeout(origin_timeout, origin).await {
                        // Only an answer the policy stores replaces the entry: a detached call
                        // of a route nested under path filters can answer 404 for a resource
                        // that exists, and an error must not displace a good stale entry.
                        Ok(Some(response))
                            if state.policy.statuses.contains(&response.status()) =>
                        {
                            let answer = store_and_answer(
                                state,
                                request,
                                response,
                                Stored {
                                    key,
                                    stamp: current,
                                    forward: Forward::Stale,
                                    origin_ms: elapsed_ms(started),
                                },
                                Some(&leader),
                            );
                            return Ok(Some(answer.await?));
                        }
                        Ok(Some(response)) => Outcome::StaleIfError {
                            origin_status: Some(response.status().as_u16()),
                        },
                        Ok(None) | Err(_) => Outcome::StaleIfError {
                            origin_status: None,
                        },
                    }
                }
            }
        }
        Freshness::Dead => return Ok(None),
    };
    if matches!(
        outcome,
        Outcome::StaleWhileRevalidate { .. } | Outcome::StaleIfError { .. }
    ) {
        state
            .cache
            .stats()
            .record(Some(&state.policy.namespace), CacheEvent::StaleServe);
    }
    let answer = answer_from(
        request,
        &state.policy,
        &stored.meta,
        stored.representation,
        now,
        outcome,
    );
    Ok(Some(answer?))
}

fn elapsed_ms(started: std::time::Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn answer_from(
    request: &RequestParts,
    policy: &CachePolicy,
    meta: &EntryMeta,
    representation: Representation,
    now: u64,
    outcome: Outcome,
) -> Result<Response, Rejection> {
    let status = StatusCode::from_u16(meta.status).unwrap_or(StatusCode::OK);
    // Downstream caches compute freshness as max-age minus Age, so max-age (when the policy
    // grants one) is the entry's whole lifetime, not what is left of it.
    Answer {
        request,
        status,
        headers: header_map(&meta.headers),
        body: representation,
        etag: &meta.etag,
        cache_control: policy
            .client_cache_control
            .header_value(std::time::Duration::from_millis(meta.ttl_ms)),
        age: Some(meta.age(now)),
        vary: &policy.vary,
        outcome,
    }
    .into_response()
    .map_err(|e| warp::reject::custom(FilterFailure(format!("cached body: {e}"))))
}

fn answer_shared(
    state: &CachedRoute,
    request: &RequestParts,
    shared: &SharedEntry,
    stale: bool,
) -> Result<Response, Rejection> {
    let representation = shared.representation.clone();
    answer_from(
        request,
        &state.policy,
        &shared.meta,
        representation,
        entry::now_ms(),
        Outcome::Collapsed { stale },
    )
}

/// Refreshes `key` from the origin on a task of its own, storing under `current`, unless a
/// refresh or miss of the same key is already under way in this process, or (refill lock)
/// another instance is refreshing it. Returns whether this call started a refresh task.
fn revalidate_in_background(
    state: &Arc<CachedRoute>,
    request: &RequestParts,
    key: &str,
    current: Stamp,
) -> bool {
    let Role::Leader(leader) = state.flights.join(&flight_key(current, key)) else {
        return false;
    };
    let (state, key) = (Arc::clone(state), key.to_string());
    let detached_request = origin_request(request);
    let request = request.clone();
    tokio::spawn(async move {
        let (cache, policy) = (&state.cache, &state.policy);
        // One refresh across instances too: the others keep serving what they have.
        let lock = match cache
            .try_refill_lock(&policy.namespace, &key, policy.origin_timeout)
            .await
        {
            Ok(Some(lock)) => lock,
            Ok(None) | Err(_) => return,
        };
        let started = std::time::Instant::now();
        let origin = (state.origin)(detached_request);
        if let Ok(Some(response)) = tokio::time::timeout(policy.origin_timeout, origin).await {
            let origin_ms = elapsed_ms(started);
            if !response.status().is_server_error() {
                if let Ok(Preparation::Storable(prepared)) =
                    storing::prepare(cache, policy, &request, response, origin_ms).await
                {
                    if storing::store(cache, policy, &key, current, &prepared).await {
                        leader.publish(share(&prepared));
                    }
                }
            }
        }
        lock.release().await;
    });
    true
}

/// Flights are per stamp: a request that saw a newer stamp (it started after a write) must
/// never take the answer of an origin read that began before the write.
fn flight_key(stamp: Stamp, key: &str) -> String {
    format!("{:016x}:{:x}:{key}", stamp.generation.value(), stamp.clock)
}

fn share(prepared: &Prepared) -> Arc<SharedEntry> {
    Arc::new(SharedEntry {
        meta: prepared.meta.clone(),
        representation: prepared.representation.clone(),
    })
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
            store: true,
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
                    origin_ms: elapsed_ms(plan.started),
                },
                leader.as_ref(),
            )
            .await;
            // Release the lock before leaving the flight: a follower that takes over must
            // not find it still held.
            if let Some(lock) = refill_lock {
                lock.release().await;
            }
            drop(leader);
            answer
        }
        Action::Store { forward, .. } => {
            mark(
                response.headers_mut(),
                miss_outcome(forward, false, Some("head")),
            );
            Ok(response)
        }
    }
}

/// Where and how a response from the origin is stored.
struct Stored<'a> {
    key: &'a str,
    /// Read before the origin was asked.
    stamp: Stamp,
    /// Why the origin was asked.
    forward: Forward,
    /// How long the origin took.
    origin_ms: u64,
}

async fn store_and_answer(
    state: &CachedRoute,
    request: &RequestParts,
    response: Response,
    target: Stored<'_>,
    leader: Option<&Leader>,
) -> Result<Response, Rejection> {
    let (cache, policy) = (&state.cache, &state.policy);
    let kind = target.forward;
    let prepared = match storing::prepare(cache, policy, request, response, target.origin_ms).await
    {
        Ok(Preparation::Storable(prepared)) => prepared,
        Ok(Preparation::NotStorable(mut response, reason)) => {
            mark(
                response.headers_mut(),
                miss_outcome(kind, false, Some(reason.detail())),
            );
            return Ok(response);
        }
        Err(err) => return Err(warp::reject::custom(err)),
    };
    let stored = storing::store(cache, policy, target.key, target.stamp, &prepared).await;
    if let Some(leader) = leader {
        leader.publish(share(&prepared));
    }
    let outcome = if stored {
        miss_outcome(kind, true, None)
    } else {
        miss_outcome(kind, false, Some("cache-unavailable"))
    };
    let Prepared {
        head,
        meta,
        representation,
        ..
    } = prepared;
    Answer {
        request,
        status: head.status,
        headers: header_map(&meta.headers),
        body: representation,
        etag: &meta.etag,
        cache_control: policy
            .client_cache_control
            .header_value(std::time::Duration::from_millis(meta.ttl_ms)),
        age: None,
        vary: &policy.vary,
        outcome,
    }
    .into_response()
    .map_err(|e| warp::reject::custom(FilterFailure(format!("cached body: {e}"))))
}

/// Why the origin was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Forward {
    /// Nothing usable was stored.
    Miss,
    /// The request asked for a fresh copy (`no-cache`).
    Refresh,
    /// The stored entry was stale (past its windows, soft-purged, or in its stale-if-error
    /// window): the origin's answer replaces it.
    Stale,
}

fn miss_outcome(kind: Forward, stored: bool, detail: Option<&'static str>) -> Outcome {
    match kind {
        Forward::Miss => Outcome::Miss { stored, detail },
        Forward::Refresh => Outcome::Refresh { stored },
        Forward::Stale => Outcome::Revalidated { stored },
    }
}
