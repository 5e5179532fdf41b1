//! Who may use the cache admin routes.
//!
//! With `admin.token` set, a request needs `Authorization: Bearer <token>` (the scheme in any
//! case, RFC 7235; the token compared in constant time); otherwise it gets 401 with
//! `WWW-Authenticate` and a message saying what was wrong with what was sent. With no token
//! set, only loopback clients are served (403 for others) and only under a loopback `Host`
//! (or one of `admin.allowed_hosts`), which defeats DNS rebinding. In both modes the browser
//! protections of [`super::admin_guard`] apply. Place this filter after the path filters, so
//! a wrong path is still a 404.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use warp::http::{header, HeaderMap, Method};
use warp::{Filter, Rejection};

use super::admin_guard;
use crate::error::ApiError;
use crate::settings::AdminSettings;

/// The admin access rule.
#[derive(Clone)]
pub enum AdminAccess {
    /// Requests must carry this bearer token.
    Token(Arc<str>),
    /// No token configured: loopback clients only, under a loopback `Host` or one of these.
    LoopbackOnly {
        /// Host names accepted besides the loopback ones (`admin.allowed_hosts`).
        allowed_hosts: Arc<[String]>,
    },
}

impl AdminAccess {
    /// The rule for an optional configured token (no extra allowed hosts).
    pub fn from_token(token: Option<&str>) -> Self {
        match token {
            Some(token) => AdminAccess::Token(Arc::from(token)),
            None => AdminAccess::LoopbackOnly {
                allowed_hosts: Arc::from(Vec::new()),
            },
        }
    }

    /// The rule the `admin:` settings describe.
    pub fn from_settings(admin: &AdminSettings) -> Self {
        match &admin.token {
            Some(token) => AdminAccess::Token(Arc::from(token.as_str())),
            None => AdminAccess::LoopbackOnly {
                allowed_hosts: Arc::from(admin.allowed_hosts.clone()),
            },
        }
    }

    /// A sentence for the startup log.
    pub fn describe(&self) -> &'static str {
        match self {
            AdminAccess::Token(_) => "admin routes require the bearer token (admin.token)",
            AdminAccess::LoopbackOnly { .. } => {
                "admin routes answer loopback clients only: no admin.token is set"
            }
        }
    }

    /// Decides one request from its method, headers and client address.
    pub fn check(
        &self,
        method: &Method,
        headers: &HeaderMap,
        remote: Option<SocketAddr>,
    ) -> Result<(), ApiError> {
        match self {
            AdminAccess::Token(token) => {
                check_bearer(headers.get(header::AUTHORIZATION), token)?;
                admin_guard::check(method, headers, None)
            }
            AdminAccess::LoopbackOnly { allowed_hosts } => {
                if !remote.is_some_and(|addr| is_loopback(addr.ip())) {
                    return Err(ApiError::Forbidden(
                        "admin routes answer loopback clients only until admin.token is set".into(),
                    ));
                }
                admin_guard::check(method, headers, Some(allowed_hosts))
            }
        }
    }
}

/// `Ok` when `authorization` is `Bearer <token>` (scheme in any case); otherwise an error
/// that says what was wrong with what was sent.
fn check_bearer(
    authorization: Option<&warp::http::HeaderValue>,
    token: &str,
) -> Result<(), ApiError> {
    let unauthorized = |message: &str| Err(ApiError::Unauthorized(message.to_string()));
    let Some(value) = authorization else {
        return unauthorized("admin routes need an Authorization: Bearer <token> header");
    };
    let Ok(value) = value.to_str() else {
        return unauthorized("the Authorization header is not printable ASCII");
    };
    let value = value.trim();
    let (scheme, credentials) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::Unauthorized(format!(
            "the Authorization header uses the {scheme:?} scheme; admin routes need Bearer <token>"
        )));
    }
    let presented = credentials.trim();
    if presented.is_empty() {
        return unauthorized("the Authorization header says Bearer but carries no token");
    }
    if constant_time_eq(presented.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        unauthorized("the bearer token is not valid")
    }
}

/// Passes requests the rule allows; rejects the others with 401, 403 or 415.
pub fn admin_only(access: AdminAccess) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::method()
        .and(warp::header::headers_cloned())
        .and(crate::server::client_addr())
        .and_then(
            move |method: Method, headers: HeaderMap, remote: Option<SocketAddr>| {
                let verdict = access.check(&method, &headers, remote);
                async move { verdict.map_err(warp::reject::custom) }
            },
        )
        .untuple_one()
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Compares without an early exit, so the time taken does not reveal how much of a guess was
/// right. (The length is not secret.)
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::HeaderValue;

    const TOKEN: &str = "s3cret-s3cret-s3cret";

    fn addr(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().expect("ip"), 5555))
    }

    fn with_authorization(value: Option<&'static str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = value {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_static(value));
        }
        headers
    }

    fn token_verdict(value: Option<&'static str>) -> Result<(), ApiError> {
        AdminAccess::from_token(Some(TOKEN)).check(
            &Method::GET,
            &with_authorization(value),
            addr("10.0.0.9"),
        )
    }

    #[test]
    fn token_rule_takes_the_scheme_in_any_case() {
        for value in [
            "Bearer s3cret-s3cret-s3cret",
            "bearer s3cret-s3cret-s3cret",
            "BEARER   s3cret-s3cret-s3cret ",
        ] {
            assert!(token_verdict(Some(value)).is_ok(), "{value}");
        }
    }

    #[test]
    fn token_errors_say_what_was_wrong_with_what_was_sent() {
        let message = |value| match token_verdict(value) {
            Err(ApiError::Unauthorized(message)) => message,
            other => panic!("{value:?}: {other:?}"),
        };
        assert!(message(None).contains("need an Authorization"));
        assert!(message(Some("Bearer nope")).contains("not valid"));
        assert!(message(Some("Basic dXNlcjpwdw==")).contains("\"Basic\" scheme"));
        assert!(message(Some(TOKEN)).contains("scheme"));
        assert!(message(Some("Bearer")).contains("no token"));
        for value in [Some("Bearer nope"), Some("Basic x"), Some("Bearer")] {
            assert!(!message(value).contains("need an"), "{value:?}");
        }
    }

    #[test]
    fn loopback_rule() {
        let access = AdminAccess::from_token(None);
        let headers = HeaderMap::new();
        for ip in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            assert!(
                access.check(&Method::GET, &headers, addr(ip)).is_ok(),
                "{ip}"
            );
        }
        for ip in ["10.0.0.1", "192.168.1.2", "::ffff:10.0.0.1"] {
            assert!(
                matches!(
                    access.check(&Method::GET, &headers, addr(ip)),
                    Err(ApiError::Forbidden(_))
                ),
                "{ip}"
            );
        }
        assert!(access.check(&Method::GET, &headers, None).is_err());
    }

    #[test]
    fn comparison_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
