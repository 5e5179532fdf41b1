//! What keeps a web page the operator visits away from the admin routes.
//!
//! A browser will send a cross-site `POST` (a form, or `fetch` with `mode: "no-cors"`) to
//! `localhost`, and a DNS-rebinding page can even read the answers, because it reaches the
//! service under its own host name. Pure checks on a request's head, each a unit test:
//!
//! - [`host_is_allowed`]: in loopback-only mode, `Host` must be a loopback name or address
//!   (`localhost`, `127.0.0.1`, `[::1]`, any port) or one of `admin.allowed_hosts`;
//! - [`is_cross_site`]: a state-changing request (anything but GET, HEAD, OPTIONS) carrying
//!   `Sec-Fetch-Site: cross-site` / `same-site`, or an `Origin` other than its own `Host`, is
//!   refused (browsers always send one of them on such requests; other clients send neither);
//! - [`body_type_is_json`]: a state-changing admin request with a body, or a declared body
//!   type, must be `application/json` (415), so a form or a `text/plain` "simple request"
//!   cannot reach a handler.

use std::net::IpAddr;

use warp::http::{header, HeaderMap, Method};

use crate::error::ApiError;
use crate::routes::json_body::check_json_content_type;

/// The host part of a `Host` header or an `Origin` authority, lower-cased, without the port
/// or IPv6 brackets.
fn host_part(authority: &str) -> String {
    let authority = authority.trim();
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => authority,
        }
    };
    host.to_ascii_lowercase()
}

/// Whether `host` (a `Host` header value) names this machine's loopback interface or one of
/// `allowed`.
///
/// ```
/// use warp_redis_cache_service::routes::admin_guard::host_is_allowed;
///
/// assert!(host_is_allowed("localhost:8080", &[]));
/// assert!(host_is_allowed("127.0.0.1", &[]));
/// assert!(host_is_allowed("[::1]:8080", &[]));
/// assert!(!host_is_allowed("attacker.example:8080", &[]));
/// assert!(host_is_allowed("cache.internal:8080", &["cache.internal".to_string()]));
/// ```
pub fn host_is_allowed(host: &str, allowed: &[String]) -> bool {
    let name = host_part(host);
    if name == "localhost" {
        return true;
    }
    if name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
        return true;
    }
    allowed
        .iter()
        .any(|allowed| allowed.eq_ignore_ascii_case(&name))
}

/// Whether `method` can change state (everything but GET, HEAD and OPTIONS).
pub fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// `Some(reason)` when a browser says the request comes from another site.
pub fn is_cross_site(headers: &HeaderMap) -> Option<String> {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("?").trim().to_ascii_lowercase();
        if site != "same-origin" && site != "none" {
            return Some(format!(
                "state-changing admin requests are refused from web pages (Sec-Fetch-Site: {site})"
            ));
        }
    }
    let origin = headers.get(header::ORIGIN)?;
    let origin = origin.to_str().unwrap_or("null").trim();
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .map(str::trim);
    match (authority, host) {
        (Some(authority), Some(host)) if authority.eq_ignore_ascii_case(host) => None,
        _ => Some(format!(
            "state-changing admin requests are refused from other origins (Origin: {origin})"
        )),
    }
}

/// `Ok` unless the request carries a body (or declares a body type) that is not JSON.
pub fn body_type_is_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let declares_type = headers.contains_key(header::CONTENT_TYPE);
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|length| length.to_str().ok())
            .is_some_and(|length| length.trim() != "0");
    if declares_type || has_body {
        check_json_content_type(headers)?;
    }
    Ok(())
}

/// The browser protections for one admin request, in order: `Host` (loopback-only mode,
/// `allowed_hosts` given), then for state-changing requests the site and the body type.
pub fn check(
    method: &Method,
    headers: &HeaderMap,
    allowed_hosts: Option<&[String]>,
) -> Result<(), ApiError> {
    if let (Some(allowed), Some(host)) = (allowed_hosts, headers.get(header::HOST)) {
        let host = host.to_str().unwrap_or("?");
        if !host_is_allowed(host, allowed) {
            return Err(ApiError::Forbidden(format!(
                "admin routes answer requests for localhost, 127.0.0.1 or [::1] only \
                 (or a name in admin.allowed_hosts), not for Host {host:?}"
            )));
        }
    }
    if !changes_state(method) {
        return Ok(());
    }
    if let Some(reason) = is_cross_site(headers) {
        return Err(ApiError::Forbidden(reason));
    }
    body_type_is_json(headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn hosts_are_loopback_names_or_allowed() {
        for host in [
            "localhost",
            "LOCALHOST:1",
            "127.0.0.1:80",
            "127.9.9.9",
            "[::1]",
            "[::1]:8",
        ] {
            assert!(host_is_allowed(host, &[]), "{host}");
        }
        for host in [
            "evil.example",
            "localhost.evil.example",
            "10.0.0.1:80",
            "[::2]:80",
            "",
        ] {
            assert!(!host_is_allowed(host, &[]), "{host}");
        }
        assert!(host_is_allowed(
            "Cache.Internal:9",
            &["cache.internal".into()]
        ));
    }

    #[test]
    fn cross_site_is_read_from_fetch_metadata_and_origin() {
        assert!(is_cross_site(&headers(&[])).is_none(), "curl sends neither");
        assert!(is_cross_site(&headers(&[("sec-fetch-site", "same-origin")])).is_none());
        assert!(is_cross_site(&headers(&[("sec-fetch-site", "none")])).is_none());
        assert!(is_cross_site(&headers(&[("sec-fetch-site", "cross-site")])).is_some());
        assert!(is_cross_site(&headers(&[("sec-fetch-site", "same-site")])).is_some());
        let same = [
            ("host", "localhost:8080"),
            ("origin", "http://localhost:8080"),
        ];
        assert!(is_cross_site(&headers(&same)).is_none());
        let other = [
            ("host", "localhost:8080"),
            ("origin", "http://localhost:3000"),
        ];
        assert!(is_cross_site(&headers(&other)).is_some());
        assert!(is_cross_site(&headers(&[("host", "a"), ("origin", "null")])).is_some());
    }

    #[test]
    fn bodies_must_be_json_and_bodiless_requests_pass() {
        assert!(body_type_is_json(&headers(&[])).is_ok());
        assert!(body_type_is_json(&headers(&[("content-length", "0")])).is_ok());
        let json = [("content-type", "application/json; charset=utf-8")];
        assert!(body_type_is_json(&headers(&json)).is_ok());
        for bad in [
            &[("content-type", "text/plain")][..],
            &[("content-length", "5")][..],
            &[("transfer-encoding", "chunked")][..],
        ] {
            assert!(
                matches!(
                    body_type_is_json(&headers(bad)),
                    Err(ApiError::UnsupportedMediaType(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn reads_are_not_held_to_the_body_rules() {
        let typed = headers(&[("content-type", "text/plain"), ("origin", "http://x")]);
        assert!(check(&Method::GET, &typed, None).is_ok());
        assert!(check(&Method::POST, &typed, None).is_err());
    }

    #[test]
    fn the_host_check_applies_only_when_allowed_hosts_are_given() {
        let rebound = headers(&[("host", "attacker.example")]);
        assert!(check(&Method::GET, &rebound, None).is_ok());
        assert!(matches!(
            check(&Method::GET, &rebound, Some(&[])),
            Err(ApiError::Forbidden(_))
        ));
    }
}
