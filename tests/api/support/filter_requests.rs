//! Requests to a warp filter in this process (`warp::test`: no server, no socket), for the
//! specifications that put `cached` and `cache_busting` on routes of a small app of their own.
//! The service over HTTP is [`TestApp`](super::TestApp)'s job.

use bytes::Bytes;
use warp::http::Response;
use warp::{Filter, Reply};

/// GET `path` through `route` with extra request `headers`.
pub async fn get<F>(route: &F, path: &str, headers: &[(&str, &str)]) -> Response<Bytes>
where
    F: Filter + 'static,
    F::Extract: Reply + Send,
{
    let mut request = warp::test::request().path(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.reply(route).await
}

/// The body of a filter's answer as text.
pub fn body_text(response: &Response<Bytes>) -> String {
    String::from_utf8_lossy(response.body()).into_owned()
}
