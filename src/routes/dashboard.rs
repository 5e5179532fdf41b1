//! `GET /cache/dashboard`: a live view of the cache for operators, in a browser.
//!
//! One page and its script, both embedded in the binary (`include_str!`): no CDN, no build
//! step, no external fonts. The page and script are static and hold no data, so they are served
//! to anyone (a browser cannot send a bearer token when it navigates); every number, key and
//! action comes from the admin JSON routes, under the same admin rules as any other client. The
//! page asks for the token and keeps it in `sessionStorage` only (gone when the tab closes).
//!
//! The page's own Content-Security-Policy allows its script and nothing else: no inline script,
//! no other origin. Key names and bodies come from clients, so the script writes them as text,
//! never as HTML.

use warp::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use warp::http::HeaderValue;
use warp::{Filter, Rejection, Reply};

/// The page.
const PAGE: &str = include_str!("dashboard/dashboard.html");
/// Its script.
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
/// Only the page's own script, inline styles (no script) and calls to this origin.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// `GET /cache/dashboard` and `GET /cache/dashboard.js`.
pub fn routes() -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let page_route = warp::path!("cache" / "dashboard")
        .and(warp::get())
        .map(page);
    let script_route = warp::path!("cache" / "dashboard.js")
        .and(warp::get())
        .map(|| asset(SCRIPT, "text/javascript; charset=utf-8"));
    page_route.or(script_route)
}

/// The dashboard page (static; its data comes from the admin routes, which need the token).
#[utoipa::path(get, path = "/cache/dashboard", tag = "cache admin",
    responses((status = 200, description = "The dashboard page", content_type = "text/html")))]
pub fn page() -> warp::reply::Response {
    asset(PAGE, "text/html; charset=utf-8")
}

fn asset(text: &'static str, content_type: &'static str) -> warp::reply::Response {
    let mut response = warp::reply::Response::new(text.into());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(PAGE_POLICY),
    );
    response
}
