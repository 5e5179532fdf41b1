//! Health routes for load balancers and orchestrators.
//!
//! `live` says the process serves HTTP; `ready` says the cache backend answers (the memory
//! backend always does), with `status: degraded` while an `auto` backend is on its memory
//! fallback; `/health` is the original service's route, for monitors set up for it: 200
//! whenever the process serves, with the cache's state in the body (a failing cache degrades
//! the service, it does not stop it). None needs authentication: they reveal nothing but up
//! or down.

use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

use crate::error::ApiError;
use crate::routes::with_cache;
use warp_redis_cache::CacheManager;

/// `GET /health`, `GET /health/live` and `GET /health/ready`.
pub fn routes(
    cache: CacheManager,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    overall(cache.clone()).or(live()).or(ready(cache))
}

/// GET /health
fn overall(cache: CacheManager) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("health")
        .and(warp::get())
        .and(with_cache(cache))
        .then(health)
}

/// The service and its cache: `healthy` when the cache backend answers, `degraded` when it does
/// not (requests are then served without the cache) or while an `auto` backend is on its memory
/// fallback. Always 200 while the process serves.
#[utoipa::path(get, path = "/health", tag = "health",
    responses((status = 200, description = "{\"status\": \"healthy\", \"service\": \"warp-redis-cache\", \"version\": \"0.1.0\", \"cache\": {\"backend\": \"redis\", \"healthy\": true, \"latency_ms\": 0.3}}")))]
pub async fn health(cache: CacheManager) -> warp::reply::Json {
    let ping = cache.ping().await;
    let fallback = cache.on_memory_fallback();
    let status = if ping.is_ok() && !fallback {
        "healthy"
    } else {
        "degraded"
    };
    let mut backend = json!({
        "backend": cache.backend_kind().as_str(),
        "healthy": ping.is_ok(),
        "memory_fallback": fallback,
    });
    match ping {
        Ok(latency) => backend["latency_ms"] = json!(latency.as_secs_f64() * 1000.0),
        Err(err) => backend["error"] = json!(err.to_string()),
    }
    warp::reply::json(&json!({
        "status": status,
        "service": crate::SERVICE_NAME,
        "version": env!("CARGO_PKG_VERSION"),
        "cache": backend,
    }))
}

/// GET /health/live
fn live() -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("health" / "live")
        .and(warp::get())
        .map(liveness)
}

/// The process is up and serving HTTP.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "{\"status\": \"live\"}")))]
pub fn liveness() -> impl Reply {
    warp::reply::json(&json!({"status": "live"}))
}

/// GET /health/ready
fn ready(cache: CacheManager) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("health" / "ready")
        .and(warp::get())
        .and(with_cache(cache))
        .and_then(readiness)
}

/// The cache backend answers (the memory backend always does; a Redis Cluster when every master
/// does, and then each master is listed under `nodes`).
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses((status = 200, description = "{\"status\": \"ready\", \"backend\": \"redis\", \"latency_ms\": 0.3}"),
              (status = 503, body = crate::error::ErrorBody)))]
pub async fn readiness(cache: CacheManager) -> Result<warp::reply::Response, Rejection> {
    let backend = cache.backend_kind().as_str();
    match cache.ping().await {
        Ok(latency) => {
            // On an `auto` backend's memory fallback the instance serves, but its entries miss
            // other instances' writes until Redis answers (see `cache::auto`).
            let status = if cache.on_memory_fallback() {
                "degraded"
            } else {
                "ready"
            };
            let mut body = json!({
                "status": status,
                "backend": backend,
                "latency_ms": latency.as_secs_f64() * 1000.0,
            });
            if let Some(Ok(nodes)) = cache.node_health().await {
                body["nodes"] = json!(nodes);
            }
            Ok(warp::reply::with_status(warp::reply::json(&body), StatusCode::OK).into_response())
        }
        Err(err) => Err(ApiError::Unavailable(format!(
            "{backend} cache backend is not answering: {err}"
        ))
        .into()),
    }
}
