//! The choice made before the route runs: answer from the cache now, or run the route and
//! say what to do with its answer ([`Action`]). Answers are values here ([`Decision::Answer`]);
//! only the wiring in [`super`] turns one into the rejection warp needs to skip the route.

use std::sync::Arc;

use warp::http::Method;
use warp::reply::Response;

use super::answer::answer_shared;
use super::local::{answer_local, LocalTier};
use super::miss::Forward;
use super::stored::{answer_stored, keeps_slot, Found, Reuse};
use super::CachedRoute;
use crate::cache::refill_lock::RefillLock;
use crate::cache::{Lookup, Stamp};
use crate::filters::entry::{self, Freshness, StoredEntry};
use crate::filters::failure::FilterFailure;
use crate::filters::flights::{flight_key, follow, Leader, Role, SharedEntry};
use crate::filters::request::RequestParts;

pub(super) enum Action {
    /// Not a cacheable method: pass the response through.
    PassThrough,
    /// Do not use the cache; say why.
    Bypass(&'static str),
    /// Store the response under `key` with `stamp` (read before the route ran), unless
    /// `not_stored` says why not: HEAD answers are never stored (a handler may answer HEAD
    /// with no body), nor (HTTP semantics) another variant of a fresh entry, which keeps its
    /// slot.
    Store {
        key: String,
        stamp: Stamp,
        forward: Forward,
        not_stored: Option<&'static str>,
        leader: Option<Leader>,
        refill_lock: Option<RefillLock>,
    },
}

/// What [`decide`] chose.
pub(super) enum Decision {
    /// Answer with this, without running the route.
    Answer(Response),
    /// Run the route, then do this with its answer.
    RunRoute(Action),
}

/// Decides, before the route runs, whether the cache answers (L1, a stored entry, a collapsed
/// flight, another instance's refill) or the route runs and how its answer is treated.
pub(super) async fn decide(
    request: &RequestParts,
    state: &Arc<CachedRoute>,
) -> Result<Decision, FilterFailure> {
    let policy = &state.policy;
    if !request.is_cacheable_method() {
        return Ok(Decision::RunRoute(Action::PassThrough));
    }
    let directives = request.directives();
    if directives.no_store {
        return Ok(Decision::RunRoute(Action::Bypass("no-store")));
    }
    // With HTTP semantics the response decides (`private`, and section 3.5 for Authorization).
    if !policy.is_http() && request.has_unkeyed_credentials(&policy.vary) {
        return Ok(Decision::RunRoute(Action::Bypass("credentials")));
    }
    // A precondition or a range makes the route's answer one client's (a 412, a 206): with HTTP
    // semantics, where any status with freshness is stored, such a request bypasses the cache.
    if policy.is_http() && request.has_precondition_or_range() {
        return Ok(Decision::RunRoute(Action::Bypass("conditional")));
    }
    let key = match &policy.key {
        Some(key) => key.key(request),
        None => request.default_key(),
    };
    let key = request.finish_key(key, &policy.vary);
    let ns = &policy.namespace;
    let local = state.resolved.l1;
    let full_key = local.then(|| state.cache.layout().full_key(ns, &key));
    if let (Some(full_key), false) = (&full_key, directives.no_cache) {
        if let Some(response) = answer_local(state, request, full_key, &key)? {
            return Ok(Decision::Answer(response));
        }
    }
    // Taken before the lookup: an invalidation that arrives while the entry travels from Redis
    // keeps it out of L1.
    let l1_seen = if local {
        state.cache.local_snapshot()
    } else {
        None
    };
    if state.cache.settle_pending_bust(ns).await.is_err() {
        return Ok(Decision::RunRoute(Action::Bypass("cache-unavailable")));
    }
    let (hit, current) = match state.cache.lookup(ns, &key, policy.is_tagged()).await {
        Ok(Lookup::Hit {
            decoded,
            soft_purged,
            current,
        }) => (Some((decoded, soft_purged)), Some(current)),
        Ok(Lookup::Miss { current }) => (None, current),
        Err(_) => return Ok(Decision::RunRoute(Action::Bypass("cache-unavailable"))),
    };
    let refresh = directives.no_cache;
    let mut forward = if refresh {
        Forward::Refresh
    } else {
        Forward::Miss
    };
    // Why the response must not replace the entry (HTTP semantics: a fresh entry of another
    // variant keeps its slot).
    let mut keep_entry = None;
    if let (Some((decoded, soft_purged)), Some(current)) = (hit, current) {
        match StoredEntry::read(decoded) {
            // A reload (`no-cache`) asks the origin for its own copy; it must not evict a fresh
            // entry of another variant either.
            Some(stored) if refresh => {
                keep_entry = keeps_slot(state, request, &stored, soft_purged);
            }
            Some(stored) => {
                let local = match (&full_key, l1_seen) {
                    (Some(full_key), Some(seen)) => Some(LocalTier {
                        cache: &state.cache,
                        full_key,
                        seen,
                    }),
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
                    Reuse::Answered(response) => return Ok(Decision::Answer(response)),
                    Reuse::Unusable => forward = Forward::Stale,
                    Reuse::KeepEntry(reason) => keep_entry = Some(reason),
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
            Err(_) => return Ok(Decision::RunRoute(Action::Bypass("cache-unavailable"))),
        },
    };
    let is_get = request.method() == Method::GET;
    let stale = forward == Forward::Stale;
    let leader = if is_get && !refresh {
        match lead_or_follow(state, request, &flight_key(stamp, &key), stale).await? {
            Joined::Leader(leader) => leader,
            Joined::Answered(response) => return Ok(Decision::Answer(response)),
        }
    } else {
        None
    };
    let mut refill_lock = None;
    // The cross-instance refill lock is for refilling the entry; a request whose answer will not
    // be stored must not make other instances wait for it.
    if leader.is_some() && state.resolved.refill_lock && keep_entry.is_none() {
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
                    if let Some(response) = answer_shared(state, request, &shared, stale)? {
                        return Ok(Decision::Answer(response));
                    }
                }
            }
            Err(_) => {}
        }
    }
    Ok(Decision::RunRoute(Action::Store {
        key,
        stamp,
        forward,
        not_stored: if !is_get { Some("head") } else { keep_entry },
        leader,
        refill_lock,
    }))
}

/// How often a request waiting for another instance's refill looks for the entry.
const REFILL_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// What joining a flight gave.
enum Joined {
    /// This request asks the origin (as the flight's leader, or alone when `None`).
    Leader(Option<Leader>),
    /// The leader's entry answered it.
    Answered(Response),
}

/// Joins the flight for `flight`: returns the leader's role, or answers with the leader's
/// entry. A follower whose leader left without one tries once more to lead or follow.
async fn lead_or_follow(
    state: &CachedRoute,
    request: &RequestParts,
    flight: &str,
    stale: bool,
) -> Result<Joined, FilterFailure> {
    for _ in 0..2 {
        match state.flights.join(flight) {
            Role::Leader(leader) => return Ok(Joined::Leader(Some(leader))),
            Role::Follower(receiver) => {
                if let Some(shared) = follow(receiver, state.policy.origin_timeout).await {
                    return Ok(match answer_shared(state, request, &shared, stale)? {
                        Some(response) => Joined::Answered(response),
                        // The leader's answer is another variant: ask the origin alone.
                        None => Joined::Leader(None),
                    });
                }
            }
        }
    }
    Ok(Joined::Leader(None))
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
