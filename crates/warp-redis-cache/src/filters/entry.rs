//! A stored HTTP response: the metadata kept beside the body, and the rules for what may be
//! stored at all.
//!
//! The metadata (status, representation headers, when it was stored, its TTL and ETag) lives in
//! the codec's uncompressed metadata section as compact JSON; the body is the payload, stored
//! gzip-compressed above the threshold so it can be sent to gzip-accepting clients as is.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use warp::http::header::{self, HeaderMap, HeaderName};
use warp::http::StatusCode;

use super::policy::CachePolicy;
use super::request::{header_tokens, header_tokens_raw};
use super::response::Representation;
use crate::cache::codec::{Decoded, PayloadEncoding};

pub use crate::cache::entry_meta::EntryMeta;

/// How usable an entry is at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Within its fresh lifetime.
    Fresh,
    /// Stale, but within the stale-while-revalidate window: serve it and refresh behind.
    Revalidate,
    /// Stale, and usable only if the origin fails (stale-if-error window).
    OnlyIfError,
    /// Past every window.
    Dead,
}

impl EntryMeta {
    /// How old it is: its age when stored plus the time since (the `Age` header).
    pub fn age(&self, now_ms: u64) -> Duration {
        Duration::from_millis(self.age_ms(now_ms))
    }

    fn age_ms(&self, now_ms: u64) -> u64 {
        now_ms
            .saturating_sub(self.stored_at_ms)
            .saturating_add(self.initial_age_ms)
    }

    /// Freshness left (for `Cache-Control: max-age`), zero when none.
    pub fn remaining(&self, now_ms: u64) -> Duration {
        Duration::from_millis(self.ttl_ms).saturating_sub(self.age(now_ms))
    }

    /// Seconds past its fresh lifetime (zero while fresh).
    pub fn staleness(&self, now_ms: u64) -> Duration {
        self.age(now_ms)
            .saturating_sub(Duration::from_millis(self.ttl_ms))
    }

    /// How usable it is at `now_ms`.
    pub fn freshness(&self, now_ms: u64) -> Freshness {
        let age = self.age_ms(now_ms);
        if age < self.ttl_ms {
            Freshness::Fresh
        } else if age < self.ttl_ms.saturating_add(self.stale_while_revalidate_ms) {
            Freshness::Revalidate
        } else if age < self.ttl_ms.saturating_add(self.stale_if_error_ms) {
            Freshness::OnlyIfError
        } else {
            Freshness::Dead
        }
    }

    /// How long the backend must keep it from now: what is left of its fresh lifetime plus the
    /// longest of its stale windows and the time it is kept for revalidation (at least 1 ms).
    pub fn retention(&self) -> Duration {
        let stale = self
            .stale_while_revalidate_ms
            .max(self.stale_if_error_ms)
            .max(self.keep_stale_ms);
        let left = self.ttl_ms.saturating_sub(self.initial_age_ms);
        Duration::from_millis(left.saturating_add(stale).max(1))
    }

    /// Whether it has a validator to revalidate it with (HTTP semantics).
    pub fn has_validator(&self) -> bool {
        self.headers
            .iter()
            .any(|(name, _)| name == "etag" || name == "last-modified")
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Headers the cache sets itself or that describe the connection, not the representation.
const NOT_REPLAYED: [HeaderName; 13] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::CONTENT_LENGTH,
    header::CONTENT_ENCODING,
    header::DATE,
    header::AGE,
    header::ETAG,
    header::CACHE_CONTROL,
    header::VARY,
    header::SET_COOKIE,
];

/// The headers of `headers` to store with the entry; `None` when one is not text (such a
/// response is not stored rather than stored damaged).
pub fn replayable_headers(headers: &HeaderMap) -> Option<Vec<(String, String)>> {
    let mut kept = Vec::new();
    for (name, value) in headers {
        let lower = name.as_str();
        if NOT_REPLAYED.contains(name)
            || lower.starts_with("x-cache")
            || lower == "cache-status"
            || lower == "keep-alive"
            || lower.starts_with("proxy-")
        {
            continue;
        }
        kept.push((lower.to_string(), value.to_str().ok()?.to_string()));
    }
    Some(kept)
}

/// Why a response is not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStorable {
    /// Its status is not one the policy stores.
    Status,
    /// It sets a cookie: it belongs to one client.
    SetCookie,
    /// Its `Cache-Control` says `no-store`, `private` or `no-cache`.
    Directive,
    /// It is encoded with something other than gzip.
    Encoding,
    /// It varies on request headers the key does not include.
    Vary,
    /// Its body is larger than the policy allows.
    TooLarge,
    /// Its computed tags are not valid tags, or too many.
    Tags,
    /// The request carried `Authorization` and the response does not allow a shared cache to
    /// store it (`public`, `s-maxage` or `must-revalidate`; HTTP semantics).
    Credentials,
    /// It has no freshness a shared cache may use, and nothing to revalidate it with (HTTP
    /// semantics).
    NoFreshness,
}

impl NotStorable {
    /// A token for the `detail` parameter of `Cache-Status`.
    pub fn detail(self) -> &'static str {
        match self {
            NotStorable::Status => "status-not-stored",
            NotStorable::SetCookie => "set-cookie",
            NotStorable::Directive => "response-no-store",
            NotStorable::Encoding => "content-encoding",
            NotStorable::Vary => "vary",
            NotStorable::TooLarge => "too-large",
            NotStorable::Tags => "invalid-tags",
            NotStorable::Credentials => "credentials",
            NotStorable::NoFreshness => "no-freshness",
        }
    }
}

/// Checks the status and headers of a response against the storing rules.
pub fn check_storable(
    status: StatusCode,
    headers: &HeaderMap,
    policy: &CachePolicy,
) -> Result<(), NotStorable> {
    if !policy.statuses.contains(&status) {
        return Err(NotStorable::Status);
    }
    if headers.contains_key(header::SET_COOKIE) {
        return Err(NotStorable::SetCookie);
    }
    if header_tokens(headers, &header::CACHE_CONTROL)
        .any(|t| t == "no-store" || t == "private" || t == "no-cache")
    {
        return Err(NotStorable::Directive);
    }
    if header_tokens(headers, &header::CONTENT_ENCODING).any(|t| t != "gzip" && t != "identity") {
        return Err(NotStorable::Encoding);
    }
    let unkeyed_vary = header_tokens_raw(headers, &header::VARY).any(|name| {
        name == "*"
            || (!name.eq_ignore_ascii_case("accept-encoding")
                && !policy
                    .vary
                    .iter()
                    .any(|v| v.as_str().eq_ignore_ascii_case(name)))
    });
    if unkeyed_vary {
        return Err(NotStorable::Vary);
    }
    Ok(())
}

/// Whether the response body is gzip-encoded already.
pub fn is_gzip_encoded(headers: &HeaderMap) -> bool {
    header_tokens(headers, &header::CONTENT_ENCODING).any(|t| t == "gzip")
}

/// A strong entity tag for `body`: FNV-1a 64, stable across builds and instances.
pub fn etag_for(body: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in body {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{hash:016x}{:x}\"", body.len())
}

/// A decoded entry with its metadata.
pub(crate) struct StoredEntry {
    pub(crate) meta: EntryMeta,
    pub(crate) representation: Representation,
    /// The tag section as stored (names separated by `\n`).
    pub(crate) tags: bytes::Bytes,
}

impl StoredEntry {
    pub(crate) fn read(decoded: Decoded) -> Option<Self> {
        let meta = EntryMeta::decode(&decoded.meta)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn storing_rules() {
        let policy = CachePolicy::new(crate::Namespace::new("t").expect("valid"));
        let ok = StatusCode::OK;
        assert_eq!(check_storable(ok, &headers(&[]), &policy), Ok(()));
        assert_eq!(
            check_storable(StatusCode::NOT_FOUND, &headers(&[]), &policy),
            Err(NotStorable::Status)
        );
        let cases = [
            (("set-cookie", "a=b"), NotStorable::SetCookie),
            (
                ("cache-control", "private, max-age=5"),
                NotStorable::Directive,
            ),
            (("cache-control", "no-store"), NotStorable::Directive),
            (("content-encoding", "br"), NotStorable::Encoding),
            (("vary", "Accept-Language"), NotStorable::Vary),
            (("vary", "*"), NotStorable::Vary),
        ];
        for (header, expected) in cases {
            assert_eq!(
                check_storable(ok, &headers(&[header]), &policy),
                Err(expected)
            );
        }
        let varying = policy.vary_on(HeaderName::from_static("accept-language"));
        let vary = headers(&[("vary", "accept-language, Accept-Encoding")]);
        assert_eq!(check_storable(ok, &vary, &varying), Ok(()));
    }

    #[test]
    fn replayed_headers_skip_connection_and_cache_headers() {
        let kept = replayable_headers(&headers(&[
            ("content-type", "application/json"),
            ("content-length", "5"),
            ("x-cache", "MISS"),
            ("etag", "\"x\""),
            ("location", "/items/1"),
        ]))
        .expect("text headers");
        assert_eq!(
            kept,
            vec![
                ("content-type".to_string(), "application/json".to_string()),
                ("location".to_string(), "/items/1".to_string())
            ]
        );
    }

    #[test]
    fn etags_are_stable_and_differ_by_content() {
        assert_eq!(etag_for(b"abc"), etag_for(b"abc"));
        assert_ne!(etag_for(b"abc"), etag_for(b"abd"));
        assert!(etag_for(b"").starts_with('"'));
    }

    #[test]
    fn age_and_remaining_freshness() {
        let meta = EntryMeta {
            status: 200,
            headers: vec![],
            stored_at_ms: 10_000,
            ttl_ms: 60_000,
            etag: "\"x\"".into(),
            stale_while_revalidate_ms: 10_000,
            stale_if_error_ms: 30_000,
            origin_ms: 5,
            ..EntryMeta::default()
        };
        assert_eq!(meta.freshness(69_999), Freshness::Fresh);
        assert_eq!(meta.freshness(70_000), Freshness::Revalidate);
        assert_eq!(meta.freshness(80_000), Freshness::OnlyIfError);
        assert_eq!(meta.freshness(100_000), Freshness::Dead);
        assert_eq!(meta.retention(), Duration::from_secs(90));
        assert_eq!(meta.staleness(75_000), Duration::from_secs(5));
        assert_eq!(meta.age(25_000), Duration::from_secs(15));
        assert_eq!(meta.remaining(25_000), Duration::from_secs(45));
        assert_eq!(meta.remaining(99_000), Duration::ZERO);
    }
}
