//! Building an answer from an entry: the one place that turns stored status, headers and body
//! into a response with the cache's headers (`X-Cache`, `Cache-Status`, `Age`, `ETag`, the
//! downstream `Cache-Control`, 304 on a matching `If-None-Match`).

use std::time::{Duration, Instant};

use warp::http::StatusCode;
use warp::reply::Response;

use super::CachedRoute;
use crate::filters::entry::{self, EntryMeta};
use crate::filters::failure::FilterFailure;
use crate::filters::flights::SharedEntry;
use crate::filters::policy::CachePolicy;
use crate::filters::request::RequestParts;
use crate::filters::response::{header_map, Answer, Outcome, Representation};

/// Milliseconds since `started`.
pub(super) fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The answer to `request` from an entry described by `meta`; `age` is how old the entry is
/// (none for an answer the origin just gave).
pub(super) fn answer_from(
    request: &RequestParts,
    policy: &CachePolicy,
    meta: &EntryMeta,
    representation: Representation,
    age: Option<Duration>,
    outcome: Outcome,
) -> Result<Response, FilterFailure> {
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
            .header_value(Duration::from_millis(meta.ttl_ms)),
        age,
        vary: &policy.vary,
        outcome,
    }
    .into_response()
    .map_err(|e| FilterFailure(format!("cached body: {e}")))
}

/// The answer to a request that waited for another request's origin call (a collapsed miss).
pub(super) fn answer_shared(
    state: &CachedRoute,
    request: &RequestParts,
    shared: &SharedEntry,
    stale: bool,
) -> Result<Response, FilterFailure> {
    answer_from(
        request,
        &state.policy,
        &shared.meta,
        shared.representation.clone(),
        Some(shared.meta.age(entry::now_ms())),
        Outcome::Collapsed { stale },
    )
}
