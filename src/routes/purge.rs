//! `POST /cache/purge`: invalidates keys, tags or whole namespaces, hard or soft, or reports what
//! it would invalidate (`dry_run`). Behind the same auth as the other admin routes.
//!
//! A purge invalidates and never scans: a namespace gets a new generation (hard) or its clock
//! as soft-purge mark (soft), tags are invalidated in O(1) each (see
//! [`warp_redis_cache::stamp`]), keys are deleted (hard) or marked stale in place (soft). The
//! invalidated entries then expire on their own; `POST /cache/clear/{namespace}` is the route
//! that deletes keys to free memory. A dry run changes nothing and counts, reading the
//! namespace's entries (O(entries)), what each target would reach.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::{Filter, Rejection, Reply};

use super::auth::{admin_only, AdminAccess};
use super::with_cache;
use crate::error::ApiError;
use crate::wording::count;
use warp_redis_cache::admin::Invalidation;
use warp_redis_cache::{CacheManager, Namespace, Tag};

/// Largest purge request body accepted.
pub const MAX_PURGE_BODY_BYTES: u64 = 256 * 1024;
/// Most keys, tags or namespaces one purge names, each.
pub const MAX_PURGE_TARGETS: usize = 1000;

/// `POST /cache/purge`.
pub fn routes(
    cache: CacheManager,
    access: AdminAccess,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    warp::path!("cache" / "purge")
        .and(warp::post())
        .and(admin_only(access))
        .and(super::json_body::json_body(MAX_PURGE_BODY_BYTES))
        .and(with_cache(cache))
        .and_then(purge)
}

/// What to purge. `keys` and `tags` belong to `namespace`; `namespaces` are purged whole.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// The namespace `keys` and `tags` belong to (required with either).
    pub namespace: Option<String>,
    /// Entry keys within `namespace`, as `GET /cache/keys` shows them (e.g. `GET:/items/42`).
    #[serde(default)]
    pub keys: Vec<String>,
    /// Tags within `namespace` (e.g. `item:42`): every entry filed under one is purged.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Namespaces purged whole.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Mark stale instead of dead: served under stale-while-revalidate / stale-if-error while
    /// refreshed.
    #[serde(default)]
    pub soft: bool,
    /// Report what would be purged and change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a purge did, or would do.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PurgeResponse {
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// Whether entries were (or would be) marked stale rather than dead.
    pub soft: bool,
    /// Per namespace purged whole.
    pub namespaces: Vec<PurgedNamespace>,
    /// Per tag.
    pub tags: Vec<PurgedTag>,
    /// Per key.
    pub keys: Vec<PurgedKey>,
}

/// A namespace purged whole.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PurgedNamespace {
    /// The namespace.
    pub namespace: String,
    /// Live entries it holds (dry runs only; a purge does not count).
    pub entries: Option<u64>,
}

/// A tag purged.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PurgedTag {
    /// The namespace.
    pub namespace: String,
    /// The tag.
    pub tag: String,
    /// Live entries filed under it (dry runs only).
    pub entries: Option<u64>,
}

/// A key purged.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PurgedKey {
    /// The namespace.
    pub namespace: String,
    /// The key within it.
    pub key: String,
    /// Whether a live entry was there (a dry run) or an entry was there (a purge).
    pub existed: bool,
}

/// The request, validated.
struct Targets {
    namespace: Option<Namespace>,
    keys: Vec<String>,
    tags: Vec<Tag>,
    namespaces: Vec<Namespace>,
}

fn bad(message: String) -> Rejection {
    warp::reject::custom(ApiError::BadRequest(message))
}

fn validate(request: &PurgeRequest) -> Result<Targets, Rejection> {
    if request.keys.is_empty() && request.tags.is_empty() && request.namespaces.is_empty() {
        return Err(bad(
            "name at least one of keys, tags or namespaces to purge".into(),
        ));
    }
    for (field, count) in [
        ("keys", request.keys.len()),
        ("tags", request.tags.len()),
        ("namespaces", request.namespaces.len()),
    ] {
        if count > MAX_PURGE_TARGETS {
            return Err(bad(format!(
                "{field}: at most {MAX_PURGE_TARGETS} per purge, got {count}"
            )));
        }
    }
    let namespace = match &request.namespace {
        Some(raw) => Some(Namespace::new(raw).map_err(|e| bad(format!("namespace: {e}")))?),
        None if !request.keys.is_empty() || !request.tags.is_empty() => {
            return Err(bad("namespace: required with keys or tags".into()))
        }
        None => None,
    };
    if request.keys.iter().any(String::is_empty) {
        return Err(bad("keys: a key must not be empty".into()));
    }
    let tags = request
        .tags
        .iter()
        .map(|raw| Tag::new(raw).map_err(|e| bad(format!("tags: {e}"))))
        .collect::<Result<_, _>>()?;
    let namespaces = request
        .namespaces
        .iter()
        .map(|raw| Namespace::new(raw).map_err(|e| bad(format!("namespaces: {e}"))))
        .collect::<Result<_, _>>()?;
    Ok(Targets {
        namespace,
        keys: request.keys.clone(),
        tags,
        namespaces,
    })
}

fn unavailable(err: warp_redis_cache::CacheError) -> Rejection {
    warp::reject::custom(ApiError::Unavailable(format!("cache backend: {err}")))
}

/// Purges keys, tags or namespaces, or reports what would be purged.
#[utoipa::path(post, path = "/cache/purge", tag = "cache admin", request_body = PurgeRequest,
    responses((status = 200, body = PurgeResponse), (status = 400, body = crate::error::ErrorBody),
              (status = 413, body = crate::error::ErrorBody), (status = 415, body = crate::error::ErrorBody),
              (status = 503, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn purge(request: PurgeRequest, cache: CacheManager) -> Result<impl Reply, Rejection> {
    let targets = validate(&request)?;
    let response = if request.dry_run {
        survey(&cache, &targets, request.soft).await
    } else {
        apply(&cache, &targets, request.soft).await
    }
    .map_err(unavailable)?;
    if !request.dry_run {
        log::info!(
            "admin: purged{} {}, {}, {}",
            if request.soft { " (soft)" } else { "" },
            count(response.namespaces.len() as u64, "namespace"),
            count(response.tags.len() as u64, "tag"),
            count(response.keys.len() as u64, "key")
        );
    }
    Ok(warp::reply::json(&response))
}

async fn apply(
    cache: &CacheManager,
    targets: &Targets,
    soft: bool,
) -> Result<PurgeResponse, warp_redis_cache::CacheError> {
    let how = if soft {
        Invalidation::Soft
    } else {
        Invalidation::Hard
    };
    let mut response = PurgeResponse {
        dry_run: false,
        soft,
        namespaces: Vec::new(),
        tags: Vec::new(),
        keys: Vec::new(),
    };
    for ns in &targets.namespaces {
        match how {
            Invalidation::Hard => cache.bust_namespace(ns).await?,
            Invalidation::Soft => cache.soft_purge_namespace(ns).await?,
        }
        response.namespaces.push(PurgedNamespace {
            namespace: ns.to_string(),
            entries: None,
        });
    }
    if let Some(ns) = &targets.namespace {
        cache.invalidate_tags(ns, &targets.tags, how).await?;
        response
            .tags
            .extend(targets.tags.iter().map(|tag| PurgedTag {
                namespace: ns.to_string(),
                tag: tag.to_string(),
                entries: None,
            }));
        for key in &targets.keys {
            let existed = match how {
                Invalidation::Hard => cache.delete(ns, key).await?,
                Invalidation::Soft => {
                    cache.soft_purge_keys(ns, std::slice::from_ref(key)).await? > 0
                }
            };
            response.keys.push(PurgedKey {
                namespace: ns.to_string(),
                key: key.clone(),
                existed,
            });
        }
    }
    Ok(response)
}

async fn survey(
    cache: &CacheManager,
    targets: &Targets,
    soft: bool,
) -> Result<PurgeResponse, warp_redis_cache::CacheError> {
    let mut response = PurgeResponse {
        dry_run: true,
        soft,
        namespaces: Vec::new(),
        tags: Vec::new(),
        keys: Vec::new(),
    };
    for ns in &targets.namespaces {
        let survey = cache.survey(ns, &[]).await?;
        response.namespaces.push(PurgedNamespace {
            namespace: ns.to_string(),
            entries: Some(survey.live_entries),
        });
    }
    if let Some(ns) = &targets.namespace {
        if !targets.tags.is_empty() {
            let survey = cache.survey(ns, &targets.tags).await?;
            for tag in &targets.tags {
                response.tags.push(PurgedTag {
                    namespace: ns.to_string(),
                    tag: tag.to_string(),
                    entries: survey.by_tag.get(tag.as_str()).copied(),
                });
            }
        }
        for key in &targets.keys {
            response.keys.push(PurgedKey {
                namespace: ns.to_string(),
                key: key.clone(),
                existed: cache.is_live(ns, key).await?,
            });
        }
    }
    Ok(response)
}
