//! Reading a JSON request body, the one way every route does it.
//!
//! In order: `Content-Type: application/json` is required (415 when it is missing or another
//! type: warp's own `body::json` accepts a body with no type at all); the declared length must
//! be within the limit (413, or 411 without one); the body must arrive within
//! `app.body_read_timeout_ms` (408, see [`crate::server::body_timeout`]); and it must parse
//! into `T` (400 `malformed_body`).

use bytes::{Buf, BytesMut};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use warp::http::HeaderMap;
use warp::{Filter, Rejection};

use crate::error::ApiError;
use crate::server::body_timeout::is_body_read_timeout;

/// A body of at most `max_bytes` bytes, declared and parsed as JSON into `T`.
pub fn json_body<T: DeserializeOwned + Send>(
    max_bytes: u64,
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    json_content_type()
        .and(warp::body::content_length_limit(max_bytes))
        .and(warp::body::stream())
        .and_then(|stream| async move {
            let bytes = read_all(stream).await?;
            serde_json::from_slice::<T>(&bytes).map_err(|err| {
                warp::reject::custom(ApiError::MalformedBody(format!(
                    "request body is not valid JSON of the expected shape: {err}"
                )))
            })
        })
}

/// Passes requests that declare `Content-Type: application/json` (parameters such as
/// `charset=utf-8` allowed); rejects the others with 415.
pub fn json_content_type() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::headers_cloned()
        .and_then(|headers: HeaderMap| async move {
            check_json_content_type(&headers).map_err(warp::reject::custom)
        })
        .untuple_one()
}

/// `Ok` when `headers` declare a JSON body.
pub fn check_json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(warp::http::header::CONTENT_TYPE) else {
        return Err(ApiError::UnsupportedMediaType(
            "a request body must be sent with Content-Type: application/json; none was given"
                .into(),
        ));
    };
    let essence = value
        .to_str()
        .ok()
        .and_then(|text| text.split(';').next())
        .map(str::trim);
    match essence {
        Some(essence) if essence.eq_ignore_ascii_case("application/json") => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType(format!(
            "a request body must be application/json, not {:?}",
            String::from_utf8_lossy(value.as_bytes())
        ))),
    }
}

async fn read_all<S, B>(stream: S) -> Result<BytesMut, Rejection>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut stream = std::pin::pin!(stream);
    let mut bytes = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|err| {
            let rejection = if is_body_read_timeout(&err) {
                ApiError::RequestTimeout(err.to_string())
            } else {
                ApiError::BadRequest(format!("the request body could not be read: {err}"))
            };
            warp::reject::custom(rejection)
        })?;
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            bytes.extend_from_slice(piece);
            let read = piece.len();
            chunk.advance(read);
        }
    }
    Ok(bytes)
}
