//! The in-process L1 tier, seen from the filter: what a Redis hit leaves there (the entry
//! parsed, its usual answers prebuilt) and how a later hit is answered from it without a
//! round trip. The tier itself (bounds, invalidation marks, pub/sub) belongs to the manager,
//! which alone touches it; this module asks it for entries of its own type
//! ([`CacheManager::local_entry`](crate::CacheManager)) and hands it entries to keep.

use std::sync::Arc;

use warp::http::StatusCode;
use warp::reply::Response;

use super::answer::answer_from;
use super::miss::revalidate_in_background;
use super::CachedRoute;
use crate::cache::l1::Held;
use crate::cache::tag::decode_names;
use crate::cache::{CacheEvent, CacheManager, Stamp};
use crate::filters::early_refresh;
use crate::filters::entry::{self, EntryMeta, Freshness, StoredEntry};
use crate::filters::failure::FilterFailure;
use crate::filters::policy::CachePolicy;
use crate::filters::request::RequestParts;
use crate::filters::response::{header_map, Outcome, Prebuilt, Representation};

/// An entry held in the L1 tier: parsed, with its usual answers prebuilt.
pub(super) struct LocalEntry {
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
pub(super) struct LocalTier<'a> {
    pub(super) cache: &'a CacheManager,
    pub(super) full_key: &'a str,
    /// Taken before the lookup.
    pub(super) seen: u64,
}

impl LocalTier<'_> {
    pub(super) fn keep(
        &self,
        stored: &StoredEntry,
        current: Stamp,
        policy: &CachePolicy,
        now: u64,
    ) {
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
        self.cache.keep_local(self.full_key, held, self.seen);
    }
}

/// Answers from the L1 tier when it holds a fresh entry for `full_key`.
pub(super) fn answer_local(
    state: &Arc<CachedRoute>,
    request: &RequestParts,
    full_key: &str,
    key: &str,
) -> Result<Option<Response>, FilterFailure> {
    let Some(local) = state.cache.local_entry::<LocalEntry>(full_key) else {
        return Ok(None);
    };
    let now = entry::now_ms();
    if local.meta.freshness(now) != Freshness::Fresh {
        return Ok(None);
    }
    let remaining = local.meta.remaining(now);
    let origin = std::time::Duration::from_millis(local.meta.origin_ms);
    let beta = state.resolved.early_refresh_beta;
    let early_refresh = early_refresh::should_refresh(remaining, origin, beta)
        && revalidate_in_background(state, request, key, local.current, None);
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
        Some(local.meta.age(now)),
        outcome,
    )
    .map(Some)
}
