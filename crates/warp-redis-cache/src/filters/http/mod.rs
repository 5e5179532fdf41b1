//! RFC 9111 rules for [`CacheSemantics::Http`](super::CacheSemantics::Http): whether a
//! response may be stored by a shared cache and for how long (sections 3, 4.2), its age (4.2.3),
//! its secondary keys (4.1), the update of a stored response by a 304 (4.3.4), and the answers
//! to a client's own conditional request (4.3.2).
//!
//! Everything here is a pure function of headers and times, so each rule has a unit test; the
//! filters call it when they store, reuse and revalidate.

pub(crate) mod directives;
pub(crate) mod vary;

use std::time::Duration;

use warp::http::header::{self, HeaderMap, HeaderName};
use warp::http::StatusCode;

use super::entry::NotStorable;
use directives::{Delta, Directives, DELTA_SECONDS_CAP};
use vary::Selecting;

/// The statuses RFC 9110 section 15.1 calls heuristically cacheable.
const HEURISTIC_STATUSES: [u16; 12] = [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];

/// The fraction of the time since `Last-Modified` a heuristic lifetime is (RFC 9111 4.2.2).
const HEURISTIC_FRACTION: u64 = 10;

/// One exchange with the origin, as the cache saw it.
pub(crate) struct Exchange<'a> {
    /// The request's headers (for `Vary` and `Authorization`).
    pub(crate) request: &'a HeaderMap,
    pub(crate) status: StatusCode,
    pub(crate) headers: &'a HeaderMap,
    /// When the request was sent to the origin, ms since the epoch.
    pub(crate) request_time_ms: u64,
    /// When its response arrived, ms since the epoch.
    pub(crate) response_time_ms: u64,
}

/// Bounds the policy sets on what the response asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// The longest heuristic lifetime.
    pub(crate) heuristic_cap: Duration,
    /// How long past its freshness a response with a validator is kept for revalidation.
    pub(crate) keep_stale: Duration,
    /// How long past freshness a response that names no `stale-if-error` may be served when
    /// the origin fails or cannot be reached (RFC 9111 section 4.2.4 allows serving stale when
    /// disconnected; `must-revalidate` and its kin forbid it).
    pub(crate) stale_if_error: Duration,
    /// The longest lifetime or stale window at all.
    pub(crate) most: Duration,
    /// The key varies on `Cookie` (`vary_on`): each user has their own entries, so the
    /// `Cookie` rule of [`judge`] does not apply.
    pub(crate) cookie_keyed: bool,
}

/// What RFC 9111 says about storing one response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Judged {
    /// Freshness lifetime.
    pub(crate) lifetime_ms: u64,
    /// Corrected initial age (section 4.2.3).
    pub(crate) initial_age_ms: u64,
    pub(crate) stale_while_revalidate_ms: u64,
    pub(crate) stale_if_error_ms: u64,
    /// Never served stale, not even on error (`must-revalidate`, `proxy-revalidate`,
    /// `s-maxage`, `no-cache`).
    pub(crate) must_revalidate: bool,
    /// Kept at least this long after it went stale (or as long as its longer stale window,
    /// whichever is longer), to be revalidated with its validator.
    pub(crate) keep_stale_ms: u64,
    /// Its secondary keys.
    pub(crate) selecting: Selecting,
}

/// Whether (and how) a shared cache may store the response of `exchange`.
pub(crate) fn judge(exchange: &Exchange<'_>, limits: Limits) -> Result<Judged, NotStorable> {
    let (status, headers) = (exchange.status, exchange.headers);
    // Partial and not-modified answers are not the representation; interim ones never arrive.
    if status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status.is_informational()
    {
        return Err(NotStorable::Status);
    }
    let directives = Directives::of(headers);
    let understood = status.canonical_reason().is_some();
    // `must-understand`: store only a status whose caching rules are known (section 5.2.2.3),
    // and then it overrides `no-store`.
    if directives.must_understand && !understood {
        return Err(NotStorable::Directive);
    }
    if directives.no_store && !directives.must_understand {
        return Err(NotStorable::Directive);
    }
    if directives.private {
        return Err(NotStorable::Directive);
    }
    let shared_allowed =
        directives.public || directives.s_maxage.is_some() || directives.must_revalidate;
    if exchange.request.contains_key(header::AUTHORIZATION) && !shared_allowed {
        return Err(NotStorable::Credentials);
    }
    // A deliberate choice beyond RFC 9111: a request with a `Cookie` may get a page made for
    // that user from a route that forgot `private` or `Vary: Cookie`; it is shared only when
    // the response says it is meant for shared caches.
    if exchange.request.contains_key(header::COOKIE)
        && !limits.cookie_keyed
        && !(directives.public || directives.s_maxage.is_some())
    {
        return Err(NotStorable::Credentials);
    }
    // A deliberate choice: RFC 9111 allows storing it, but one client's cookie must never be
    // handed to another (nginx and Varnish make the same choice by default).
    if headers.contains_key(header::SET_COOKIE) {
        return Err(NotStorable::SetCookie);
    }
    let selecting = vary::selecting(exchange.request, headers).map_err(|_| NotStorable::Vary)?;
    let date_ms = date_ms(headers).unwrap_or(exchange.response_time_ms);
    let lifetime_s = match lifetime_secs(&directives, headers, date_ms) {
        Some(explicit) => explicit,
        None if HEURISTIC_STATUSES.contains(&status.as_u16()) || directives.public => {
            heuristic_secs(headers, date_ms, limits.heuristic_cap)
        }
        None => return Err(NotStorable::NoFreshness),
    };
    let most_ms = millis(limits.most);
    let has_validator =
        headers.contains_key(header::ETAG) || headers.contains_key(header::LAST_MODIFIED);
    let must_revalidate = directives.must_revalidate
        || directives.proxy_revalidate
        || directives.s_maxage.is_some()
        || directives.no_cache;
    let lifetime_ms = if directives.no_cache {
        0
    } else {
        lifetime_s.saturating_mul(1000).min(most_ms)
    };
    let window = |secs: Option<u64>| match (must_revalidate, secs) {
        (false, Some(secs)) => secs.saturating_mul(1000).min(most_ms),
        _ => 0,
    };
    let judged = Judged {
        lifetime_ms,
        initial_age_ms: initial_age_ms(exchange, date_ms),
        stale_while_revalidate_ms: window(directives.stale_while_revalidate),
        stale_if_error_ms: window(
            directives
                .stale_if_error
                .or(Some(limits.stale_if_error.as_secs())),
        ),
        must_revalidate,
        keep_stale_ms: if has_validator {
            millis(limits.keep_stale)
        } else {
            0
        },
        selecting,
    };
    let usable_ever = judged.lifetime_ms > judged.initial_age_ms
        || has_validator
        || judged.stale_while_revalidate_ms > 0
        || (directives.stale_if_error.is_some() && judged.stale_if_error_ms > 0);
    if !usable_ever {
        // Stale on arrival, with nothing to revalidate it with: storing it helps no one.
        return Err(NotStorable::NoFreshness);
    }
    Ok(judged)
}

/// The explicit freshness lifetime in seconds (section 4.2.1), `None` when the response has
/// none: `s-maxage`, else `max-age`, else `Expires` − `Date`. An invalid value, a second
/// `Expires` line, or an `Expires` that is not a date, gives zero (stale).
fn lifetime_secs(directives: &Directives, headers: &HeaderMap, date_ms: u64) -> Option<u64> {
    let delta = |d: Delta| match d {
        Delta::Seconds(secs) => secs,
        Delta::Invalid => 0,
    };
    if let Some(s_maxage) = directives.s_maxage {
        return Some(delta(s_maxage));
    }
    if let Some(max_age) = directives.max_age {
        return Some(delta(max_age));
    }
    let mut expires = headers.get_all(header::EXPIRES).iter();
    let first = expires.next()?;
    if expires.next().is_some() {
        return Some(0);
    }
    // An `Expires` that is not a date ("0", "-1") means already expired (section 5.3).
    let expires_ms = first.to_str().ok().and_then(parse_date_ms).unwrap_or(0);
    Some(expires_ms.saturating_sub(date_ms) / 1000)
}

/// 10% of the time since `Last-Modified`, at most `cap`; zero without `Last-Modified`.
fn heuristic_secs(headers: &HeaderMap, date_ms: u64, cap: Duration) -> u64 {
    let Some(modified_ms) = headers
        .get(header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_date_ms)
    else {
        return 0;
    };
    (date_ms.saturating_sub(modified_ms) / 1000 / HEURISTIC_FRACTION).min(cap.as_secs())
}

/// The corrected initial age (section 4.2.3): the larger of the apparent age (our clock against
/// the origin's `Date`) and the `Age` it arrived with plus the time the exchange took.
fn initial_age_ms(exchange: &Exchange<'_>, date_ms: u64) -> u64 {
    let apparent = exchange.response_time_ms.saturating_sub(date_ms) / 1000 * 1000;
    let delay = exchange
        .response_time_ms
        .saturating_sub(exchange.request_time_ms);
    let corrected = age_secs(exchange.headers)
        .unwrap_or(0)
        .saturating_mul(1000)
        .saturating_add(delay);
    apparent.max(corrected)
}

/// The `Age` the response arrived with: the first member of the first line, when it is
/// delta-seconds; anything else is ignored (section 5.1).
pub(crate) fn age_secs(headers: &HeaderMap) -> Option<u64> {
    let first = headers.get(header::AGE)?.to_str().ok()?;
    let member = first.split(',').next()?.trim();
    if member.is_empty() || !member.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        member
            .bytes()
            .try_fold(0u64, |n, b| {
                n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
            })
            .unwrap_or(u64::MAX)
            .min(DELTA_SECONDS_CAP),
    )
}

/// The response's `Date`, ms since the epoch.
fn date_ms(headers: &HeaderMap) -> Option<u64> {
    parse_date_ms(headers.get(header::DATE)?.to_str().ok()?)
}

/// An HTTP-date in ms since the epoch: IMF-fixdate, RFC 850 or asctime (RFC 9110 section
/// 5.6.7), each in its exact shape (spacing, digits, comma), with names in any case and the
/// weekday not checked against the date.
pub(crate) fn parse_date_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    // The weekday is only checked for being letters; what follows it decides the format.
    let (weekday, rest) = match text.split_once(", ") {
        Some((weekday, rest)) => (weekday, rest),
        None => text.split_at_checked(3)?,
    };
    if weekday.is_empty() || !weekday.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let shape: String = rest
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' => 'a',
            '0'..='9' => '9',
            other => other,
        })
        .collect();
    let number = |range: std::ops::Range<usize>| rest.get(range)?.trim().parse::<u64>().ok();
    let (day, month, year, clock) = match shape.as_str() {
        // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
        "99 aaa 9999 99:99:99 aaa"
            if weekday.len() == 3 && rest[21..].eq_ignore_ascii_case("gmt") =>
        {
            (number(0..2)?, &rest[3..6], number(7..11)?, 12)
        }
        // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"
        "99-aaa-99 99:99:99 aaa" if rest[19..].eq_ignore_ascii_case("gmt") => {
            let year = number(7..9)?;
            (
                number(0..2)?,
                &rest[3..6],
                if year < 70 { 2000 + year } else { 1900 + year },
                10,
            )
        }
        // asctime: "Sun Nov  6 08:49:37 1994"
        " aaa 99 99:99:99 9999" | " aaa  9 99:99:99 9999" => {
            (number(5..7)?, &rest[1..4], number(17..21)?, 8)
        }
        _ => return None,
    };
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let month = MONTHS.iter().position(|m| month.eq_ignore_ascii_case(m))? as u64 + 1;
    let (hour, minute, second) = (
        number(clock..clock + 2)?,
        number(clock + 3..clock + 5)?,
        number(clock + 6..clock + 8)?,
    );
    if !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day)?;
    Some((days * 86_400 + hour * 3600 + minute * 60 + second) * 1000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date; `None` before 1970.
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    let (y, m) = if month <= 2 {
        (year.checked_sub(1)?, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let year_of_era = y - era * 400;
    let day_of_year = (153 * m + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    (era * 146_097 + day_of_era).checked_sub(719_468)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Headers that describe the connection or the cache's own handling, never stored.
fn is_unstored(name: &HeaderName, connection_listed: &[String]) -> bool {
    let lower = name.as_str();
    matches!(
        lower,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
            | "age"
            | "cache-status"
    ) || lower.starts_with("x-cache")
        || connection_listed.iter().any(|listed| listed == lower)
}

fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect()
}

/// The response's headers as stored: all of them as the origin sent them (`Date`, `ETag`,
/// `Cache-Control`, `Vary`, `Content-Encoding` included), less connection headers, framing and
/// `Age` (recomputed on every answer). `None` when one is not text.
pub(crate) fn stored_headers(headers: &HeaderMap) -> Option<Vec<(String, String)>> {
    let listed = connection_listed(headers);
    let mut kept = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        if !is_unstored(name, &listed) {
            kept.push((name.as_str().to_string(), value.to_str().ok()?.to_string()));
        }
    }
    Some(kept)
}

/// The stored headers updated by a 304 (section 3.2): every field the 304 carries replaces the
/// stored lines of that name, except framing and content coding, which describe the stored
/// body, not the 304.
pub(crate) fn updated_headers(
    stored: &[(String, String)],
    not_modified: &HeaderMap,
) -> Vec<(String, String)> {
    let Some(fresh) = stored_headers(not_modified) else {
        return stored.to_vec();
    };
    let names: Vec<String> = fresh.iter().map(|(name, _)| name.clone()).collect();
    let replaced = |name: &str| {
        !matches!(name, "content-encoding" | "content-range" | "content-type")
            && names.iter().any(|fresh_name| fresh_name == name)
    };
    let mut updated: Vec<(String, String)> = stored
        .iter()
        .filter(|(name, _)| !replaced(name))
        .cloned()
        .collect();
    updated.extend(fresh.into_iter().filter(|(name, _)| replaced(name)));
    updated
}

/// Whether a client's conditional request is answered with 304 from a stored response
/// (RFC 9110 section 13.2.2): `If-None-Match` against its `ETag` (weak comparison), else
/// `If-Modified-Since` against its `Last-Modified` (or `Date`). Only for 2xx responses.
pub(crate) fn not_modified(request: &HeaderMap, status: StatusCode, stored: &HeaderMap) -> bool {
    if !status.is_success() {
        return false;
    }
    if request.contains_key(header::IF_NONE_MATCH) {
        let Some(etag) = stored.get(header::ETAG).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let weak = |tag: &str| tag.trim().trim_start_matches("W/").to_string();
        return request
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|tag| tag.trim() == "*" || weak(tag) == weak(etag));
    }
    let Some(since) = request
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_date_ms)
    else {
        return false;
    };
    let modified = stored
        .get(header::LAST_MODIFIED)
        .or_else(|| stored.get(header::DATE))
        .and_then(|v| v.to_str().ok())
        .and_then(parse_date_ms);
    modified.is_some_and(|modified| modified <= since)
}

/// The fields of a stored response a 304 to a client carries (RFC 9110 section 15.4.5): all
/// but those describing the body.
pub(crate) fn strip_for_not_modified(headers: &mut HeaderMap) {
    for name in [
        header::CONTENT_LENGTH,
        header::CONTENT_TYPE,
        header::CONTENT_ENCODING,
        header::CONTENT_RANGE,
        header::CONTENT_LANGUAGE,
        header::TRANSFER_ENCODING,
    ] {
        headers.remove(name);
    }
}

/// The conditional headers that revalidate a stored response with the origin (section 4.3.1).
pub(crate) fn validators(stored: &HeaderMap) -> Vec<(HeaderName, warp::http::HeaderValue)> {
    let mut conditionals = Vec::new();
    if let Some(etag) = stored.get(header::ETAG) {
        conditionals.push((header::IF_NONE_MATCH, etag.clone()));
    }
    if let Some(modified) = stored.get(header::LAST_MODIFIED) {
        conditionals.push((header::IF_MODIFIED_SINCE, modified.clone()));
    }
    conditionals
}

/// Why a stored response may not answer `request` at all, fresh or not (`None`: it may): its
/// `Vary` fields differ (`"other-variant"`, section 4.1), or the request carries `Authorization`
/// and the response does not allow it (section 3.5), or `Cookie` and the response is not marked
/// `public` or `s-maxage` (our choice, see [`judge`]; not when the key varies on `Cookie`)
/// (`"credentials"`). `stored` are the stored header pairs; their `Cache-Control` is only read
/// for a request with credentials, so a plain hit parses nothing.
pub(crate) fn unusable_for(
    stored: &[(String, String)],
    selecting: &Selecting,
    request: &HeaderMap,
    cookie_keyed: bool,
) -> Option<&'static str> {
    if !vary::matches(selecting, request) {
        return Some("other-variant");
    }
    let authorization = request.contains_key(header::AUTHORIZATION);
    let cookie = request.contains_key(header::COOKIE) && !cookie_keyed;
    if !authorization && !cookie {
        return None;
    }
    let mut controls = HeaderMap::new();
    for (name, value) in stored {
        if name == "cache-control" || name == "cdn-cache-control" {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                warp::http::HeaderValue::from_str(value),
            ) {
                controls.append(name, value);
            }
        }
    }
    let directives = Directives::of(&controls);
    let shared = directives.public || directives.s_maxage.is_some();
    let allowed = if authorization {
        shared || directives.must_revalidate
    } else {
        shared
    };
    (!allowed).then_some("credentials")
}

#[cfg(test)]
mod tests;
