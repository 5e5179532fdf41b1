//! `GET /` (what this service is, and where to look next), `GET /metrics` (Prometheus text)
//! and `GET /openapi.json`.
//!
//! Neither changes data; metrics reveal only counts and timings, so they stay open to
//! scrapers. Put the service behind a network policy if even that is too much.

use std::sync::Arc;

use warp::http::header::CONTENT_TYPE;
use warp::{Filter, Rejection, Reply};

use crate::metrics::Metrics;
use warp_redis_cache::CacheManager;

/// `GET /`, `GET /metrics` and `GET /openapi.json`.
pub fn routes(
    cache: CacheManager,
    metrics: Arc<Metrics>,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let document = Arc::new(crate::openapi::document());
    let metrics_route = warp::path!("metrics")
        .and(warp::get())
        .and(warp::any().map(move || (cache.clone(), Arc::clone(&metrics))))
        .then(
            |(cache, metrics): (CacheManager, Arc<Metrics>)| async move {
                metrics_text(&cache, &metrics).await
            },
        );
    let openapi_route = warp::path!("openapi.json")
        .and(warp::get())
        .map(move || openapi_json(&document));
    let root_route = warp::path::end().and(warp::get()).map(root);
    root_route.or(metrics_route).or(openapi_route)
}

/// The service's name and version, and links to its health, API description, dashboard and
/// metrics: what a newcomer sees first.
#[utoipa::path(get, path = "/", tag = "meta",
    responses((status = 200, description = "{\"service\": \"warp-redis-cache\", \"version\": \"0.1.0\", \"links\": {...}}")))]
pub fn root() -> impl Reply {
    warp::reply::json(&serde_json::json!({
        "service": crate::SERVICE_NAME,
        "version": env!("CARGO_PKG_VERSION"),
        "description": env!("CARGO_PKG_DESCRIPTION"),
        "links": {
            "health": "/health",
            "live": "/health/live",
            "ready": "/health/ready",
            "openapi": "/openapi.json",
            "dashboard": "/cache/dashboard",
            "metrics": "/metrics",
            "stats": "/cache/stats",
        },
    }))
}

/// Prometheus metrics: requests, latency, cache and pool state.
#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
pub async fn metrics(cache: &CacheManager, metrics: &Metrics) -> impl Reply {
    metrics_text(cache, metrics).await
}

async fn metrics_text(cache: &CacheManager, metrics: &Metrics) -> warp::reply::Response {
    let text = metrics.render(cache).await;
    warp::reply::with_header(text, CONTENT_TYPE, "text/plain; version=0.0.4").into_response()
}

/// This API's OpenAPI 3 document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "OpenAPI 3 document", content_type = "application/json")))]
pub fn openapi_json(document: &Arc<String>) -> impl Reply {
    warp::reply::with_header(
        document.as_str().to_string(),
        CONTENT_TYPE,
        "application/json",
    )
}
