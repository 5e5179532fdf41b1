//! Answering from an entry the lookup found in the backend, by its freshness: fresh (a hit,
//! maybe refreshed early), inside stale-while-revalidate (answer now, refresh behind), inside
//! stale-if-error (ask the origin first, fall back to the entry), or dead (a miss).

use std::sync::Arc;

use warp::reply::Response;

use super::answer::{answer_from, answer_shared, elapsed_ms};
use super::local::LocalTier;
use super::miss::{revalidate_in_background, store_and_answer, Forward, Stored};
use super::CachedRoute;
use crate::cache::{CacheEvent, Stamp};
use crate::filters::early_refresh;
use crate::filters::entry::{self, EntryMeta, Freshness, StoredEntry};
use crate::filters::failure::FilterFailure;
use crate::filters::flights::flight_key;
use crate::filters::flights::{follow, Role};
use crate::filters::origin::origin_request;
use crate::filters::request::RequestParts;
use crate::filters::response::Outcome;

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

/// Answers from a stored entry according to its freshness; `None` when it is of no use and
/// the request should go on as a miss.
pub(super) async fn answer_stored(
    state: &Arc<CachedRoute>,
    request: &RequestParts,
    found: Found<'_>,
) -> Result<Option<Response>, FilterFailure> {
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
            let beta = state.resolved.early_refresh_beta;
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
                            return answer.await.map(Some);
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
    answer_from(
        request,
        &state.policy,
        &stored.meta,
        stored.representation,
        Some(stored.meta.age(now)),
        outcome,
    )
    .map(Some)
}
