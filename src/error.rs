//! HTTP-level errors and the single mapping from rejections to JSON error responses.
//!
//! Every error a client sees has the body `{"error": {"code": "...", "message": "..."}}` and
//! the status that fits. Handlers return [`ApiError`] as a rejection; [`handle_rejection`] (used
//! with warp's `recover`) is the only code that formats error JSON. Internal errors are logged
//! in full and answered without internals.

use std::convert::Infallible;

use serde::Serialize;
use warp::http::StatusCode;
use warp::reject::Rejection;
use warp::Reply;

/// An error a handler reports to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// 400: the request body is not JSON of the expected shape.
    #[error("{0}")]
    MalformedBody(String),
    /// 408: the request body did not arrive in time.
    #[error("{0}")]
    RequestTimeout(String),
    /// 415: the request body is not declared as the type the route reads.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 401: credentials are missing or wrong; answered with `WWW-Authenticate: Bearer`.
    #[error("{0}")]
    Unauthorized(String),
    /// 403: this client may not use the route at all.
    #[error("{0}")]
    Forbidden(String),
    /// 404: the resource does not exist.
    #[error("{0}")]
    NotFound(String),
    /// 422: the request is well-formed but its content is invalid.
    #[error("{0}")]
    Validation(String),
    /// 503: a dependency the request needs is unavailable.
    #[error("{0}")]
    Unavailable(String),
    /// 500: a bug or an unexpected failure; the message is logged, not sent.
    #[error("{0}")]
    Internal(String),
}

impl warp::reject::Reject for ApiError {}

impl ApiError {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::MalformedBody(_) => StatusCode::BAD_REQUEST,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad_request",
            ApiError::MalformedBody(_) => "malformed_body",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Validation(_) => "validation_failed",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }
}

/// The body of every error response.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// What went wrong.
    pub error: ErrorDetail<'a>,
}

/// An error's machine-readable code and human-readable message.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail<'a> {
    /// Stable code, e.g. `not_found`, `validation_failed`, `unauthorized`.
    pub code: &'a str,
    /// What to do about it.
    pub message: &'a str,
}

/// A JSON error response.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> warp::reply::Response {
    let body = ErrorBody {
        error: ErrorDetail { code, message },
    };
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

impl Reply for ApiError {
    fn into_response(self) -> warp::reply::Response {
        if let ApiError::Internal(detail) = &self {
            log::error!("internal error: {detail}");
            return error_response(self.status(), self.code(), "internal server error");
        }
        let mut response = error_response(self.status(), self.code(), &self.to_string());
        if let ApiError::Unauthorized(_) = &self {
            response.headers_mut().insert(
                warp::http::header::WWW_AUTHENTICATE,
                warp::http::HeaderValue::from_static("Bearer realm=\"cache-admin\""),
            );
        }
        response
    }
}

/// Turns any rejection into its JSON error response. Use as `routes.recover(handle_rejection)`.
pub async fn handle_rejection(rejection: Rejection) -> Result<warp::reply::Response, Infallible> {
    Ok(rejection_response(&rejection))
}

fn rejection_response(rejection: &Rejection) -> warp::reply::Response {
    use warp::reject::{
        InvalidHeader, InvalidQuery, LengthRequired, MethodNotAllowed, MissingHeader,
        PayloadTooLarge, UnsupportedMediaType,
    };
    if rejection.is_not_found() {
        return error_response(StatusCode::NOT_FOUND, "not_found", "no such route");
    }
    if let Some(err) = rejection.find::<ApiError>() {
        return err.clone().into_response();
    }
    if let Some(failure) = rejection.find::<warp_redis_cache::FilterFailure>() {
        return ApiError::Internal(failure.message().to_string()).into_response();
    }
    if let Some(err) = rejection.find::<warp::filters::body::BodyDeserializeError>() {
        let message = format!("request body is not valid JSON of the expected shape: {err}");
        return error_response(StatusCode::BAD_REQUEST, "malformed_body", &message);
    }
    if rejection.find::<PayloadTooLarge>().is_some() {
        let message = "request body is larger than the limit";
        return error_response(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message);
    }
    if rejection.find::<LengthRequired>().is_some() {
        let message = "a Content-Length header is required";
        return error_response(StatusCode::LENGTH_REQUIRED, "length_required", message);
    }
    if rejection.find::<UnsupportedMediaType>().is_some() {
        let message = "request body must be application/json";
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        );
    }
    if let Some(err) = rejection.find::<InvalidQuery>() {
        let message = format!("query string is invalid: {err}");
        return error_response(StatusCode::BAD_REQUEST, "invalid_query", &message);
    }
    if let Some(err) = rejection.find::<MissingHeader>() {
        return error_response(StatusCode::BAD_REQUEST, "missing_header", &err.to_string());
    }
    if let Some(err) = rejection.find::<InvalidHeader>() {
        return error_response(StatusCode::BAD_REQUEST, "invalid_header", &err.to_string());
    }
    if rejection.find::<MethodNotAllowed>().is_some() {
        let message = "method not allowed on this route";
        return error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            message,
        );
    }
    log::error!("unhandled rejection: {rejection:?}");
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal_error",
        "internal server error",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::Filter;

    async fn error_of(
        route: impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone + Send + Sync + 'static,
        request: warp::test::RequestBuilder,
    ) -> (StatusCode, serde_json::Value) {
        let response = request.reply(&route.recover(handle_rejection)).await;
        let body = serde_json::from_slice(response.body()).expect("JSON error body");
        (response.status(), body)
    }

    #[tokio::test]
    async fn unknown_route_and_wrong_method_are_404_and_405() {
        let route = || warp::path("x").and(warp::get()).map(|| "x");
        let (status, body) = error_of(route(), warp::test::request().path("/y")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "not_found");
        let (status, body) =
            error_of(route(), warp::test::request().method("POST").path("/x")).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["error"]["code"], "method_not_allowed");
    }

    #[tokio::test]
    async fn bad_bodies_are_400_and_413() {
        let route = || {
            warp::body::content_length_limit(16)
                .and(warp::body::json())
                .map(|value: serde_json::Value| warp::reply::json(&value))
        };
        let malformed = warp::test::request().method("POST").body("{nope");
        let (status, body) = error_of(route(), malformed).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "malformed_body");
        let oversized = warp::test::request().method("POST").body("x".repeat(17));
        let (status, _) = error_of(route(), oversized).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[tokio::test]
    async fn api_errors_keep_their_status_and_internal_errors_hide_details() {
        let failing = |err: ApiError| {
            warp::any().and_then(move || {
                let err = err.clone();
                async move { Err::<String, Rejection>(warp::reject::custom(err)) }
            })
        };
        let invalid = ApiError::Validation("name must not be empty".into());
        let (status, body) = error_of(failing(invalid), warp::test::request()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["error"]["message"], "name must not be empty");
        let internal = ApiError::Internal("disk on fire at /var/secret".into());
        let (status, body) = error_of(failing(internal), warp::test::request()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["message"], "internal server error");
    }
}
