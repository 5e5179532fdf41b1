//! The item API: the service's own resource, read through the cache and busting it on writes.
//!
//! `GET /items/{id}` and `GET /items` are wrapped in [`cached()`] (namespace `items`); `POST`,
//! `PUT`, `PATCH` and `DELETE` are wrapped in [`cache_busting()`], which invalidates, after
//! each successful write and before its response leaves, exactly the entries the write can
//! have changed; a GET that starts after a write returned never sees the old value.
//!
//! Entries are tagged (see [`read_tags`]): an item is filed under `item:<id>`, a list page
//! under `item:<id>` for every item it holds, under `items:lists`, and, when it filters by
//! name or tag, under `items:filtered-lists`. Writes invalidate (see [`write_tags`]):
//! - `POST`: `items:lists` (every page's total changes);
//! - `PUT` / `PATCH` of item 42: `item:42` and `items:filtered-lists` (the item may now match
//!   a filter it did not), so item 43 and the unfiltered pages without item 42 stay cached;
//! - `DELETE` of item 42: `item:42` and `items:lists`.
//!
//! One source of truth: the handlers name what their write changed on their reply
//! ([`with_bust_tags`], from the id they parsed), and read keys are built by [`read_key`] from
//! the same parsers the handlers use ([`parse_id`], [`ListQuery::from_query_string`]). So
//! `/items/5/`, `/items/05` and `/items/5` are one resource with one cache entry, and a write
//! through any of them busts it; `?limit=0100` and `?limit=100` are one page; and an unknown
//! query parameter is a 400 on every item route (it never makes a new cache entry).

use warp::http::{header, Method, StatusCode};
use warp::{Filter, Rejection, Reply};

use crate::error::{ApiError, ErrorBody};
use crate::items::{
    Item, ItemPage, ItemPatch, ItemStore, ListQuery, NewItem, StoreError, ValidationError,
};
use warp_redis_cache::{
    cache_busting, cached, decode_query, with_bust_tags, BustPolicy, CachePolicy, RequestParts,
    TagContext,
};
use warp_redis_cache::{CacheManager, Namespace};

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
    let read_policy = CachePolicy::new(namespace.clone())
        .key_with(read_key)
        .tags_with(read_tags);
    // Scoped to /items, so that an unsafe request elsewhere records no write intent.
    let writes = under_items().and(cache_busting(
        cache.clone(),
        BustPolicy::reply_tags(namespace),
        writes,
    ));
    cached(cache, read_policy, reads).or(writes)
}

/// Passes requests whose path starts with `/items`.
fn under_items() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::path::peek()
        .and_then(|path: warp::path::Peek| async move {
            match path.segments().next() {
                Some("items") => Ok(()),
                _ => Err(warp::reject::not_found()),
            }
        })
        .untuple_one()
}

/// What an item read asks for, parsed exactly as the handlers parse it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ItemRead {
    /// `GET /items/{id}`.
    One(i64),
    /// `GET /items?...`.
    Page(ListQuery),
}

impl ItemRead {
    /// `None` when the request is not a valid item read (it is answered with a 4xx, which is
    /// never stored). Path segments are percent-decoded as warp decodes its path parameters,
    /// and one trailing slash is allowed, as warp's routes allow it.
    fn parse(request: &RequestParts) -> Option<Self> {
        let rest = request.path().strip_prefix("/items")?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.is_empty() {
            return ListQuery::from_query_string(request.query())
                .ok()
                .map(ItemRead::Page);
        }
        let segment = rest.strip_prefix('/').filter(|s| !s.contains('/'))?;
        let segment = percent_encoding::percent_decode_str(segment)
            .decode_utf8()
            .ok()?;
        if !decode_query(request.query()).is_empty() {
            return None;
        }
        parse_id(&segment).ok().map(ItemRead::One)
    }
}

/// The cache key of an item read, from the parsed request: the default key of its canonical
/// spelling (`GET:/items/<id>`, `GET:/items?limit=<n>&offset=<n>[&q=..][&tag=..]`), so every
/// spelling of one resource shares one entry. Requests that are not valid reads keep their
/// own default key, which cannot equal a canonical one (a query that spells a canonical form
/// parses); they are answered with a 4xx and never stored.
pub fn read_key(request: &RequestParts) -> String {
    match ItemRead::parse(request) {
        Some(ItemRead::One(id)) => format!("GET:/items/{id}"),
        Some(ItemRead::Page(query)) => format!("GET:/items?{}", query.canonical()),
        None => request.default_key(),
    }
}

/// Every list page.
pub const LISTS_TAG: &str = "items:lists";
/// Every list page that filters by name or tag.
pub const FILTERED_LISTS_TAG: &str = "items:filtered-lists";

/// The tag of one item.
pub fn item_tag(id: i64) -> String {
    format!("item:{id}")
}

/// The ids a cached item response holds: its own, or those of a page's items.
#[derive(serde::Deserialize)]
struct HeldIds {
    id: Option<i64>,
    items: Option<Vec<HeldId>>,
}

#[derive(serde::Deserialize)]
struct HeldId {
    id: i64,
}

/// The tags of a cached item or list response, from what its body holds.
pub fn read_tags(context: &TagContext<'_>) -> Vec<String> {
    let Ok(held) = serde_json::from_slice::<HeldIds>(context.body) else {
        // Not an item or a page (cannot happen for a 200): file it under every list, the
        // widest tag the writes know, rather than under nothing.
        return vec![LISTS_TAG.to_string()];
    };
    let mut tags: Vec<String> = held.id.into_iter().map(item_tag).collect();
    if let Some(items) = held.items {
        tags.push(LISTS_TAG.to_string());
        // Parsed as the list handler parsed it; a query that does not parse errs on the safe
        // side (it cannot have produced a page anyway).
        let filtered = ListQuery::from_query_string(context.request.query())
            .map_or(true, |query| query.is_filtered());
        if filtered {
            tags.push(FILTERED_LISTS_TAG.to_string());
        }
        tags.extend(items.iter().map(|item| item_tag(item.id)));
    }
    tags
}

/// The tags a successful write of item `id` (`None` for a create) invalidates (see the module
/// docs); the handlers attach them to their replies.
pub fn write_tags(method: &Method, id: Option<i64>) -> Vec<String> {
    match (method, id) {
        (&Method::DELETE, Some(id)) => vec![item_tag(id), LISTS_TAG.to_string()],
        (&Method::PUT | &Method::PATCH, Some(id)) => {
            vec![item_tag(id), FILTERED_LISTS_TAG.to_string()]
        }
        _ => vec![LISTS_TAG.to_string()],
    }
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
    super::json_body::json_body(max_body_bytes)
}

fn get_or_head() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::get().or(warp::head()).unify()
}

/// The raw query string, empty when there is none.
fn raw_query() -> impl Filter<Extract = (String,), Error = std::convert::Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// Routes on one item take no query parameters: any is a 400, so `?r=1`, `?r=2`, ... cannot
/// each become a cache entry.
fn no_query() -> impl Filter<Extract = (), Error = Rejection> + Clone {
    raw_query()
        .and_then(|raw: String| async move {
            match decode_query(&raw).first() {
                None => Ok(()),
                Some((name, _)) => {
                    let shown: String = name.chars().take(40).collect();
                    Err(warp::reject::custom(ApiError::BadRequest(format!(
                        "unknown parameter {shown:?}; this route takes no query parameters"
                    ))))
                }
            }
        })
        .untuple_one()
}

/// GET /items/{id}
fn get_item(store: ItemStore) -> impl Filter<Extract = (ItemReply,), Error = Rejection> + Clone {
    warp::path!("items" / String)
        .and(get_or_head())
        .and(no_query())
        .and(with_store(store))
        .and_then(read_item)
}

/// GET /items?limit=20&offset=0&q=lamp&tag=garden
fn list_items(store: ItemStore) -> impl Filter<Extract = (ItemReply,), Error = Rejection> + Clone {
    warp::path!("items")
        .and(get_or_head())
        .and(raw_query())
        .and(with_store(store))
        .and_then(list)
}

/// POST /items  (201 with Location)
fn create_item(
    store: ItemStore,
    max_body_bytes: u64,
) -> impl Filter<Extract = (ItemReply,), Error = Rejection> + Clone {
    warp::path!("items")
        .and(warp::post())
        .and(no_query())
        .and(json_body::<NewItem>(max_body_bytes))
        .and(with_store(store))
        .and_then(create)
}

/// PUT /items/{id}  (full replacement)
fn replace_item(
    store: ItemStore,
    max_body_bytes: u64,
) -> impl Filter<Extract = (ItemReply,), Error = Rejection> + Clone {
    warp::path!("items" / String)
        .and(warp::put())
        .and(no_query())
        .and(json_body::<NewItem>(max_body_bytes))
        .and(with_store(store))
        .and_then(replace)
}

/// PATCH /items/{id}  (the fields given)
fn patch_item(
    store: ItemStore,
    max_body_bytes: u64,
) -> impl Filter<Extract = (ItemReply,), Error = Rejection> + Clone {
    warp::path!("items" / String)
        .and(warp::patch())
        .and(no_query())
        .and(json_body::<ItemPatch>(max_body_bytes))
        .and(with_store(store))
        .and_then(patch)
}

/// DELETE /items/{id}  (204)
fn delete_item(store: ItemStore) -> impl Filter<Extract = (ItemReply,), Error = Rejection> + Clone {
    warp::path!("items" / String)
        .and(warp::delete())
        .and(no_query())
        .and(with_store(store))
        .and_then(delete)
}

/// One item (cached in namespace `items`).
#[utoipa::path(get, path = "/items/{id}", tag = "items",
    params(("id" = i64, Path, minimum = 1, description = "a positive integer")),
    responses((status = 200, body = Item, description = "the item; X-Cache says HIT, MISS or BYPASS"),
              (status = 304, description = "If-None-Match matched the ETag"),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody, description = "the item store is unreachable")))]
pub async fn read_item(id: String, store: ItemStore) -> Result<ItemReply, Rejection> {
    let id = parse_id(&id)?;
    let item = store
        .get(id)
        .await
        .map_err(store_failure)?
        .ok_or_else(|| not_found(id))?;
    Ok(warp::reply::json(&item).into_response())
}

/// A page of items, optionally filtered (cached in namespace `items`).
#[utoipa::path(get, path = "/items", tag = "items",
    params(("limit" = Option<u32>, Query, description = "1 to 100, default 20"),
           ("offset" = Option<u64>, Query, description = "0 to 1000000, default 0"),
           ("q" = Option<String>, Query, description = "name contains this (case-insensitive)"),
           ("tag" = Option<String>, Query, description = "has exactly this tag")),
    responses((status = 200, body = ItemPage), (status = 400, body = ErrorBody),
              (status = 503, body = ErrorBody, description = "the item store is unreachable")))]
pub async fn list(raw_query: String, store: ItemStore) -> Result<ItemReply, Rejection> {
    let query = ListQuery::from_query_string(&raw_query).map_err(|e| bad_request(&e))?;
    let page = store.list(query).await.map_err(store_failure)?;
    Ok(warp::reply::json(&page).into_response())
}

/// Creates an item (invalidates the tags it affects).
#[utoipa::path(post, path = "/items", tag = "items", request_body = NewItem,
    responses((status = 201, body = Item, headers(("location" = String, description = "/items/{id}"))),
              (status = 400, body = ErrorBody), (status = 413, body = ErrorBody),
              (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 503, body = ErrorBody, description = "the item store is unreachable")))]
pub async fn create(new: NewItem, store: ItemStore) -> Result<ItemReply, Rejection> {
    new.validate().map_err(invalid)?;
    let item = store.create(new).await.map_err(store_failure)?;
    let location = format!("/items/{}", item.id);
    let reply = warp::reply::with_status(warp::reply::json(&item), StatusCode::CREATED);
    let reply = warp::reply::with_header(reply, header::LOCATION, location);
    Ok(with_bust_tags(reply, write_tags(&Method::POST, None)))
}

/// Replaces an item (invalidates the tags it affects).
#[utoipa::path(put, path = "/items/{id}", tag = "items", request_body = NewItem,
    params(("id" = i64, Path, minimum = 1, description = "a positive integer")),
    responses((status = 200, body = Item), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 503, body = ErrorBody, description = "the item store is unreachable")))]
pub async fn replace(id: String, new: NewItem, store: ItemStore) -> Result<ItemReply, Rejection> {
    let id = parse_id(&id)?;
    new.validate().map_err(invalid)?;
    let item = store
        .replace(id, new)
        .await
        .map_err(store_failure)?
        .ok_or_else(|| not_found(id))?;
    let tags = write_tags(&Method::PUT, Some(id));
    Ok(with_bust_tags(warp::reply::json(&item), tags))
}

/// Changes the given fields of an item (invalidates the tags it affects).
#[utoipa::path(patch, path = "/items/{id}", tag = "items", request_body = ItemPatch,
    params(("id" = i64, Path, minimum = 1, description = "a positive integer")),
    responses((status = 200, body = Item), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 422, body = ErrorBody),
              (status = 503, body = ErrorBody, description = "the item store is unreachable")))]
pub async fn patch(id: String, patch: ItemPatch, store: ItemStore) -> Result<ItemReply, Rejection> {
    let id = parse_id(&id)?;
    patch.validate().map_err(invalid)?;
    let item = store
        .patch(id, patch)
        .await
        .map_err(store_failure)?
        .ok_or_else(|| not_found(id))?;
    let tags = write_tags(&Method::PATCH, Some(id));
    Ok(with_bust_tags(warp::reply::json(&item), tags))
}

/// Deletes an item (invalidates the tags it affects).
#[utoipa::path(delete, path = "/items/{id}", tag = "items",
    params(("id" = i64, Path, minimum = 1, description = "a positive integer")),
    responses((status = 204, description = "deleted"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 503, body = ErrorBody, description = "the item store is unreachable")))]
pub async fn delete(id: String, store: ItemStore) -> Result<ItemReply, Rejection> {
    let id = parse_id(&id)?;
    if !store.delete(id).await.map_err(store_failure)? {
        return Err(not_found(id));
    }
    let tags = write_tags(&Method::DELETE, Some(id));
    Ok(with_bust_tags(StatusCode::NO_CONTENT, tags))
}

/// Ids are positive integers; anything else is a 400 on every route.
pub fn parse_id(raw: &str) -> Result<i64, Rejection> {
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

/// A database that cannot be reached is a 503 the client may retry (and the cache may cover
/// with a stale entry); anything else is a 500. Either way the details go to the log only.
fn store_failure(err: StoreError) -> Rejection {
    if let StoreError::Unavailable(_) = err {
        log::warn!("{err}");
        let message = "the item store is unavailable; try again shortly";
        return warp::reject::custom(ApiError::Unavailable(message.into()));
    }
    warp::reject::custom(ApiError::Internal(err.to_string()))
}
