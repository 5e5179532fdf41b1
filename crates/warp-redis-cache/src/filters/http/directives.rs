//! The response's caching directives: `Cache-Control` (RFC 9111 section 5.2.2), or
//! `CDN-Cache-Control` (RFC 9213) when it is present and valid, which then replaces
//! `Cache-Control` for this cache entirely.

use warp::http::header::{HeaderMap, HeaderName, CACHE_CONTROL};

/// The targeted field of RFC 9213.
pub(crate) const CDN_CACHE_CONTROL: HeaderName = HeaderName::from_static("cdn-cache-control");

/// The value RFC 9111 section 1.2.2 says to use for a delta-seconds too large to represent.
pub(crate) const DELTA_SECONDS_CAP: u64 = 2_147_483_648;

/// A delta-seconds argument (`max-age=N`): a number, or present but invalid (quoted with
/// single quotes, a decimal, negative, letters), which makes the response stale (5.2.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delta {
    /// Seconds, capped at [`DELTA_SECONDS_CAP`].
    Seconds(u64),
    /// Present, but not a delta-seconds.
    Invalid,
}

/// The directives of one response that decide storing and reuse by a shared cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Directives {
    pub(crate) max_age: Option<Delta>,
    pub(crate) s_maxage: Option<Delta>,
    pub(crate) no_store: bool,
    /// `no-cache`, with or without a field list (a list is treated as the whole response:
    /// the conservative reading).
    pub(crate) no_cache: bool,
    /// `private`, with or without a field list (not stored by a shared cache either way).
    pub(crate) private: bool,
    pub(crate) public: bool,
    pub(crate) must_revalidate: bool,
    pub(crate) proxy_revalidate: bool,
    pub(crate) must_understand: bool,
    /// RFC 5861: how long past freshness it may be served while it is revalidated.
    pub(crate) stale_while_revalidate: Option<u64>,
    /// RFC 5861: how long past freshness it may be served when the origin fails.
    pub(crate) stale_if_error: Option<u64>,
}

impl Directives {
    /// The directives that apply to this cache: `CDN-Cache-Control` when present and a valid
    /// structured field, else `Cache-Control`.
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        if let Some(targeted) = joined(headers, &CDN_CACHE_CONTROL) {
            if let Some(directives) = parse_targeted(&targeted) {
                return directives;
            }
        }
        joined(headers, &CACHE_CONTROL)
            .map(|value| parse_cache_control(&value))
            .unwrap_or_default()
    }

    fn set(&mut self, name: &str, argument: Option<Argument<'_>>) {
        let delta = || Some(argument.map_or(Delta::Invalid, Argument::delta));
        let seconds = || {
            argument.and_then(|a| match a.delta() {
                Delta::Seconds(s) => Some(s),
                Delta::Invalid => None,
            })
        };
        match name {
            // The first occurrence wins (RFC 9111 section 4.2.1 allows it).
            "max-age" if self.max_age.is_none() => self.max_age = delta(),
            "s-maxage" if self.s_maxage.is_none() => self.s_maxage = delta(),
            "no-store" => self.no_store = true,
            "no-cache" => self.no_cache = true,
            "private" => self.private = true,
            "public" => self.public = true,
            "must-revalidate" => self.must_revalidate = true,
            "proxy-revalidate" => self.proxy_revalidate = true,
            "must-understand" => self.must_understand = true,
            "stale-while-revalidate" if self.stale_while_revalidate.is_none() => {
                self.stale_while_revalidate = seconds();
            }
            "stale-if-error" if self.stale_if_error.is_none() => {
                self.stale_if_error = seconds();
            }
            _ => {}
        }
    }
}

/// A directive's argument as written.
#[derive(Debug, Clone, Copy)]
enum Argument<'a> {
    Token(&'a str),
    Quoted(&'a str),
}

impl Argument<'_> {
    /// As delta-seconds: digits only (a double-quoted number is accepted, as RFC 9111 asks
    /// recipients to), saturating at [`DELTA_SECONDS_CAP`].
    fn delta(self) -> Delta {
        let digits = match self {
            Argument::Token(text) | Argument::Quoted(text) => text,
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Delta::Invalid;
        }
        let value = digits
            .bytes()
            .try_fold(0u64, |n, b| {
                n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
            })
            .unwrap_or(u64::MAX);
        Delta::Seconds(value.min(DELTA_SECONDS_CAP))
    }
}

/// Every line of `name`, joined with commas (a list field split over lines is one list).
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut lines = headers.get_all(name).iter().peekable();
    lines.peek()?;
    let parts: Vec<&str> = lines.filter_map(|v| v.to_str().ok()).collect();
    Some(parts.join(","))
}

/// Parses `Cache-Control`: comma-separated directives, names case-insensitive, arguments a
/// token or a quoted string (commas inside quotes do not separate). Unknown directives are
/// ignored.
pub(crate) fn parse_cache_control(value: &str) -> Directives {
    let mut directives = Directives::default();
    for member in split_outside_quotes(value) {
        let (name, argument) = match member.split_once('=') {
            Some((name, argument)) => (name.trim(), Some(argument.trim())),
            None => (member.trim(), None),
        };
        if name.is_empty() {
            continue;
        }
        let argument =
            argument.map(
                |a| match a.strip_prefix('"').and_then(|a| a.strip_suffix('"')) {
                    Some(inner) => Argument::Quoted(inner),
                    None => Argument::Token(a),
                },
            );
        directives.set(&name.to_ascii_lowercase(), argument);
    }
    directives
}

/// Splits on commas that are not inside a quoted string.
fn split_outside_quotes(value: &str) -> Vec<&str> {
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&value[start..]);
    parts
}

/// Parses `CDN-Cache-Control` as an RFC 8941 dictionary; `None` when it is not a valid one,
/// or a known directive has the wrong type (the field is then ignored, RFC 9213 section 2.1).
fn parse_targeted(value: &str) -> Option<Directives> {
    let mut directives = Directives::default();
    for member in split_outside_quotes(value) {
        let member = member.trim_matches([' ', '\t']);
        let member = member.split(';').next().unwrap_or_default();
        let (key, item) = match member.split_once('=') {
            Some((key, item)) => (key, Some(item)),
            None => (member, None),
        };
        let valid_key = key
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'*')
            && key.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'_' | b'-' | b'.' | b'*')
            });
        if !valid_key {
            return None;
        }
        let integer = match item {
            None | Some("?1") | Some("?0") => None,
            Some(item) if is_sf_integer(item) => Some(item),
            Some(item) if is_sf_bare_item(item) => {
                if matches!(
                    key,
                    "max-age" | "s-maxage" | "stale-while-revalidate" | "stale-if-error"
                ) {
                    return None;
                }
                None
            }
            Some(_) => return None,
        };
        if matches!(
            key,
            "max-age" | "s-maxage" | "stale-while-revalidate" | "stale-if-error"
        ) {
            // A number is required, and a negative one is no freshness at all.
            let digits = integer?;
            let delta = Argument::Token(digits.trim_start_matches('-')).delta();
            let delta = if digits.starts_with('-') {
                Delta::Invalid
            } else {
                delta
            };
            directives.set(
                key,
                Some(Argument::Token(match delta {
                    Delta::Seconds(_) => digits,
                    Delta::Invalid => "invalid",
                })),
            );
        } else if item != Some("?0") {
            directives.set(key, None);
        }
    }
    Some(directives)
}

fn is_sf_integer(item: &str) -> bool {
    let digits = item.strip_prefix('-').unwrap_or(item);
    !digits.is_empty() && digits.len() <= 15 && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A string, token, decimal, byte sequence or boolean (anything but an integer).
fn is_sf_bare_item(item: &str) -> bool {
    let first = item.bytes().next();
    match first {
        Some(b'"') => item.len() >= 2 && item.ends_with('"'),
        Some(b':') => item.len() >= 2 && item.ends_with(':'),
        Some(b'?') => matches!(item, "?0" | "?1"),
        Some(b) if b.is_ascii_alphabetic() || b == b'*' => item
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b)),
        Some(b) if b.is_ascii_digit() || b == b'-' => {
            let digits = item.strip_prefix('-').unwrap_or(item);
            let mut parts = digits.splitn(2, '.');
            let whole = parts.next().unwrap_or_default();
            let fraction = parts.next().unwrap_or_default();
            !whole.is_empty()
                && whole.bytes().all(|b| b.is_ascii_digit())
                && fraction.bytes().all(|b| b.is_ascii_digit())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_reads_directives_case_insensitively_and_ignores_quoted_commas() {
        let d = parse_cache_control("extension=\"max-age=3600, no-store\", Max-Age=1, public");
        assert_eq!(d.max_age, Some(Delta::Seconds(1)));
        assert!(d.public && !d.no_store);
        let d = parse_cache_control("max-age=1, extension=\"max-age=3600\"");
        assert_eq!(d.max_age, Some(Delta::Seconds(1)));
    }

    #[test]
    fn invalid_delta_seconds_make_the_value_invalid_and_huge_ones_cap() {
        for bad in [
            "max-age='3600'",
            "max-age=3600.0",
            "max-age=a100",
            "max-age=-1",
            "max-age=",
        ] {
            assert_eq!(
                parse_cache_control(bad).max_age,
                Some(Delta::Invalid),
                "{bad}"
            );
        }
        assert_eq!(
            parse_cache_control("max-age=003600").max_age,
            Some(Delta::Seconds(3600))
        );
        assert_eq!(
            parse_cache_control("max-age=99999999999999999999999").max_age,
            Some(Delta::Seconds(DELTA_SECONDS_CAP))
        );
    }

    #[test]
    fn a_valid_cdn_cache_control_replaces_cache_control_and_an_invalid_one_is_ignored() {
        let mut headers = HeaderMap::new();
        headers.insert(CACHE_CONTROL, "no-store".parse().unwrap());
        headers.insert(CDN_CACHE_CONTROL, "max-age=10000".parse().unwrap());
        let d = Directives::of(&headers);
        assert_eq!(d.max_age, Some(Delta::Seconds(10000)));
        assert!(!d.no_store);
        for invalid in ["max-age=10000, &&&&&", "max-age=\"10000\""] {
            headers.insert(CDN_CACHE_CONTROL, invalid.parse().unwrap());
            assert!(Directives::of(&headers).no_store, "{invalid}");
        }
        headers.insert(CDN_CACHE_CONTROL, "private".parse().unwrap());
        assert!(Directives::of(&headers).private);
    }
}
