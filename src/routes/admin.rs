//! The cache admin filter tree: statistics, ping, clearing, key listing and entry inspection.
//!
//! Every route sits behind [`admin_only`] (bearer token, or loopback only), placed after the
//! path and method filters so a wrong path is still a 404. Clearing deletes only keys under the
//! app's prefix (SCAN + UNLINK, never FLUSHDB, FLUSHALL or KEYS).

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warp::filters::path::Tail;
use warp::{Filter, Rejection, Reply};

use super::auth::{admin_only, AdminAccess};
use super::with_cache;
use crate::error::ApiError;
use crate::wording::count;
use warp_redis_cache::admin::{CircuitState, KeyTtl, NodeHealth, StatsSnapshot};
use warp_redis_cache::{CacheManager, Namespace};

/// Most keys one listing page returns.
pub const MAX_KEYS_PER_PAGE: usize = 1000;
const DEFAULT_KEYS_PER_PAGE: usize = 100;

/// All admin routes under `/cache`.
pub fn routes(
    cache: CacheManager,
    access: AdminAccess,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let admin = move || admin_only(access.clone()).and(with_cache(cache.clone()));
    let stats_route = warp::path!("cache" / "stats")
        .and(warp::get())
        .and(admin())
        .and_then(stats);
    let reset_route = warp::path!("cache" / "stats" / "reset")
        .and(warp::post())
        .and(admin())
        .and_then(reset_stats);
    let ping_route = warp::path!("cache" / "ping")
        .and(warp::get())
        .and(admin())
        .and_then(ping);
    let clear_all_route = warp::path!("cache" / "clear")
        .and(warp::delete())
        .and(admin())
        .and_then(clear_all);
    let clear_namespace_route = warp::path!("cache" / "clear" / String)
        .and(warp::post())
        .and(admin())
        .and_then(clear_namespace);
    let keys_route = warp::path!("cache" / "keys")
        .and(warp::get())
        .and(admin())
        .and(warp::query::<KeysQuery>())
        .and_then(list_keys);
    let entry_path = || warp::path!("cache" / "entries" / String / ..).and(warp::path::tail());
    let get_entry_route = entry_path()
        .and(warp::get())
        .and(admin())
        .and_then(get_entry);
    let delete_entry_route = entry_path()
        .and(warp::delete())
        .and(admin())
        .and_then(delete_entry);
    stats_route
        .or(reset_route)
        .or(ping_route)
        .or(clear_all_route)
        .or(clear_namespace_route)
        .or(keys_route)
        .or(get_entry_route)
        .or(delete_entry_route)
}

/// Statistics with the backend's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatsResponse {
    /// The backend in use and whether it answers.
    pub backend: BackendStatus,
    /// The in-process L1 tier, when one is configured.
    pub l1: Option<L1Report>,
    /// Counters, in total and per namespace.
    #[serde(flatten)]
    pub stats: StatsSnapshot,
}

/// The L1 tier's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct L1Report {
    /// Whether it is in use: invalidations are being received.
    pub live: bool,
    /// Entries held.
    pub entries: u64,
    /// Bytes held (approximate).
    pub bytes: u64,
}

/// The backend in use and its health.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackendStatus {
    /// `redis` or `memory`.
    pub kind: &'static str,
    /// Whether it answered a PING just now.
    pub healthy: bool,
    /// PING round trip, when it answered.
    pub latency_ms: Option<f64>,
    /// Why it did not answer.
    pub error: Option<String>,
    /// The circuit breaker (Redis backend only).
    pub circuit: Option<CircuitReport>,
    /// Namespaces whose invalidation failed and is being retried in the background; while
    /// any is pending, this instance reads none of them from the cache.
    pub pending_busts: u64,
    /// How often Redis turned out to be another server process than our data was checked
    /// against (a restart from disk, a promoted replica); each time, every namespace record on
    /// it was dropped before it was used.
    pub server_changes: u64,
    /// Each master's PING (Redis Cluster only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<NodeHealth>>,
}

/// The circuit breaker's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct CircuitReport {
    /// `closed`, `open` or `half_open`.
    pub state: CircuitState,
    /// How many times it has opened since startup.
    pub opened_total: u64,
}

/// A PING answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct PingResponse {
    /// `redis` or `memory`.
    pub backend: &'static str,
    /// Round trip.
    pub latency_ms: f64,
}

/// What a clear deleted.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClearResponse {
    /// The namespace cleared, or none for everything under the prefix.
    pub namespace: Option<String>,
    /// Keys deleted.
    pub deleted: u64,
}

/// `GET /cache/keys` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct KeysQuery {
    /// Only keys of this namespace.
    pub namespace: Option<String>,
    /// Only keys (within `namespace`, which it needs) starting with this text, e.g. `GET:/items/1`.
    pub prefix: Option<String>,
    /// Where to continue: the `next_cursor` of the previous page (0 or absent to start).
    pub cursor: Option<u64>,
    /// Keys per page, 1 to 1000 (default 100; a hint: pages may be shorter or longer, but hold
    /// at least one entry unless `next_cursor` is 0).
    pub limit: Option<usize>,
}

/// One page of keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyListResponse {
    /// Entries with their TTL and size (never generation, tag or lock records).
    pub keys: Vec<KeyView>,
    /// Pass as `cursor` for the next page; 0 when the listing is complete.
    pub next_cursor: u64,
}

/// A key with its lifetime and size.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    /// The full key.
    pub key: String,
    /// Its namespace, when it is an entry of one.
    pub namespace: Option<String>,
    /// The key within the namespace.
    pub entry_key: Option<String>,
    /// Milliseconds left; null when it never expires.
    pub ttl_ms: Option<u64>,
    /// Bytes stored.
    pub size_bytes: u64,
}

/// One stored entry, decoded for reading.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryResponse {
    /// The full key.
    pub key: String,
    /// Milliseconds left; null when it never expires.
    pub ttl_ms: Option<u64>,
    /// Bytes stored.
    pub stored_bytes: usize,
    /// `gzip` or `identity`.
    pub encoding: &'static str,
    /// Whether it may be served at all: false once invalidated (null: stored without a
    /// generation).
    pub live: Option<bool>,
    /// `valid`, `soft_purged` (served only as stale) or `dead` (null: stored without a
    /// generation).
    pub validity: Option<&'static str>,
    /// The tags the entry is filed under.
    pub tags: Vec<String>,
    /// Stored response metadata (status, headers, ETag, times).
    #[schema(value_type = Option<Object>)]
    pub meta: Option<serde_json::Value>,
    /// The body as text, when it is UTF-8 (at most 64 KiB).
    pub body: Option<String>,
    /// Why the value could not be decoded.
    pub decode_error: Option<String>,
}

/// Whether an entry was deleted.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeletedResponse {
    /// True when the entry existed.
    pub deleted: bool,
}

fn ttl_ms(ttl: KeyTtl) -> Option<u64> {
    match ttl {
        KeyTtl::ExpiresIn(left) => Some(left.as_millis() as u64),
        KeyTtl::Persistent | KeyTtl::Missing => None,
    }
}

fn namespace(raw: &str) -> Result<Namespace, Rejection> {
    Namespace::new(raw).map_err(|e| warp::reject::custom(ApiError::BadRequest(e.to_string())))
}

fn unavailable(err: warp_redis_cache::CacheError) -> Rejection {
    warp::reject::custom(ApiError::Unavailable(format!("cache backend: {err}")))
}

/// Cache statistics, per namespace, with the backend's health.
#[utoipa::path(get, path = "/cache/stats", tag = "cache admin",
    responses((status = 200, body = StatsResponse), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn stats(cache: CacheManager) -> Result<impl Reply, Rejection> {
    let ping = cache.ping().await;
    let circuit = cache.circuit().map(|(state, opened_total)| CircuitReport {
        state,
        opened_total,
    });
    let backend = BackendStatus {
        kind: cache.backend_kind().as_str(),
        healthy: ping.is_ok(),
        latency_ms: ping.as_ref().ok().map(|l| l.as_secs_f64() * 1000.0),
        error: ping.err().map(|e| e.to_string()),
        circuit,
        pending_busts: cache.pending_bust_count() as u64,
        server_changes: cache.server_changes(),
        nodes: cache.node_health().await.and_then(Result::ok),
    };
    let stats = cache.stats().snapshot();
    let l1 = cache.l1_usage().map(|l1| L1Report {
        live: l1.live,
        entries: l1.entries,
        bytes: l1.bytes,
    });
    Ok(warp::reply::json(&StatsResponse { backend, l1, stats }))
}

/// Sets every statistics counter to zero.
#[utoipa::path(post, path = "/cache/stats/reset", tag = "cache admin",
    responses((status = 200, body = StatsResponse), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn reset_stats(cache: CacheManager) -> Result<impl Reply, Rejection> {
    cache.stats().reset();
    stats(cache).await
}

/// One round trip to the cache backend.
#[utoipa::path(get, path = "/cache/ping", tag = "cache admin",
    responses((status = 200, body = PingResponse), (status = 503, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn ping(cache: CacheManager) -> Result<impl Reply, Rejection> {
    let latency = cache.ping().await.map_err(unavailable)?;
    Ok(warp::reply::json(&PingResponse {
        backend: cache.backend_kind().as_str(),
        latency_ms: latency.as_secs_f64() * 1000.0,
    }))
}

/// Deletes every key under the app's prefix, and nothing else.
#[utoipa::path(delete, path = "/cache/clear", tag = "cache admin",
    responses((status = 200, body = ClearResponse), (status = 503, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn clear_all(cache: CacheManager) -> Result<impl Reply, Rejection> {
    let deleted = cache.clear_all().await.map_err(unavailable)?;
    log::info!("admin: cleared {} under the prefix", count(deleted, "key"));
    Ok(warp::reply::json(&ClearResponse {
        namespace: None,
        deleted,
    }))
}

/// Deletes every key of one namespace (and invalidates entries being stored concurrently).
#[utoipa::path(post, path = "/cache/clear/{namespace}", tag = "cache admin",
    params(("namespace" = String, Path, description = "letters, digits, _ . -; 1 to 64 characters")),
    responses((status = 200, body = ClearResponse), (status = 400, body = crate::error::ErrorBody),
              (status = 503, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn clear_namespace(raw: String, cache: CacheManager) -> Result<impl Reply, Rejection> {
    let ns = namespace(&raw)?;
    let deleted = cache.clear_namespace(&ns).await.map_err(unavailable)?;
    log::info!("admin: cleared {} of namespace {ns}", count(deleted, "key"));
    Ok(warp::reply::json(&ClearResponse {
        namespace: Some(ns.to_string()),
        deleted,
    }))
}

/// Lists keys under the prefix (or one namespace) with TTL and size, a page at a time.
#[utoipa::path(get, path = "/cache/keys", tag = "cache admin", params(KeysQuery),
    responses((status = 200, body = KeyListResponse), (status = 400, body = crate::error::ErrorBody),
              (status = 503, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_keys(cache: CacheManager, query: KeysQuery) -> Result<impl Reply, Rejection> {
    let ns = query.namespace.as_deref().map(namespace).transpose()?;
    let limit = query.limit.unwrap_or(DEFAULT_KEYS_PER_PAGE);
    if !(1..=MAX_KEYS_PER_PAGE).contains(&limit) {
        let message = format!("limit must be from 1 to {MAX_KEYS_PER_PAGE}");
        return Err(warp::reject::custom(ApiError::BadRequest(message)));
    }
    if query.prefix.is_some() && ns.is_none() {
        let message = "prefix needs a namespace".to_string();
        return Err(warp::reject::custom(ApiError::BadRequest(message)));
    }
    let page = cache
        .list_keys(
            ns.as_ref(),
            query.prefix.as_deref(),
            query.cursor.unwrap_or(0),
            limit,
        )
        .await
        .map_err(unavailable)?;
    let keys = page
        .keys
        .into_iter()
        .map(|info| {
            let split = cache.layout().split(&info.key);
            KeyView {
                namespace: split.map(|(ns, _)| ns.to_string()),
                entry_key: split.map(|(_, key)| key.to_string()),
                ttl_ms: ttl_ms(info.ttl),
                size_bytes: info.size,
                key: info.key,
            }
        })
        .collect();
    Ok(warp::reply::json(&KeyListResponse {
        keys,
        next_cursor: page.next_cursor,
    }))
}

/// Shows one entry: lifetime, size, encoding, whether it is live, metadata and body.
#[utoipa::path(get, path = "/cache/entries/{namespace}/{key}", tag = "cache admin",
    params(("namespace" = String, Path, description = "the entry's namespace"),
           ("key" = String, Path, description = "the key within the namespace, percent-encoded, e.g. GET:%2Fitems%2F1")),
    responses((status = 200, body = EntryResponse), (status = 404, body = crate::error::ErrorBody),
              (status = 400, body = crate::error::ErrorBody), (status = 503, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_entry(
    raw: String,
    key: Tail,
    cache: CacheManager,
) -> Result<impl Reply, Rejection> {
    let ns = namespace(&raw)?;
    let key = entry_key(&key)?;
    let view = cache
        .inspect(&ns, &key)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| {
            warp::reject::custom(ApiError::NotFound(format!("no entry {key:?} in {ns}")))
        })?;
    Ok(warp::reply::json(&EntryResponse {
        key: view.key,
        ttl_ms: ttl_ms(view.ttl),
        stored_bytes: view.stored_bytes,
        encoding: view.encoding,
        live: view.validity.map(|validity| validity != "dead"),
        validity: view.validity,
        tags: view.tags,
        meta: view.meta,
        body: view.body,
        decode_error: view.decode_error,
    }))
}

/// Deletes one entry.
#[utoipa::path(delete, path = "/cache/entries/{namespace}/{key}", tag = "cache admin",
    params(("namespace" = String, Path, description = "the entry's namespace"),
           ("key" = String, Path, description = "the key within the namespace, percent-encoded")),
    responses((status = 200, body = DeletedResponse), (status = 400, body = crate::error::ErrorBody),
              (status = 503, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_entry(
    raw: String,
    key: Tail,
    cache: CacheManager,
) -> Result<impl Reply, Rejection> {
    let ns = namespace(&raw)?;
    let key = entry_key(&key)?;
    let deleted = cache.delete(&ns, &key).await.map_err(unavailable)?;
    Ok(warp::reply::json(&DeletedResponse { deleted }))
}

/// The rest of the path, percent-decoded: `GET:%2Fitems%2F1` and `GET:/items/1` are the same.
fn entry_key(tail: &Tail) -> Result<String, Rejection> {
    let decoded = percent_encoding::percent_decode_str(tail.as_str())
        .decode_utf8()
        .map_err(|_| warp::reject::custom(ApiError::BadRequest("the key is not UTF-8".into())))?;
    if decoded.is_empty() {
        return Err(warp::reject::custom(ApiError::BadRequest(
            "the key is missing".into(),
        )));
    }
    Ok(decoded.into_owned())
}
