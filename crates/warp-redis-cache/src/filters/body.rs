//! Reading a route's response body for storing, without buffering what will not be stored.
//!
//! A body whose size hint already exceeds the limit is left alone. Otherwise frames are read
//! up to the limit; if the body turns out larger, the bytes read so far and the rest of the
//! stream are sent on as one body, so the client still gets everything and memory stays bounded.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http_body::Body as _;
use http_body_util::{BodyExt, BodyStream};
use warp::http::response::Parts;
use warp::reply::{Reply, Response};

/// A response read for storing, or handed back because its body is larger than the limit.
pub enum Collected {
    /// The head and the whole body, within the limit.
    Whole(Parts, Bytes),
    /// More than the limit: the response to send as it is.
    TooLarge(Response),
}

/// Reads `response`'s body whole when it is at most `limit` bytes.
pub async fn collect_limited(response: Response, limit: usize) -> Result<Collected, warp::Error> {
    if response.body().size_hint().lower() > limit as u64 {
        return Ok(Collected::TooLarge(response));
    }
    let (head, mut body) = response.into_parts();
    let mut read = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        read.extend_from_slice(&data);
        if read.len() > limit {
            let first = futures_util::stream::iter([Ok::<Bytes, warp::Error>(read.freeze())]);
            let rest = BodyStream::new(body)
                .filter_map(|frame| async move { frame.map(|f| f.into_data().ok()).transpose() });
            let joined = warp::reply::stream(first.chain(rest)).into_response();
            return Ok(Collected::TooLarge(Response::from_parts(
                head,
                joined.into_body(),
            )));
        }
    }
    Ok(Collected::Whole(head, read.freeze()))
}
