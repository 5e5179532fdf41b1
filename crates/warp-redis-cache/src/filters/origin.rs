//! Running the wrapped route without a client waiting on it: background revalidation of
//! stale entries, and origin calls bounded by a timeout for stale-if-error.
//!
//! The route is turned into a service (`warp::service`) and called with a GET built from the
//! original request, on a task of its own (warp does not allow one route to run inside
//! another's poll).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Empty;
use tower_service::Service;
use warp::http::header;
use warp::http::{Method, Request};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use super::request::RequestParts;

/// Calls the route for a request; `None` when the call itself failed (the task panicked).
pub type Origin = Arc<
    dyn Fn(Request<Empty<Bytes>>) -> Pin<Box<dyn Future<Output = Option<Response>> + Send>>
        + Send
        + Sync,
>;

/// An [`Origin`] for `route`.
pub fn detached<F, R>(route: F) -> Origin
where
    F: Filter<Extract = (R,), Error = Rejection> + Clone + Send + Sync + 'static,
    R: Reply,
{
    Arc::new(move |request| {
        let route = route.clone();
        Box::pin(async move {
            let mut call = AbortOnDrop(tokio::spawn(async move {
                let mut service = warp::service(route);
                match service.call(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                }
            }));
            (&mut call.0).await.ok()
        })
    })
}

/// A spawned origin call that is cancelled when whoever waits for it gives up (a timeout), so
/// a hanging origin does not collect one stuck task per request.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A GET for the same resource as `request`, without its conditional and range headers (the
/// origin must answer with the whole representation: a client's `Range` or `If-Match` would
/// otherwise turn the answer meant for every waiting request into a 206 or 412).
pub fn origin_request(request: &RequestParts) -> Request<Empty<Bytes>> {
    let uri = if request.query().is_empty() {
        request.path().to_string()
    } else {
        format!("{}?{}", request.path(), request.query())
    };
    let mut built = Request::new(Empty::new());
    *built.method_mut() = Method::GET;
    if let Ok(uri) = uri.parse() {
        *built.uri_mut() = uri;
    }
    let headers = built.headers_mut();
    for (name, value) in request.headers() {
        if ![
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_MATCH,
            header::IF_UNMODIFIED_SINCE,
            header::IF_RANGE,
            header::RANGE,
            header::CACHE_CONTROL,
        ]
        .contains(name)
        {
            headers.append(name.clone(), value.clone());
        }
    }
    built
}

/// [`origin_request`] made conditional on a stored response's validators (`If-None-Match` from
/// its `ETag`, `If-Modified-Since` from its `Last-Modified`): the origin answers 304 when it
/// still holds (RFC 9111 section 4.3.1).
pub fn conditional_request(
    request: &RequestParts,
    stored: &warp::http::HeaderMap,
) -> Request<Empty<Bytes>> {
    let mut built = origin_request(request);
    for (name, value) in super::http::validators(stored) {
        built.headers_mut().insert(name, value);
    }
    built
}
