//! Answering from an entry the lookup found in the backend, by its freshness: fresh (a hit,
//! maybe refreshed early), inside stale-while-revalidate (answer now, refresh behind), inside
//! stale-if-error (ask the origin first, fall back to the entry), or dead (a miss).

use std::sync::Arc;

use warp::reply::Response;

use super::answer::{answer_from, answer_shared, elapsed_ms, unusable_for};
use super::local::LocalTier;
use super::miss::{revalidate_in_background, share, store_and_answer, Forward, Stored};
use super::CachedRoute;
use crate::cache::{CacheEvent, Stamp};
use crate::filters::early_refresh;
use crate::filters::entry::{self, EntryMeta, Freshness, StoredEntry};
use crate::filters::failure::FilterFailure;
use crate::filters::flights::flight_key;
use crate::filters::flights::{follow_flight, Followed, Role};
use crate::filters::origin::{conditional_request, origin_request};
use crate::filters::request::RequestParts;
use crate::filters::response::{header_map, mark, Outcome};
use crate::filters::storing;
use warp::http::StatusCode;

/// An entry the lookup found, with what is needed to answer from it or refresh it.
pub(super) struct Found<'a> {
    pub(super) key: &'a str,
    /// The namespace's stamp now: a refresh is stored under it.
    pub(super) current: Stamp,
    pub(super) stored: StoredEntry,
    /// A soft purge reached it: it is stale whatever its age.
    pub(super) soft_purged: bool,
    /// Where a fresh entry is copied for later hits, when the route uses L1.
    pub(super) local: Option<LocalTier<'a>>,
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

/// What a stored entry did for a request.
pub(super) enum Reuse {
    /// It (or the origin's answer to its revalidation) answers.
    Answered(Response),
    /// It is of no use: the request goes on as a miss and its answer replaces it.
    Unusable,
    /// It may not answer this request (HTTP semantics: another variant, or credentials it does
    /// not allow; the reason is given) but is fresh: the request goes to the origin and the
    /// entry keeps its slot, so no client can evict a popular variant by asking for another.
    KeepEntry(&'static str),
}

/// Whether `stored`, which `request` may not use, is fresh and so keeps its slot; the reason
/// it may not be used, when so.
pub(super) fn keeps_slot(
    state: &CachedRoute,
    request: &RequestParts,
    stored: &StoredEntry,
    soft_purged: bool,
) -> Option<&'static str> {
    let reason = unusable_for(state, request, &stored.meta)?;
    keeps_slot_for(&stored.meta, soft_purged, reason)
}

/// `reason` when the entry described by `meta` is fresh (so it keeps its slot), else `None`.
fn keeps_slot_for(
    meta: &EntryMeta,
    soft_purged: bool,
    reason: &'static str,
) -> Option<&'static str> {
    (freshness_of(meta, entry::now_ms(), soft_purged) == Freshness::Fresh).then_some(reason)
}

/// Answers from a stored entry according to its freshness.
pub(super) async fn answer_stored(
    state: &Arc<CachedRoute>,
    request: &RequestParts,
    found: Found<'_>,
) -> Result<Reuse, FilterFailure> {
    let Found {
        key,
        current,
        stored,
        soft_purged,
        local,
    } = found;
    let now = entry::now_ms();
    let http_semantics = state.policy.is_http();
    if let Some(reason) = unusable_for(state, request, &stored.meta) {
        return Ok(match keeps_slot_for(&stored.meta, soft_purged, reason) {
            Some(reason) => Reuse::KeepEntry(reason),
            None => Reuse::Unusable,
        });
    }
    // What a background refresh revalidates (HTTP semantics: conditionally, with its validators).
    let validated = || http_semantics.then(|| (stored.meta.clone(), stored.representation.clone()));
    let outcome = match freshness_of(&stored.meta, now, soft_purged) {
        Freshness::Fresh => {
            let remaining = stored.meta.remaining(now);
            let origin = std::time::Duration::from_millis(stored.meta.origin_ms);
            let beta = state.resolved.early_refresh_beta;
            let early_refresh = early_refresh::should_refresh(remaining, origin, beta)
                && revalidate_in_background(state, request, key, current, validated());
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
            revalidate_in_background(state, request, key, current, validated());
            Outcome::StaleWhileRevalidate {
                stale_for: stored.meta.staleness(now),
                soft_purged,
            }
        }
        Freshness::OnlyIfError => {
            let asked = ask_origin(state, request, key, current, &stored, true).await?;
            match asked {
                Asked::Answered(response) => return Ok(Reuse::Answered(response)),
                Asked::Failed { origin_status } => Outcome::StaleIfError { origin_status },
            }
        }
        // Stale past every window, but with a validator: revalidate it with the origin
        // (HTTP semantics) instead of fetching it whole.
        Freshness::Dead if http_semantics && stored.meta.has_validator() => {
            return match ask_origin(state, request, key, current, &stored, false).await? {
                Asked::Answered(response) => Ok(Reuse::Answered(response)),
                Asked::Failed { origin_status } => {
                    Ok(Reuse::Answered(origin_failed(origin_status)))
                }
            };
        }
        Freshness::Dead => return Ok(Reuse::Unusable),
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
    answer_from(
        request,
        &state.policy,
        &stored.meta,
        stored.representation,
        Some(stored.meta.age(now)),
        outcome,
    )
    .map(Reuse::Answered)
}

/// What asking the origin about a stale entry gave.
enum Asked {
    /// An answer for the client: the origin's (stored when storable), the entry it confirmed
    /// with a 304, or another request's that asked at the same time.
    Answered(Response),
    /// The origin failed (its 5xx status, or `None` when it did not answer in time); with
    /// `stale_if_error` the caller answers with the stale entry.
    Failed { origin_status: Option<u16> },
}

/// Asks the origin for a fresh copy of a stale entry (conditionally, with HTTP semantics), as
/// the one request of this process doing so; the others wait for its answer.
async fn ask_origin(
    state: &Arc<CachedRoute>,
    request: &RequestParts,
    key: &str,
    current: Stamp,
    stored: &StoredEntry,
    stale_if_error: bool,
) -> Result<Asked, FilterFailure> {
    let policy = &state.policy;
    let leader = match state.flights.join(&flight_key(current, key)) {
        Role::Follower(receiver) => {
            // Another request is already asking the origin: take its answer if it comes in
            // time, else the stale entry.
            match follow_flight(receiver, policy.origin_timeout).await {
                Followed::Shared(shared) => match answer_shared(state, request, &shared, true)? {
                    Some(response) => return Ok(Asked::Answered(response)),
                    // Its answer is another variant: ask the origin alone.
                    None => None,
                },
                // The origin failed for the leader: so it did for this request.
                Followed::Failed(origin_status) => return Ok(Asked::Failed { origin_status }),
                // The leader had nothing to share (an answer not stored, another variant): ask
                // the origin alone rather than call the origin failed.
                Followed::LeaderLeft => None,
                Followed::TimedOut => {
                    return Ok(Asked::Failed {
                        origin_status: None,
                    })
                }
            }
        }
        Role::Leader(leader) => Some(leader),
    };
    let started = std::time::Instant::now();
    let origin_call = if policy.is_http() {
        conditional_request(request, &header_map(&stored.meta.headers))
    } else {
        origin_request(request)
    };
    let origin = (state.origin)(origin_call);
    let Ok(Some(response)) = tokio::time::timeout(policy.origin_timeout, origin).await else {
        if let Some(leader) = &leader {
            leader.fail(None);
        }
        return Ok(Asked::Failed {
            origin_status: None,
        });
    };
    let status = response.status();
    let origin_ms = elapsed_ms(started);
    if policy.is_http() && status == StatusCode::NOT_MODIFIED {
        let updated = storing::revalidated(
            policy,
            &state.resolved.lifetimes,
            request,
            &stored.meta,
            &stored.representation,
            response.headers(),
            origin_ms,
        );
        let prepared = updated.prepared;
        let stored_now =
            updated.storable && storing::store(&state.cache, policy, key, current, &prepared).await;
        // Only an entry that may be stored is handed to other requests: one the 304 made
        // unstorable (`Set-Cookie`, `private`) answers this request alone.
        if let (Some(leader), true) = (&leader, updated.storable) {
            leader.publish(share(&prepared));
        }
        let answer = answer_from(
            request,
            policy,
            &prepared.meta,
            prepared.representation,
            None,
            Outcome::Revalidated { stored: stored_now },
        )?;
        return Ok(Asked::Answered(answer));
    }
    // In the policy mode only an answer the policy stores replaces the entry: a detached call
    // of a route nested under path filters can answer 404 for a resource that exists, and an
    // error must not displace a good stale entry. With HTTP semantics any answer but a 5xx
    // does (the storing rules decide whether it is kept).
    let replaces = if policy.is_http() {
        !status.is_server_error()
    } else {
        policy.statuses.contains(&status)
    };
    if replaces || !stale_if_error {
        let answer = store_and_answer(
            state,
            request,
            response,
            Stored {
                key,
                stamp: current,
                forward: Forward::Stale,
                origin_ms,
            },
            leader.as_ref(),
        )
        .await;
        // A server error that was not shared is the origin failing: the waiting requests take
        // that answer rather than each asking a failing origin again.
        if let (Some(leader), true) = (&leader, status.is_server_error()) {
            leader.fail_unless_shared(Some(status.as_u16()));
        }
        return answer.map(Asked::Answered);
    }
    if let Some(leader) = &leader {
        leader.fail(Some(status.as_u16()));
    }
    Ok(Asked::Failed {
        origin_status: Some(status.as_u16()),
    })
}

/// The answer when the origin did not answer a revalidation that may not fall back to the
/// stale entry (RFC 9111 section 4.2.4: a cache that cannot revalidate answers 504).
fn origin_failed(origin_status: Option<u16>) -> Response {
    let status = origin_status
        .and_then(|status| StatusCode::from_u16(status).ok())
        .unwrap_or(StatusCode::GATEWAY_TIMEOUT);
    let mut response = Response::new(bytes::Bytes::new().into());
    *response.status_mut() = status;
    mark(
        response.headers_mut(),
        Outcome::Revalidated { stored: false },
    );
    response
}
