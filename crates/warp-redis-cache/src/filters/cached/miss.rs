//! When the origin is asked: storing its answer and answering with it, and refreshing an
//! entry in the background (stale-while-revalidate, early refresh) so that no client waits.

use std::sync::Arc;

use warp::reply::Response;

use super::answer::{answer_from, elapsed_ms};
use super::CachedRoute;
use crate::cache::Stamp;
use crate::filters::entry::EntryMeta;
use crate::filters::failure::FilterFailure;
use crate::filters::flights::{flight_key, Leader, Role, SharedEntry};
use crate::filters::origin::{conditional_request, origin_request};
use crate::filters::request::RequestParts;
use crate::filters::response::{header_map, mark, Outcome, Representation};
use crate::filters::storing::{self, Preparation, Prepared};
use warp::http::StatusCode;

/// Refreshes `key` from the origin on a task of its own, storing under `current`, unless a
/// refresh or miss of the same key is already under way in this process, or (refill lock)
/// another instance is refreshing it. With `validated` (HTTP semantics: the stored entry) the
/// origin is asked conditionally and a 304 refreshes the entry. Returns whether this call
/// started a refresh task.
pub(super) fn revalidate_in_background(
    state: &Arc<CachedRoute>,
    request: &RequestParts,
    key: &str,
    current: Stamp,
    validated: Option<(EntryMeta, Representation)>,
) -> bool {
    let Role::Leader(leader) = state.flights.join(&flight_key(current, key)) else {
        return false;
    };
    let (state, key) = (Arc::clone(state), key.to_string());
    let detached_request = match &validated {
        Some((meta, _)) => conditional_request(request, &header_map(&meta.headers)),
        None => origin_request(request),
    };
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
            if let (Some((meta, representation)), StatusCode::NOT_MODIFIED) =
                (&validated, response.status())
            {
                let lifetimes = &state.resolved.lifetimes;
                let updated = storing::revalidated(
                    policy,
                    lifetimes,
                    &request,
                    meta,
                    representation,
                    response.headers(),
                    origin_ms,
                );
                if updated.storable
                    && storing::store(cache, policy, &key, current, &updated.prepared).await
                {
                    leader.publish(share(&updated.prepared));
                }
            } else if !response.status().is_server_error() {
                if let Ok(Preparation::Storable(prepared)) = storing::prepare(
                    cache,
                    policy,
                    &state.resolved.lifetimes,
                    &request,
                    response,
                    origin_ms,
                )
                .await
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

pub(super) fn share(prepared: &Prepared) -> Arc<SharedEntry> {
    Arc::new(SharedEntry {
        meta: prepared.meta.clone(),
        representation: prepared.representation.clone(),
    })
}

/// Where and how a response from the origin is stored.
pub(super) struct Stored<'a> {
    pub(super) key: &'a str,
    /// Read before the origin was asked.
    pub(super) stamp: Stamp,
    /// Why the origin was asked.
    pub(super) forward: Forward,
    /// How long the origin took.
    pub(super) origin_ms: u64,
}

/// Stores what the origin answered (when the policy allows) and answers with it.
pub(super) async fn store_and_answer(
    state: &CachedRoute,
    request: &RequestParts,
    response: Response,
    target: Stored<'_>,
    leader: Option<&Leader>,
) -> Result<Response, FilterFailure> {
    let (cache, policy) = (&state.cache, &state.policy);
    let kind = target.forward;
    let lifetimes = &state.resolved.lifetimes;
    let prepared = match storing::prepare(
        cache,
        policy,
        lifetimes,
        request,
        response,
        target.origin_ms,
    )
    .await
    {
        Ok(Preparation::Storable(prepared)) => prepared,
        Ok(Preparation::NotStorable(mut response, reason)) => {
            mark(
                response.headers_mut(),
                miss_outcome(kind, false, Some(reason.detail())),
            );
            return Ok(response);
        }
        Err(failure) => return Err(failure),
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
    answer_from(
        request,
        policy,
        &prepared.meta,
        prepared.representation,
        None,
        outcome,
    )
}

/// Answers with what the origin said without storing it (`reason`: why not), and hands it to
/// the requests waiting on `leader` when it could have been stored.
pub(super) async fn share_unstored(
    state: &CachedRoute,
    request: &RequestParts,
    response: Response,
    forward: Forward,
    reason: &'static str,
    leader: &Leader,
    started: std::time::Instant,
) -> Result<Response, FilterFailure> {
    let (cache, policy) = (&state.cache, &state.policy);
    let lifetimes = &state.resolved.lifetimes;
    let origin_ms = elapsed_ms(started);
    match storing::prepare(cache, policy, lifetimes, request, response, origin_ms).await? {
        Preparation::Storable(prepared) => {
            leader.publish(share(&prepared));
            answer_from(
                request,
                policy,
                &prepared.meta,
                prepared.representation,
                None,
                miss_outcome(forward, false, Some(reason)),
            )
        }
        Preparation::NotStorable(mut response, not_storable) => {
            mark(
                response.headers_mut(),
                miss_outcome(forward, false, Some(not_storable.detail())),
            );
            Ok(response)
        }
    }
}

/// Why the origin was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Forward {
    /// Nothing usable was stored.
    Miss,
    /// The request asked for a fresh copy (`no-cache`).
    Refresh,
    /// The stored entry was stale (past its windows, soft-purged, or in its stale-if-error
    /// window): the origin's answer replaces it.
    Stale,
}

pub(super) fn miss_outcome(kind: Forward, stored: bool, detail: Option<&'static str>) -> Outcome {
    match kind {
        Forward::Miss => Outcome::Miss { stored, detail },
        Forward::Refresh => Outcome::Refresh { stored },
        Forward::Stale => Outcome::Revalidated { stored },
    }
}
