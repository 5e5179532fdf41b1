//! Building what the cache filters answer: the body in the encoding the client accepts, and
//! the cache headers (`X-Cache`, RFC 9211 `Cache-Status`, `Age`, `ETag`, `Cache-Control`,
//! `Vary`), or a bodiless 304 when `If-None-Match` matches.

use std::time::Duration;

use bytes::Bytes;
use warp::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use warp::http::StatusCode;
use warp::reply::Response;

use super::request::RequestParts;
use crate::cache::codec::gunzip;

/// The name this cache reports under in `Cache-Status`.
pub const CACHE_NAME: &str = "warp-redis-cache";
/// The `X-Cache` header.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");
/// The RFC 9211 `Cache-Status` header.
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// How the cache took part in answering a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered from the cache, with this much freshness left.
    Hit {
        /// Freshness left.
        remaining: Duration,
        /// Whether this hit also started a background refresh ahead of expiry (XFetch).
        early_refresh: bool,
        /// Whether it came from this process's L1 tier rather than Redis.
        local: bool,
    },
    /// Answered by the origin after a lookup found nothing usable.
    Miss {
        /// Whether the response was stored.
        stored: bool,
        /// Why it was not stored, when it was not.
        detail: Option<&'static str>,
    },
    /// Answered by the origin because the request asked for a fresh copy (`no-cache`).
    Refresh {
        /// Whether the response was stored.
        stored: bool,
    },
    /// Answered with a stale entry while one request refreshes it (stale-while-revalidate).
    StaleWhileRevalidate {
        /// How long past its fresh lifetime it is.
        stale_for: Duration,
        /// Whether it is stale because a soft purge reached it (rather than by age).
        soft_purged: bool,
    },
    /// Answered with a stale entry because the origin failed (stale-if-error).
    StaleIfError {
        /// The origin's status, or `None` when it did not answer in time.
        origin_status: Option<u16>,
    },
    /// Answered with the entry another request for the same key fetched meanwhile.
    Collapsed {
        /// Whether the entry that was there was stale (rather than missing).
        stale: bool,
    },
    /// The entry was stale; the origin answered and replaced it.
    Revalidated {
        /// Whether the new response was stored.
        stored: bool,
    },
    /// The cache was not used.
    Bypass {
        /// Why (`cache-unavailable`, `credentials`, `no-store`).
        detail: &'static str,
    },
}

impl Outcome {
    fn x_cache(self) -> &'static str {
        match self {
            Outcome::Hit { .. } | Outcome::Collapsed { .. } => "HIT",
            Outcome::StaleWhileRevalidate { .. } | Outcome::StaleIfError { .. } => "STALE",
            Outcome::Miss { .. } | Outcome::Refresh { .. } | Outcome::Revalidated { .. } => "MISS",
            Outcome::Bypass { .. } => "BYPASS",
        }
    }

    fn cache_status(self) -> String {
        match self {
            Outcome::Hit {
                remaining,
                early_refresh,
                local,
            } => {
                let detail = match (local, early_refresh) {
                    (false, false) => "",
                    (false, true) => "; detail=early-refresh",
                    (true, false) => "; detail=l1",
                    (true, true) => "; detail=l1-early-refresh",
                };
                format!("{CACHE_NAME}; hit; ttl={}{detail}", remaining.as_secs())
            }
            Outcome::Miss { stored: true, .. } => format!("{CACHE_NAME}; fwd=miss; stored"),
            Outcome::Miss {
                stored: false,
                detail,
            } => match detail {
                Some(detail) => format!("{CACHE_NAME}; fwd=miss; detail={detail}"),
                None => format!("{CACHE_NAME}; fwd=miss"),
            },
            Outcome::Refresh { stored: true } => format!("{CACHE_NAME}; fwd=request; stored"),
            Outcome::Refresh { stored: false } => format!("{CACHE_NAME}; fwd=request"),
            Outcome::Bypass { detail } => format!("{CACHE_NAME}; fwd=bypass; detail={detail}"),
            Outcome::StaleWhileRevalidate {
                soft_purged: true, ..
            } => format!("{CACHE_NAME}; hit; ttl=0; detail=soft-purged"),
            Outcome::StaleWhileRevalidate {
                stale_for,
                soft_purged: false,
            } => format!(
                "{CACHE_NAME}; hit; ttl=-{}; detail=stale-while-revalidate",
                stale_for.as_secs()
            ),
            Outcome::StaleIfError {
                origin_status: Some(status),
            } => format!("{CACHE_NAME}; fwd=stale; fwd-status={status}; detail=stale-if-error"),
            Outcome::StaleIfError {
                origin_status: None,
            } => format!("{CACHE_NAME}; fwd=stale; detail=stale-if-error-timeout"),
            Outcome::Collapsed { stale: false } => format!("{CACHE_NAME}; fwd=miss; collapsed"),
            Outcome::Collapsed { stale: true } => format!("{CACHE_NAME}; fwd=stale; collapsed"),
            Outcome::Revalidated { stored: true } => format!("{CACHE_NAME}; fwd=stale; stored"),
            Outcome::Revalidated { stored: false } => format!("{CACHE_NAME}; fwd=stale"),
        }
    }
}

/// A body as the cache holds it: plain, or gzip with the plain form known or not.
#[derive(Debug, Clone)]
pub enum Representation {
    /// Uncompressed.
    Plain(Bytes),
    /// gzip-compressed; `plain` is the uncompressed form when it is already at hand.
    Gzip {
        /// The gzip stream.
        compressed: Bytes,
        /// The same body uncompressed, if known.
        plain: Option<Bytes>,
    },
}

impl Representation {
    /// The body uncompressed: as it is, the plain form when known, else inflated.
    pub fn into_plain(self) -> Result<Bytes, crate::cache::codec::CodecError> {
        match self {
            Representation::Plain(body) => Ok(body),
            Representation::Gzip {
                plain: Some(plain), ..
            } => Ok(plain),
            Representation::Gzip {
                compressed,
                plain: None,
            } => Ok(Bytes::from(gunzip(&compressed)?)),
        }
    }
}

/// Everything needed to answer with a cached or fresh representation.
pub struct Answer<'a> {
    /// The request being answered.
    pub request: &'a RequestParts,
    /// Response status.
    pub status: StatusCode,
    /// Representation headers (content type, ...).
    pub headers: HeaderMap,
    /// The body.
    pub body: Representation,
    /// Entity tag, quoted.
    pub etag: &'a str,
    /// The `Cache-Control` downstream caches get (see
    /// [`ClientCacheControl`](super::ClientCacheControl)).
    pub cache_control: HeaderValue,
    /// `Age`, for answers from the cache.
    pub age: Option<Duration>,
    /// Request headers the key varies on.
    pub vary: &'a [HeaderName],
    /// How the cache took part.
    pub outcome: Outcome,
}

impl Answer<'_> {
    /// The response: 304 when `If-None-Match` matches, else the body in an encoding the
    /// client accepts (gzip as stored, inflated only for clients that do not accept it).
    pub fn into_response(self) -> Result<Response, crate::cache::codec::CodecError> {
        let compressed = matches!(self.body, Representation::Gzip { .. });
        let send_gzip = compressed && self.request.accepts_gzip();
        // Each content coding is its own representation, so it gets its own strong tag.
        let etag = if send_gzip {
            gzip_etag(self.etag)
        } else {
            self.etag.to_string()
        };
        // Only the tag of the representation this client would get validates its copy: a
        // client without gzip holding the gzip tag must get the plain body, not a 304.
        let conditional = self.request.headers().contains_key(header::IF_NONE_MATCH);
        let not_modified =
            conditional && self.status.is_success() && self.request.if_none_match(&etag);
        let (status, mut headers, body) = if not_modified {
            (StatusCode::NOT_MODIFIED, HeaderMap::new(), Bytes::new())
        } else {
            let mut headers = self.headers;
            let body = match self.body {
                Representation::Gzip { compressed, .. } if send_gzip => {
                    headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                    compressed
                }
                other => other.into_plain()?,
            };
            (self.status, headers, body)
        };
        add_validators(
            &mut headers,
            &etag,
            self.cache_control,
            self.vary,
            compressed,
        );
        if let Some(age) = self.age {
            headers.insert(header::AGE, HeaderValue::from(age.as_secs()));
        }
        mark(&mut headers, self.outcome);
        let mut response = Response::new(body.into());
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

/// Adds the headers that are the same on every answer from one entry: `ETag`,
/// `Cache-Control` and `Vary` (the key's headers, and `Accept-Encoding` for an entry stored
/// compressed).
pub fn add_validators(
    headers: &mut HeaderMap,
    etag: &str,
    cache_control: HeaderValue,
    vary: &[HeaderName],
    compressed: bool,
) {
    set(headers, header::ETAG, etag);
    headers.insert(header::CACHE_CONTROL, cache_control);
    let mut varied: Vec<&str> = vary.iter().map(HeaderName::as_str).collect();
    if compressed {
        varied.push("accept-encoding");
    }
    if !varied.is_empty() {
        set(headers, header::VARY, &varied.join(", "));
    }
}

/// A response ready to copy: for entries held in the L1 tier, so a hit clones headers instead
/// of rebuilding them.
#[derive(Debug, Clone)]
pub struct Prebuilt {
    /// Representation headers with `ETag`, `Cache-Control`, `Vary` (and `Content-Encoding`).
    pub headers: HeaderMap,
    /// The body as sent.
    pub body: Bytes,
}

impl Prebuilt {
    /// The answers to prebuild for an entry: as plain (when the plain body is at hand) and, for
    /// an entry stored compressed, as gzip.
    pub fn for_entry(
        stored_headers: &HeaderMap,
        body: &Representation,
        etag: &str,
        cache_control: &HeaderValue,
        vary: &[HeaderName],
    ) -> (Option<Prebuilt>, Option<Prebuilt>) {
        let build = |body: &Bytes, etag: &str, compressed: bool, encoded: bool| {
            let mut headers = stored_headers.clone();
            if encoded {
                headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            add_validators(&mut headers, etag, cache_control.clone(), vary, compressed);
            Prebuilt {
                headers,
                body: body.clone(),
            }
        };
        match body {
            Representation::Plain(plain) => (Some(build(plain, etag, false, false)), None),
            Representation::Gzip { compressed, plain } => (
                plain.as_ref().map(|plain| build(plain, etag, true, false)),
                Some(build(compressed, &gzip_etag(etag), true, true)),
            ),
        }
    }

    /// The response: these headers and body with `Age` and the cache headers for `outcome`.
    pub fn answer(&self, status: StatusCode, age: Duration, outcome: Outcome) -> Response {
        let mut headers = self.headers.clone();
        headers.insert(header::AGE, HeaderValue::from(age.as_secs()));
        mark(&mut headers, outcome);
        let mut response = Response::new(self.body.clone().into());
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        response
    }
}

/// The tag of the gzip-encoded variant of the representation tagged `etag`: `"abc"` becomes
/// `"abc-gzip"` (as Apache does).
pub fn gzip_etag(etag: &str) -> String {
    match etag.strip_suffix('"') {
        Some(open) if !open.ends_with("-gzip") => format!("{open}-gzip\""),
        _ => etag.to_string(),
    }
}

/// Adds `X-Cache` and `Cache-Status` for `outcome`.
pub fn mark(headers: &mut HeaderMap, outcome: Outcome) {
    headers.insert(X_CACHE, HeaderValue::from_static(outcome.x_cache()));
    let status = match outcome {
        // Every hit pays for this header: it is written into a stack buffer, not formatted.
        Outcome::Hit {
            remaining,
            early_refresh,
            local,
        } => hit_status(remaining.as_secs(), early_refresh, local),
        other => HeaderValue::from_str(&other.cache_status()).ok(),
    };
    if let Some(status) = status {
        headers.insert(CACHE_STATUS, status);
    }
}

/// `Cache-Status` of a hit, as [`Outcome::cache_status`] writes it.
fn hit_status(ttl: u64, early_refresh: bool, local: bool) -> Option<HeaderValue> {
    const PREFIX: &[u8] = b"warp-redis-cache; hit; ttl=";
    let detail: &[u8] = match (local, early_refresh) {
        (false, false) => b"",
        (false, true) => b"; detail=early-refresh",
        (true, false) => b"; detail=l1",
        (true, true) => b"; detail=l1-early-refresh",
    };
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = ttl;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let mut buffer = [0u8; 80];
    let parts: [&[u8]; 3] = [PREFIX, &digits[at..], detail];
    let mut len = 0;
    for part in parts {
        buffer[len..len + part.len()].copy_from_slice(part);
        len += part.len();
    }
    HeaderValue::from_bytes(&buffer[..len]).ok()
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// Rebuilds stored header pairs into a map, skipping any that no longer parse.
pub fn header_map(pairs: &[(String, String)]) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(pairs.len() + 6);
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_variant_has_its_own_tag() {
        assert_eq!(gzip_etag("\"abc\""), "\"abc-gzip\"");
        assert_eq!(gzip_etag("W/\"abc\""), "W/\"abc-gzip\"");
        assert_eq!(gzip_etag("\"abc-gzip\""), "\"abc-gzip\"");
    }

    #[test]
    fn cache_status_follows_rfc_9211_syntax() {
        let hit = Outcome::Hit {
            remaining: Duration::from_secs(42),
            early_refresh: false,
            local: false,
        };
        assert_eq!(hit.cache_status(), "warp-redis-cache; hit; ttl=42");
        for (ttl, early_refresh, local) in [
            (42, false, false),
            (0, true, false),
            (u64::MAX, true, true),
            (7, false, true),
        ] {
            let outcome = Outcome::Hit {
                remaining: Duration::from_secs(ttl),
                early_refresh,
                local,
            };
            let mut headers = HeaderMap::new();
            mark(&mut headers, outcome);
            assert_eq!(headers[CACHE_STATUS], outcome.cache_status().as_str());
        }
        let bypass = Outcome::Bypass {
            detail: "cache-unavailable",
        };
        assert_eq!(
            bypass.cache_status(),
            "warp-redis-cache; fwd=bypass; detail=cache-unavailable"
        );
        assert_eq!(bypass.x_cache(), "BYPASS");
        let stored = Outcome::Miss {
            stored: true,
            detail: None,
        };
        assert_eq!(stored.cache_status(), "warp-redis-cache; fwd=miss; stored");
    }
}
