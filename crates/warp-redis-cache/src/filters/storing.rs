//! Turning a route's response into a stored entry: the storing rules, reading the body within
//! the size limit, compressing once, and writing it under the generation read before the route
//! ran.

use bytes::Bytes;
use warp::reply::Response;

use super::body::{collect_limited, Collected};
use super::entry::{self, EntryMeta, NotStorable};
use super::failure::FilterFailure;
use super::http;
use super::policy::{CachePolicy, Lifetimes, TagContext};
use super::request::RequestParts;
use super::response::Representation;
use crate::cache::codec::gunzip_limited;
use crate::cache::tag::MAX_TAGS_PER_ENTRY;
use crate::cache::{CacheManager, Stamp, StorePayload, Tag};

/// A response ready to store and to answer with.
pub struct Prepared {
    /// What is stored beside the body.
    pub meta: EntryMeta,
    /// The body as stored.
    pub representation: Representation,
    /// The tags it is filed under.
    pub tags: Vec<Tag>,
}

/// What [`prepare`] made of a response.
pub enum Preparation {
    /// It may be stored.
    Storable(Prepared),
    /// It may not; here it is to send as it is, and why.
    NotStorable(Response, NotStorable),
}

/// Applies the storing rules to `response` (answering `request`, computed by the origin in
/// `origin_ms`) and reads its body within the policy's limit.
pub async fn prepare(
    cache: &CacheManager,
    policy: &CachePolicy,
    lifetimes: &Lifetimes,
    request: &RequestParts,
    response: Response,
    origin_ms: u64,
) -> Result<Preparation, FilterFailure> {
    if policy.is_http() {
        return prepare_http(policy, lifetimes, request, response, origin_ms).await;
    }
    if let Err(reason) = entry::check_storable(response.status(), response.headers(), policy) {
        return Ok(Preparation::NotStorable(response, reason));
    }
    let (head, body) = match collect_within(policy, response).await? {
        Ok(whole) => whole,
        Err(not_storable) => return Ok(not_storable),
    };
    // A body the route gzip-encoded itself is inflated once, here: it must fit the size limit
    // (so no hit can ever inflate something larger), and the inflated form is kept for a
    // client that does not accept gzip, so this miss never inflates twice.
    let origin_plain = if entry::is_gzip_encoded(&head.headers) {
        match gunzip_limited(&body, policy.max_entry_bytes) {
            Ok(plain) => Some(Bytes::from(plain)),
            Err(_) => {
                let response = Response::from_parts(head, body.into());
                return Ok(Preparation::NotStorable(response, NotStorable::TooLarge));
            }
        }
    } else {
        None
    };
    let Some(replayed) = entry::replayable_headers(&head.headers) else {
        let response = Response::from_parts(head, body.into());
        return Ok(Preparation::NotStorable(response, NotStorable::Encoding));
    };
    let etag = head
        .headers
        .get(warp::http::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| entry::etag_for(&body));
    let tags = {
        let plain = origin_plain.as_ref().unwrap_or(&body);
        let context = TagContext {
            request,
            status: head.status,
            body: plain,
        };
        match tags_of(policy, &context) {
            Some(tags) => tags,
            None => {
                let response = Response::from_parts(head, body.into());
                return Ok(Preparation::NotStorable(response, NotStorable::Tags));
            }
        }
    };
    let meta = EntryMeta {
        status: head.status.as_u16(),
        headers: replayed,
        stored_at_ms: entry::now_ms(),
        ttl_ms: lifetimes.fresh.as_millis() as u64,
        etag,
        stale_while_revalidate_ms: lifetimes.stale_while_revalidate.as_millis() as u64,
        stale_if_error_ms: lifetimes.stale_if_error.as_millis() as u64,
        origin_ms,
        ..EntryMeta::default()
    };
    let representation = represent(cache, body, origin_plain);
    Ok(Preparation::Storable(Prepared {
        meta,
        representation,
        tags,
    }))
}

/// Reads the response's body within the policy's size limit: the head and the whole body, or
/// the response (streamed on, never buffered whole) marked too large to store.
async fn collect_within(
    policy: &CachePolicy,
    response: Response,
) -> Result<Result<(warp::http::response::Parts, Bytes), Preparation>, FilterFailure> {
    match collect_limited(response, policy.max_entry_bytes).await {
        Ok(Collected::Whole(head, body)) => Ok(Ok((head, body))),
        Ok(Collected::TooLarge(response)) => Ok(Err(Preparation::NotStorable(
            response,
            NotStorable::TooLarge,
        ))),
        Err(e) => Err(FilterFailure(format!("route body failed: {e}"))),
    }
}

/// The bounds a policy puts on what responses ask for (HTTP semantics).
fn http_limits(policy: &CachePolicy, lifetimes: &Lifetimes) -> http::Limits {
    http::Limits {
        heuristic_cap: lifetimes.fresh,
        keep_stale: policy.keep_stale,
        stale_if_error: lifetimes.stale_if_error,
        cookie_keyed: policy.varies_on(&warp::http::header::COOKIE),
        most: std::time::Duration::from_secs(crate::config::MAX_TTL_SECS),
    }
}

/// [`prepare`] with HTTP semantics: RFC 9111 decides, the body and headers are kept as the
/// route sent them.
async fn prepare_http(
    policy: &CachePolicy,
    lifetimes: &Lifetimes,
    request: &RequestParts,
    response: Response,
    origin_ms: u64,
) -> Result<Preparation, FilterFailure> {
    let response_time_ms = entry::now_ms();
    let exchange = http::Exchange {
        request: request.headers(),
        status: response.status(),
        headers: response.headers(),
        request_time_ms: response_time_ms.saturating_sub(origin_ms),
        response_time_ms,
    };
    let judged = match http::judge(&exchange, http_limits(policy, lifetimes)) {
        Ok(judged) => judged,
        Err(reason) => return Ok(Preparation::NotStorable(response, reason)),
    };
    let (head, body) = match collect_within(policy, response).await? {
        Ok(whole) => whole,
        Err(not_storable) => return Ok(not_storable),
    };
    let Some(headers) = http::stored_headers(&head.headers) else {
        let response = Response::from_parts(head, body.into());
        return Ok(Preparation::NotStorable(response, NotStorable::Encoding));
    };
    // Headers are stored with the body, so they count against the same bound.
    let header_bytes: usize = headers.iter().map(|(n, v)| n.len() + v.len()).sum();
    if body.len().saturating_add(header_bytes) > policy.max_entry_bytes {
        let response = Response::from_parts(head, body.into());
        return Ok(Preparation::NotStorable(response, NotStorable::TooLarge));
    }
    let context = TagContext {
        request,
        status: head.status,
        body: &body,
    };
    let Some(tags) = tags_of(policy, &context) else {
        let response = Response::from_parts(head, body.into());
        return Ok(Preparation::NotStorable(response, NotStorable::Tags));
    };
    let meta = http_meta(
        head.status.as_u16(),
        headers,
        response_time_ms,
        origin_ms,
        judged,
    );
    Ok(Preparation::Storable(Prepared {
        meta,
        representation: Representation::Plain(body),
        tags,
    }))
}

fn http_meta(
    status: u16,
    headers: Vec<(String, String)>,
    stored_at_ms: u64,
    origin_ms: u64,
    judged: http::Judged,
) -> EntryMeta {
    let etag = headers
        .iter()
        .find(|(name, _)| name == "etag")
        .map(|(_, value)| value.clone())
        .unwrap_or_default();
    EntryMeta {
        status,
        headers,
        stored_at_ms,
        ttl_ms: judged.lifetime_ms,
        etag,
        stale_while_revalidate_ms: judged.stale_while_revalidate_ms,
        stale_if_error_ms: judged.stale_if_error_ms,
        origin_ms,
        initial_age_ms: judged.initial_age_ms,
        must_revalidate: judged.must_revalidate,
        keep_stale_ms: judged.keep_stale_ms,
        selecting: judged.selecting,
    }
}

/// A stored response the origin confirmed with `not_modified` (a 304 to a conditional
/// request, HTTP semantics): its headers updated from the 304 and its freshness computed
/// anew (RFC 9111 section 4.3.4).
pub fn revalidated(
    policy: &CachePolicy,
    lifetimes: &Lifetimes,
    request: &RequestParts,
    meta: &EntryMeta,
    representation: &Representation,
    not_modified: &warp::http::HeaderMap,
    origin_ms: u64,
) -> Revalidated {
    let response_time_ms = entry::now_ms();
    let headers = http::updated_headers(&meta.headers, not_modified);
    let mut judged_headers = super::response::header_map(&headers);
    if let Some(age) = not_modified.get(warp::http::header::AGE) {
        judged_headers.insert(warp::http::header::AGE, age.clone());
    }
    let status = warp::http::StatusCode::from_u16(meta.status).unwrap_or_default();
    let exchange = http::Exchange {
        request: request.headers(),
        status,
        headers: &judged_headers,
        request_time_ms: response_time_ms.saturating_sub(origin_ms),
        response_time_ms,
    };
    let judged = http::judge(&exchange, http_limits(policy, lifetimes));
    // Tag functions read the body as the route made it, never the cache's compressed form (a
    // body that does not inflate is answered, not stored again).
    let tags = representation.clone().into_plain().ok().and_then(|body| {
        let context = TagContext {
            request,
            status,
            body: &body,
        };
        tags_of(policy, &context)
    });
    let stored = |judged: http::Judged, tags: Vec<Tag>| Prepared {
        meta: http_meta(
            meta.status,
            headers.clone(),
            response_time_ms,
            origin_ms,
            judged,
        ),
        representation: representation.clone(),
        tags,
    };
    let (prepared, storable) = match (judged, tags) {
        (Ok(judged), Some(tags)) => (stored(judged, tags), true),
        (Ok(judged), None) => (stored(judged, Vec::new()), false),
        (Err(_), _) => (
            stored(
                http::Judged {
                    lifetime_ms: 0,
                    initial_age_ms: 0,
                    stale_while_revalidate_ms: 0,
                    stale_if_error_ms: 0,
                    must_revalidate: true,
                    keep_stale_ms: 0,
                    selecting: meta.selecting.clone(),
                },
                Vec::new(),
            ),
            false,
        ),
    };
    Revalidated { prepared, storable }
}

/// A stored response the origin confirmed, updated.
pub struct Revalidated {
    /// The entry with the 304's headers and a new freshness.
    pub prepared: Prepared,
    /// Whether it may be stored again (not when the 304 said `no-store`, say: then it answers
    /// this request only).
    pub storable: bool,
}

/// The policy's static tags and those its tag functions compute; `None` when one is invalid
/// or there are too many (logged: it is a bug in the route's policy).
fn tags_of(policy: &CachePolicy, context: &TagContext<'_>) -> Option<Vec<Tag>> {
    let mut tags = policy.tags.clone();
    for tag_fn in &policy.tag_fns {
        for name in tag_fn.tags(context) {
            match Tag::new(&name) {
                Ok(tag) => tags.push(tag),
                Err(err) => {
                    log::warn!("not caching {}: {err}", context.request.path());
                    return None;
                }
            }
        }
    }
    tags.sort_unstable();
    tags.dedup();
    if tags.len() > MAX_TAGS_PER_ENTRY {
        log::warn!(
            "not caching {}: {} tags, more than {MAX_TAGS_PER_ENTRY}",
            context.request.path(),
            tags.len()
        );
        return None;
    }
    Some(tags)
}

/// The body as it will be stored: kept as the route gzip-encoded it (`origin_plain` is its
/// inflated form), or compressed once here when over the threshold (the same bytes then go to
/// gzip-accepting clients).
fn represent(cache: &CacheManager, body: Bytes, origin_plain: Option<Bytes>) -> Representation {
    if let Some(plain) = origin_plain {
        return Representation::Gzip {
            compressed: body,
            plain: Some(plain),
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

/// Writes `prepared` under `key`, recording `stamp` (read before the route ran) and its tags;
/// the backend keeps it for its fresh lifetime plus its stale windows. Returns whether it was
/// stored.
pub async fn store(
    cache: &CacheManager,
    policy: &CachePolicy,
    key: &str,
    stamp: Stamp,
    prepared: &Prepared,
) -> bool {
    let meta = prepared.meta.encode();
    let payload = match &prepared.representation {
        // HTTP semantics keep the route's bytes as they are: the answer replays them with the
        // route's own headers, so they must come back exactly.
        Representation::Plain(body) if policy.is_http() => StorePayload::Verbatim(body),
        Representation::Plain(body) => StorePayload::Plain(body),
        Representation::Gzip { compressed, plain } => StorePayload::Gzip {
            compressed,
            plain_len: plain.as_ref().map_or(compressed.len(), Bytes::len),
        },
    };
    let keep_for = prepared.meta.retention();
    cache
        .store(
            &policy.namespace,
            key,
            stamp,
            &prepared.tags,
            &meta,
            payload,
            Some(keep_for),
        )
        .await
        .is_ok()
}
