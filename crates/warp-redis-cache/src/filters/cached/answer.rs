//! Building an answer from an entry: the one place that turns stored status, headers and body
//! into a response with the cache's headers (`X-Cache`, `Cache-Status`, `Age`, `ETag`, the
//! downstream `Cache-Control`, 304 on a matching `If-None-Match`).

use std::time::{Duration, Instant};

use warp::http::header::{self, HeaderValue};
use warp::http::StatusCode;
use warp::reply::Response;

use super::CachedRoute;
use crate::filters::entry::{self, EntryMeta};
use crate::filters::failure::FilterFailure;
use crate::filters::flights::SharedEntry;
use crate::filters::http;
use crate::filters::policy::CachePolicy;
use crate::filters::request::RequestParts;
use crate::filters::response::{header_map, mark, Answer, Outcome, Representation};

/// With HTTP semantics, why an entry described by `meta` may not answer `request` at all
/// (another variant, or credentials it does not allow); `None` when it may, and always in the
/// policy mode.
pub(super) fn unusable_for(
    state: &CachedRoute,
    request: &RequestParts,
    meta: &EntryMeta,
) -> Option<&'static str> {
    if !state.policy.is_http() {
        return None;
    }
    http::unusable_for(
        &meta.headers,
        &meta.selecting,
        request.headers(),
        state.resolved.cookie_keyed,
    )
}

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
    if policy.is_http() {
        return answer_http(request, meta, representation, age, outcome);
    }
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

/// [`answer_from`] with HTTP semantics: the stored status, headers and body as the route sent
/// them, a computed `Age`, and 304 when the client's own conditional matches the stored
/// validators.
fn answer_http(
    request: &RequestParts,
    meta: &EntryMeta,
    representation: Representation,
    age: Option<Duration>,
    outcome: Outcome,
) -> Result<Response, FilterFailure> {
    let mut status = StatusCode::from_u16(meta.status).unwrap_or(StatusCode::OK);
    let mut headers = header_map(&meta.headers);
    // Stored byte for byte; a body the cache compressed itself (an entry written by a policy
    // route under the same key) is inflated, never sent as gzip under the route's headers.
    let mut body = representation
        .into_plain()
        .map_err(|e| FilterFailure(format!("cached body: {e}")))?;
    if http::not_modified(request.headers(), status, &headers) {
        http::strip_for_not_modified(&mut headers);
        (status, body) = (StatusCode::NOT_MODIFIED, bytes::Bytes::new());
    }
    // An answer straight from the origin carries an age only when it arrived with one.
    let age = age.or_else(|| (meta.initial_age_ms >= 1000).then(|| meta.age(entry::now_ms())));
    if let Some(age) = age {
        headers.insert(header::AGE, HeaderValue::from(age.as_secs()));
    }
    mark(&mut headers, outcome);
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

/// The answer to a request that waited for another request's origin call (a collapsed miss);
/// `None` when that answer does not fit this request (HTTP semantics: its `Vary` fields differ,
/// or it may not answer a request with `Authorization`), which must then ask the origin itself.
pub(super) fn answer_shared(
    state: &CachedRoute,
    request: &RequestParts,
    shared: &SharedEntry,
    stale: bool,
) -> Result<Option<Response>, FilterFailure> {
    if unusable_for(state, request, &shared.meta).is_some() {
        return Ok(None);
    }
    answer_from(
        request,
        &state.policy,
        &shared.meta,
        shared.representation.clone(),
        Some(shared.meta.age(entry::now_ms())),
        Outcome::Collapsed { stale },
    )
    .map(Some)
}
