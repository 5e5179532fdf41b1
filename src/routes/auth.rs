//! Who may use the cache admin routes.
//!
//! With `admin.token` set, a request needs `Authorization: Bearer <token>` (compared in
//! constant time); otherwise it gets 401 with `WWW-Authenticate`. With no token set, only
//! loopback clients are served (403 for others): safe by default on a shared network, and the
//! startup log says which rule is in force. Place this filter after the path filters, so a
//! wrong path is still a 404.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use warp::{Filter, Rejection};

use crate::error::ApiError;

/// The admin access rule.
#[derive(Clone)]
pub enum AdminAccess {
    /// Requests must carry this bearer token.
    Token(Arc<str>),
    /// No token configured: loopback clients only.
    LoopbackOnly,
}

impl AdminAccess {
    /// The rule for an optional configured token.
    pub fn from_token(token: Option<&str>) -> Self {
        match token {
            Some(token) => AdminAccess::Token(Arc::from(token)),
            None => AdminAccess::LoopbackOnly,
        }
    }

    /// A sentence for the startup log.
    pub fn describe(&self) -> &'static str {
        match self {
            AdminAccess::Token(_) => "admin routes require the bearer token (admin.token)",
            AdminAccess::LoopbackOnly => {
                "admin routes answer loopback clients only: no admin.token is set"
            }
        }
    }

    fn check(
        &self,
        authorization: Option<&str>,
        remote: Option<SocketAddr>,
    ) -> Result<(), ApiError> {
        match self {
            AdminAccess::Token(token) => {
                let presented = authorization
                    .and_then(|value| value.strip_prefix("Bearer "))
                    .map(str::trim);
                match presented {
                    Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => Ok(()),
                    Some(_) => Err(ApiError::Unauthorized(
                        "the bearer token is not valid".into(),
                    )),
                    None => Err(ApiError::Unauthorized(
                        "admin routes need an Authorization: Bearer <token> header".into(),
                    )),
                }
            }
            AdminAccess::LoopbackOnly => match remote.map(|addr| is_loopback(addr.ip())) {
                Some(true) => Ok(()),
                _ => Err(ApiError::Forbidden(
                    "admin routes answer loopback clients only until admin.token is set".into(),
                )),
            },
        }
    }
}

/// Passes requests the rule allows; rejects the others with 401 or 403.
pub fn admin_only(access: AdminAccess) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .or(warp::any().map(|| None))
        .unify()
        .and(crate::server::client_addr())
        .and_then(
            move |authorization: Option<String>, remote: Option<SocketAddr>| {
                let verdict = access.check(authorization.as_deref(), remote);
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

    fn addr(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().expect("ip"), 5555))
    }

    #[test]
    fn token_rule() {
        let access = AdminAccess::from_token(Some("s3cret"));
        assert!(access
            .check(Some("Bearer s3cret"), addr("10.0.0.9"))
            .is_ok());
        assert!(matches!(
            access.check(Some("Bearer nope"), None),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(matches!(
            access.check(Some("s3cret"), None),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(matches!(
            access.check(None, addr("127.0.0.1")),
            Err(ApiError::Unauthorized(_))
        ));
    }

    #[test]
    fn loopback_rule() {
        let access = AdminAccess::from_token(None);
        for ip in ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"] {
            assert!(access.check(None, addr(ip)).is_ok(), "{ip}");
        }
        for ip in ["10.0.0.1", "192.168.1.2", "::ffff:10.0.0.1"] {
            assert!(
                matches!(access.check(None, addr(ip)), Err(ApiError::Forbidden(_))),
                "{ip}"
            );
        }
        assert!(access.check(None, None).is_err());
    }

    #[test]
    fn comparison_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
