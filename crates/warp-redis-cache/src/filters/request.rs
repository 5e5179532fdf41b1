//! The request as the cache filters see it: method, path, query and headers, the directives
//! that decide whether the cache may be used, and the default key.

use std::fmt::Write as _;

use percent_encoding::{percent_encode, AsciiSet, CONTROLS};
use sha2::{Digest, Sha256};
use warp::filters::path::FullPath;
use warp::http::header::{
    HeaderMap, HeaderName, ACCEPT_ENCODING, AUTHORIZATION, CACHE_CONTROL, COOKIE, PRAGMA,
};
use warp::http::Method;
use warp::Filter;

/// Bytes escaped in vary values inside keys: separators of the key format and the escape
/// character itself, plus everything that is not visible ASCII.
const VARY_VALUE_ESCAPES: &AsciiSet = &CONTROLS.add(b' ').add(b'|').add(b'=').add(b',').add(b'%');

/// Keys longer than this keep a readable head and end in a SHA-256 of the whole key, so a huge
/// query string cannot make a huge Redis key, and no one can craft two long keys that share
/// an entry (a 64-bit hash could be collided on purpose).
const MAX_READABLE_KEY: usize = 200;

/// The parts of a request the cache filters use.
#[derive(Debug, Clone)]
pub struct RequestParts {
    method: Method,
    path: String,
    query: String,
    headers: HeaderMap,
}

/// Extracts [`RequestParts`]; never rejects.
pub fn request_parts(
) -> impl Filter<Extract = (RequestParts,), Error = std::convert::Infallible> + Clone {
    warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .map(|method, path: FullPath, query, headers| RequestParts {
            method,
            path: path.as_str().to_string(),
            query,
            headers,
        })
}

impl RequestParts {
    /// The request method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The raw query string, without `?` (empty when there is none).
    pub fn query(&self) -> &str {
        &self.query
    }

    /// The query parameters, decoded as `application/x-www-form-urlencoded` (`+` is a space,
    /// `%XX` escapes decoded, invalid UTF-8 replaced).
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        decode_query(&self.query)
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// GET and HEAD may be answered from the cache; HEAD uses the GET entry.
    pub fn is_cacheable_method(&self) -> bool {
        self.method == Method::GET || self.method == Method::HEAD
    }

    /// The default key: `GET:<path>?<query parameters sorted>` (HEAD maps to GET).
    pub fn default_key(&self) -> String {
        Self::get_key_for(self.path(), &self.query)
    }

    /// The default key of a GET of `path` with raw `query`: what a [`super::BustPolicy`] key
    /// function returns to delete that entry.
    pub fn get_key_for(path: &str, query: &str) -> String {
        let mut key = String::with_capacity(4 + path.len() + query.len() + 1);
        key.push_str("GET:");
        key.push_str(path);
        if !query.is_empty() {
            let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
            params.sort_unstable();
            key.push('?');
            key.push_str(&params.join("&"));
        }
        key
    }

    /// Appends `|name=value` for each vary header to `base`, then bounds the length. Values
    /// are percent-encoded (`|`, `=`, `,`, `%`, and anything not visible ASCII), so no two
    /// different sets of header values can produce the same key.
    pub(crate) fn finish_key(&self, mut key: String, vary: &[HeaderName]) -> String {
        for name in vary {
            key.push('|');
            key.push_str(name.as_str());
            key.push('=');
            for (i, value) in self.headers.get_all(name).iter().enumerate() {
                if i > 0 {
                    key.push(',');
                }
                key.extend(percent_encode(value.as_bytes(), VARY_VALUE_ESCAPES));
            }
        }
        bound_key(key)
    }

    /// The request's cache directives.
    pub fn directives(&self) -> RequestDirectives {
        let mut directives = RequestDirectives::default();
        for token in header_tokens(&self.headers, &CACHE_CONTROL) {
            match token.as_str() {
                "no-store" => directives.no_store = true,
                "no-cache" | "max-age=0" => directives.no_cache = true,
                _ => {}
            }
        }
        if header_tokens(&self.headers, &PRAGMA).any(|t| t == "no-cache") {
            directives.no_cache = true;
        }
        directives
    }

    /// Whether the request carries credentials (Authorization, Cookie) that the key does not
    /// vary on: its response may be one user's and must not be shared.
    pub fn has_unkeyed_credentials(&self, vary: &[HeaderName]) -> bool {
        [AUTHORIZATION, COOKIE]
            .iter()
            .any(|name| self.headers.contains_key(name) && !vary.contains(name))
    }

    /// Whether the request carries `If-Match`, `If-Unmodified-Since`, `If-Range` or `Range`:
    /// its answer may be a 412 or a 206 meant for it alone.
    pub(crate) fn has_precondition_or_range(&self) -> bool {
        use warp::http::header::{IF_MATCH, IF_RANGE, IF_UNMODIFIED_SINCE, RANGE};
        [IF_MATCH, IF_UNMODIFIED_SINCE, IF_RANGE, RANGE]
            .iter()
            .any(|name| self.headers.contains_key(name))
    }

    /// Whether the client accepts a gzip-encoded body: `gzip` (or `x-gzip`) with a non-zero
    /// weight, or else `*` with a non-zero weight. An explicit `gzip;q=0` wins over `*`.
    pub fn accepts_gzip(&self) -> bool {
        let mut gzip = None;
        let mut any = None;
        for token in header_tokens(&self.headers, &ACCEPT_ENCODING) {
            let mut parts = token.split(';').map(str::trim);
            let coding = parts.next().unwrap_or_default().to_string();
            let weight = parts
                .find_map(|p| p.strip_prefix("q="))
                .map_or(1.0, |q| q.parse::<f32>().unwrap_or(0.0));
            match coding.as_str() {
                "gzip" | "x-gzip" => gzip = Some(weight),
                "*" => any = Some(weight),
                _ => {}
            }
        }
        gzip.or(any).is_some_and(|weight| weight > 0.0)
    }

    /// Whether `If-None-Match` matches `etag` (weak comparison, `*` included).
    pub fn if_none_match(&self, etag: &str) -> bool {
        let wanted = etag.trim_start_matches("W/");
        header_tokens_raw(&self.headers, &warp::http::header::IF_NONE_MATCH)
            .any(|tag| tag == "*" || tag.trim_start_matches("W/") == wanted)
    }
}

/// Decodes a raw query string as `application/x-www-form-urlencoded` (`+` is a space, `%XX`
/// escapes decoded, invalid UTF-8 replaced): the one decoder that both a route and its cache
/// key use, so they can never read a query differently.
pub fn decode_query(raw: &str) -> Vec<(String, String)> {
    let decode = |text: &str| {
        let spaced = text.replace('+', " ");
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8_lossy()
            .into_owned()
    };
    raw.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

/// Cache-Control directives of a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestDirectives {
    /// Neither read from nor write to the cache.
    pub no_store: bool,
    /// Skip the lookup, ask the origin, and refresh the entry.
    pub no_cache: bool,
}

/// Comma-separated tokens of every `name` header, trimmed and lower-cased.
pub(crate) fn header_tokens<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> impl Iterator<Item = String> + 'a {
    header_tokens_raw(headers, name).map(|t| t.to_ascii_lowercase())
}

/// Comma-separated tokens of every `name` header, trimmed, case kept.
pub(crate) fn header_tokens_raw<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

fn bound_key(key: String) -> String {
    if key.len() <= MAX_READABLE_KEY {
        return key;
    }
    let digest = Sha256::digest(key.as_bytes());
    let mut cut = MAX_READABLE_KEY;
    while !key.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut bounded = String::with_capacity(cut + 1 + 2 * digest.len());
    bounded.push_str(&key[..cut]);
    bounded.push('#');
    for byte in digest.iter() {
        let _ = write!(bounded, "{byte:02x}");
    }
    bounded
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::HeaderValue;

    fn parts(
        method: Method,
        path: &'static str,
        query: &str,
        headers: &[(&'static str, &'static str)],
    ) -> RequestParts {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, HeaderValue::from_static(value));
        }
        RequestParts {
            method,
            path: path.to_string(),
            query: query.to_string(),
            headers: map,
        }
    }

    #[test]
    fn default_key_sorts_query_parameters_and_maps_head_to_get() {
        let a = parts(Method::GET, "/items", "offset=5&limit=2", &[]);
        let b = parts(Method::HEAD, "/items", "limit=2&offset=5", &[]);
        assert_eq!(a.default_key(), "GET:/items?limit=2&offset=5");
        assert_eq!(a.default_key(), b.default_key());
        assert_eq!(
            parts(Method::GET, "/items/1", "", &[]).default_key(),
            "GET:/items/1"
        );
    }

    #[test]
    fn vary_headers_extend_the_key_and_long_keys_are_bounded() {
        let request = parts(Method::GET, "/x", "", &[("accept-language", "fr")]);
        let vary = [HeaderName::from_static("accept-language")];
        assert_eq!(
            request.finish_key("k".into(), &vary),
            "k|accept-language=fr"
        );
        let vary2 = [HeaderName::from_static("a"), HeaderName::from_static("b")];
        let one = parts(Method::GET, "/x", "", &[("a", "1|b=2"), ("b", "3")]);
        let two = parts(Method::GET, "/x", "", &[("a", "1"), ("b", "2|b=3")]);
        assert_ne!(
            one.finish_key("k".into(), &vary2),
            two.finish_key("k".into(), &vary2)
        );
        let long = request.finish_key("x".repeat(5000), &[]);
        assert_eq!(long.len(), MAX_READABLE_KEY + 1 + 64, "{long}");
        assert_ne!(long, request.finish_key("x".repeat(5001), &[]));
    }

    #[test]
    fn directives_and_credentials_are_read() {
        let request = parts(
            Method::GET,
            "/",
            "",
            &[("cache-control", "max-age=0, No-Store")],
        );
        assert_eq!(
            request.directives(),
            RequestDirectives {
                no_store: true,
                no_cache: true
            }
        );
        let request = parts(Method::GET, "/", "", &[("pragma", "no-cache")]);
        assert!(request.directives().no_cache);
        let request = parts(Method::GET, "/", "", &[("authorization", "Bearer x")]);
        assert!(request.has_unkeyed_credentials(&[]));
        assert!(!request.has_unkeyed_credentials(&[AUTHORIZATION]));
    }

    #[test]
    fn gzip_acceptance_and_etag_matching() {
        let yes = parts(
            Method::GET,
            "/",
            "",
            &[("accept-encoding", "br, gzip;q=0.8")],
        );
        let no = parts(Method::GET, "/", "", &[("accept-encoding", "gzip;q=0, br")]);
        assert!(yes.accepts_gzip());
        assert!(!no.accepts_gzip());
        assert!(!parts(Method::GET, "/", "", &[]).accepts_gzip());
        let star = parts(Method::GET, "/", "", &[("accept-encoding", "*")]);
        assert!(star.accepts_gzip());
        let refused = parts(Method::GET, "/", "", &[("accept-encoding", "gzip;q=0, *")]);
        assert!(!refused.accepts_gzip());
        let inm = parts(Method::GET, "/", "", &[("if-none-match", "\"a\", W/\"b\"")]);
        assert!(inm.if_none_match("\"b\""));
        assert!(!inm.if_none_match("\"c\""));
    }
}
