//! The item API: the service's own resource, read through the cache and busting it on writes.
//!
//! `GET /items/{id}` and `GET /items` are wrapped in [`cached`] (namespace `items`); `POST`,
//! `PUT`, `PATCH` and `DELETE` are wrapped in [`cache_busting`], which gives the namespace a
//! new generation after each successful write, before the response leaves: a GET that starts
//! after a write returned never sees the old value.

use warp::http::{header, StatusCode};
use warp::{Filter, Rejection, Reply};

use crate::cache::{CacheManager, Namespace};
use crate::error::ApiError;
use crate::filters::{cache_busting, cached, BustPolicy, CachePolicy};
use crate::items::{ItemPatch, ItemStore, ListQuery, NewItem, StoreError, ValidationError};

/// The namespace item responses are cached in.
pub const ITEMS_NAMESPACE: &str = "items";

/// All item routes, reads cached and writes busting.
pub fn routes(
    store: ItemStore,
    cache: CacheManager,
    max_body_bytes: u64,
) -> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone {
    let namespace = Namespace::new(ITEMS_NAMESPACE).expect("a valid constant namespace");
    let reads = get_item(store.clone())
        .or(list_items(store.clone()))
        .unify();
    let writes = create_item(store.clone(), max_body_bytes)
        .or(replace_item(store.clone(), max_body_bytes))
        .unify()
        .or(patch_item(store.clone(), max_body_bytes))
        .unify()
        .or(delete_item(store))
        .unify();
    cached(cache.clone(), CachePolicy::new(namespace.clone()), reads).or(cache_busting(
        cache,
        BustPolicy::namespace(namespace),
        writes,
    ))
}

type ItemReply = warp::reply::Response;

fn with_store(
    store: ItemStore,
) -> impl Filter<Extract = (ItemStore,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || store.clone())
}

fn json_body<T: serde::de::DeserializeOwned + Send>(
    max_body_bytes: u64,
) -> impl Filter<Extract = (T,), Error = Rejection> + Clone {
    warp::body::content_length_limit(max_body_bytes).and(warp::body::json())
}

fn get_or_head() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::get().or(warp::head()).unify()
}

/// GET /items/{id}
fn get_item(store: ItemStore) -> impl Filter<Extract = (ItemReply,), Error = Rejection> + Clone {
    warp::path!("items" / String)
        .and(get_or_head())
        .and(with_store(store))
        .and_then(|id: String, store: ItemStore| async move {
            let id = parse_id(&id)?;
            let item = store
                .get(id)
                .await
                .map_err(internal)?
                .ok_or_else(|| not_found(id))?;
            Ok::<_, Rejection>(warp::reply::json(&item).into_response())
        })
}

/// GET /items?limit=20&offset=0&q=lamp&tag=garden
fn list_items(store: ItemStore) -> impl Filter<Extract = (ItemReply,), Error = Rejection> + Clone {
    warp::path!("items")
        .and(get_or_head())
        .and(warp::query::<Vec<(String, String)>>())
        .and(with_store(store))
        .and_then(
            |pairs: Vec<(String, String)>, store: ItemStore| async move {
                let query = ListQuery::from_pairs(&pairs).map_err(|e| bad_request(&e))?;
                let page = store.list(query).await.map_err(internal)?;
                Ok::<_, Rejection>(warp::reply::json(&page).into_response())
            },
        )
}

/// POST /items  (201 with Location)
fn create_item(
    store: ItemStore,
    max_body_bytes: u64,
) -> impl Filter<Extract = (ItemReply,), Error = Rejection> + Clone {
    warp::path!("items")
        .and(warp::post())
        .and(json_body::<NewItem>(max_body_bytes))
        .and(with_store(store))
        .and_then(|new: NewItem, store: ItemStore| async move {
            new.validate().map_err(invalid)?;
            let item = store.create(new).await.map_err(internal)?;
            let location = format!("/items/{}", item.id);
            let reply = warp::reply::with_status(warp::reply::json(&item), StatusCode::CREATED);
            Ok::<_, Rejection>(
                warp::reply::with_header(reply, header::LOCATION, location).into_response(),
            )
        })
}

/// PUT /items/{id}  (full replacement)
fn replace_item(
    store: ItemStore,
    max_body_bytes: u64,
) -> impl Filter<Extract = (ItemReply,), Error = Rejection> + Clone {
    warp::path!("items" / String)
        .and(warp::put())
        .and(json_body::<NewItem>(max_body_bytes))
        .and(with_store(store))
        .and_then(|id: String, new: NewItem, store: ItemStore| async move {
            let id = parse_id(&id)?;
            new.validate().map_err(invalid)?;
            let item = store
                .replace(id, new)
                .await
                .map_err(internal)?
                .ok_or_else(|| not_found(id))?;
            Ok::<_, Rejection>(warp::reply::json(&item).into_response())
        })
}

/// PATCH /items/{id}  (the fields given)
fn patch_item(
    store: ItemStore,
    max_body_bytes: u64,
) -> impl Filter<Extract = (ItemReply,), Error = Rejection> + Clone {
    warp::path!("items" / String)
        .and(warp::patch())
        .and(json_body::<ItemPatch>(max_body_bytes))
        .and(with_store(store))
        .and_then(
            |id: String, patch: ItemPatch, store: ItemStore| async move {
                let id = parse_id(&id)?;
                patch.validate().map_err(invalid)?;
                let item = store
                    .patch(id, patch)
                    .await
                    .map_err(internal)?
                    .ok_or_else(|| not_found(id))?;
                Ok::<_, Rejection>(warp::reply::json(&item).into_response())
            },
        )
}

/// DELETE /items/{id}  (204)
fn delete_item(store: ItemStore) -> impl Filter<Extract = (ItemReply,), Error = Rejection> + Clone {
    warp::path!("items" / String)
        .and(warp::delete())
        .and(with_store(store))
        .and_then(|id: String, store: ItemStore| async move {
            let id = parse_id(&id)?;
            if !store.delete(id).await.map_err(internal)? {
                return Err(not_found(id));
            }
            Ok::<_, Rejection>(StatusCode::NO_CONTENT.into_response())
        })
}

/// Ids are positive integers; anything else is a 400 on every route.
fn parse_id(raw: &str) -> Result<i64, Rejection> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        let shown: String = raw.chars().take(40).collect();
        warp::reject::custom(ApiError::BadRequest(format!(
            "item id must be a positive integer, got {shown:?}"
        )))
    })
}

fn not_found(id: i64) -> Rejection {
    warp::reject::custom(ApiError::NotFound(format!("no item with id {id}")))
}

fn invalid(err: ValidationError) -> Rejection {
    warp::reject::custom(ApiError::Validation(err.to_string()))
}

fn bad_request(err: &ValidationError) -> Rejection {
    warp::reject::custom(ApiError::BadRequest(err.to_string()))
}

fn internal(err: StoreError) -> Rejection {
    warp::reject::custom(ApiError::Internal(format!("item store: {err}")))
}
