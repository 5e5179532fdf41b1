//! Response headers as text, alike for the service's answers over HTTP (`reqwest`) and a
//! filter's answers in this process (`warp::test`).

use bytes::Bytes;
use warp::http::HeaderMap;

/// A response whose headers a test reads.
pub trait WithHeaders {
    /// Its headers.
    fn header_map(&self) -> &HeaderMap;
}

impl WithHeaders for reqwest::Response {
    fn header_map(&self) -> &HeaderMap {
        self.headers()
    }
}

impl WithHeaders for warp::http::Response<Bytes> {
    fn header_map(&self) -> &HeaderMap {
        self.headers()
    }
}

/// The `X-Cache` header of `response`.
pub fn x_cache(response: &impl WithHeaders) -> String {
    header(response, "x-cache")
}

/// A response header as text ("" when absent).
pub fn header(response: &impl WithHeaders, name: &str) -> String {
    response
        .header_map()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}
