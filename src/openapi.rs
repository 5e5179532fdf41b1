//! The OpenAPI 3 document, generated from the handlers' annotations and the types they
//! exchange, so it cannot drift from the code. Served at `GET /openapi.json`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{admin, dashboard, health, items, meta, purge};

/// The service's API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "warp-redis-cache",
        description = "An item API cached on Redis, and the cache's admin routes. Every error \
                       answers {\"error\": {\"code\", \"message\"}}. Cached GETs carry X-Cache \
                       (HIT, MISS, BYPASS), Cache-Status (RFC 9211), ETag, Age and Cache-Control."
    ),
    paths(
        items::read_item, items::list, items::create, items::replace, items::patch, items::delete,
        admin::stats, admin::reset_stats, admin::ping, admin::clear_all, admin::clear_namespace,
        admin::list_keys, admin::get_entry, admin::delete_entry, purge::purge,
        health::health, health::liveness, health::readiness, meta::root, meta::metrics,
        meta::openapi_json, dashboard::page,
    ),
    modifiers(&BearerToken),
    tags(
        (name = "items", description = "The item resource; reads cached, writes bust the cache"),
        (name = "cache admin", description = "Operate the cache: bearer token, or loopback only when none is set"),
        (name = "health", description = "For load balancers and orchestrators"),
        (name = "meta", description = "Metrics and this document"),
    )
)]
pub struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document as JSON text.
pub fn document() -> String {
    ApiDoc::openapi()
        .to_json()
        .expect("the generated document serialises")
}
