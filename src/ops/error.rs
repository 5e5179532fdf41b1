//! Errors of the operator client, worded for the operator who reads them.
//!
//! Each says what was asked (method and path), what came back (status and the service's own
//! message) or why nothing did (the innermost cause, e.g. `Connection refused`), and, for 401
//! and 403, what to check. [`RequestError::is_unreachable`] lets a batch stop early.

use reqwest::{Method, StatusCode};
use serde::Deserialize;

/// A base URL the client cannot use.
#[derive(Debug, thiserror::Error)]
#[error("base URL {url:?}: {reason}")]
pub struct BadBaseUrl {
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Why a request failed, after any retries.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// No answer: nothing listens there, the network is down, or the service is too slow.
    #[error("cannot reach the service at {base}: {detail} ({attempts} {})",
        if *.attempts == 1 { "attempt" } else { "attempts" })]
    Unreachable {
        /// The base URL.
        base: String,
        /// The innermost cause, e.g. `Connection refused (os error 111)`.
        detail: String,
        /// Attempts made.
        attempts: u32,
    },
    /// The service answered with an error status.
    #[error("{method} {path} answered {status}: {message}{}", status_hint(*.status))]
    Status {
        /// The request's method.
        method: Method,
        /// The request's path and query.
        path: String,
        /// The status of the last answer.
        status: StatusCode,
        /// The service's error message.
        message: String,
    },
    /// A success status with a body the client does not understand.
    #[error("{method} {path}: unexpected answer: {detail}")]
    Unexpected {
        /// The request's method.
        method: Method,
        /// The request's path and query.
        path: String,
        /// What did not parse.
        detail: String,
    },
}

impl RequestError {
    /// Whether the service could not be reached at all (later requests would fail the same way).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, RequestError::Unreachable { .. })
    }

    /// An error answer, with the service's `{"error": {"message": ...}}` or the start of
    /// whatever else it sent.
    pub fn status(method: &Method, path: &str, status: StatusCode, body: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct ErrorBody {
            error: ErrorDetail,
        }
        #[derive(Deserialize)]
        struct ErrorDetail {
            message: String,
        }
        let message = match serde_json::from_slice::<ErrorBody>(body) {
            Ok(body) => body.error.message,
            Err(_) => String::from_utf8_lossy(body).chars().take(200).collect(),
        };
        RequestError::Status {
            method: method.clone(),
            path: path.to_string(),
            status,
            message,
        }
    }

    /// No answer from `base` after `attempts`; the innermost cause is the one that says what
    /// happened (`Connection refused` rather than `error sending request`).
    pub fn unreachable(base: &str, err: &reqwest::Error, attempts: u32) -> Self {
        let detail = if err.is_timeout() {
            "timed out waiting for an answer".to_string()
        } else {
            let mut cause: &dyn std::error::Error = err;
            while let Some(source) = cause.source() {
                cause = source;
            }
            cause.to_string()
        };
        RequestError::Unreachable {
            base: base.to_string(),
            detail,
            attempts,
        }
    }
}

fn status_hint(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => " (check the admin token: --token or ADMIN__TOKEN)",
        StatusCode::FORBIDDEN => {
            " (the service has no admin.token and answers admin calls from its own host only)"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_failures_say_what_to_check() {
        let body =
            br#"{"error": {"code": "unauthorized", "message": "the bearer token is not valid"}}"#;
        let err = RequestError::status(
            &Method::POST,
            "/cache/clear/items",
            StatusCode::UNAUTHORIZED,
            body,
        );
        assert_eq!(
            err.to_string(),
            "POST /cache/clear/items answered 401 Unauthorized: the bearer token is not valid \
             (check the admin token: --token or ADMIN__TOKEN)"
        );
    }

    #[test]
    fn a_body_that_is_not_the_error_json_is_quoted_briefly() {
        let body = "<html>".repeat(100);
        let err = RequestError::status(
            &Method::GET,
            "/items",
            StatusCode::BAD_GATEWAY,
            body.as_bytes(),
        );
        let RequestError::Status { message, .. } = &err else {
            panic!("a status error");
        };
        assert_eq!(message.chars().count(), 200);
        assert!(!err.is_unreachable());
    }
}
