//! # warp-redis-cache service
//!
//! The service built on the [`warp_redis_cache`] filters: an item API cached with `cached` and
//! busted with `cache_busting`, the cache admin routes, health and metrics, settings from
//! `settings.yaml`, and the operator tools behind `cachectl`. A warp user who wants the filters
//! depends on the `warp-redis-cache` crate, not on this one.
//!
//! The pieces, in the order a request meets them:
//! - [`server`]: the accept loop that bounds connections, header/body/idle time and drains on
//!   shutdown;
//! - [`routes`]: warp filter trees (items, cache admin, health);
//! - [`items`]: the item model, its validation and the [`items::ItemStore`] (SQLite or
//!   PostgreSQL) that the cache sits in front of;
//! - [`settings`]: typed settings from `settings.yaml` and the environment;
//! - [`startup`]: builds and runs the application;
//! - [`ops`]: operator commands (seed, warm, clear) against a running service, used by the
//!   `cachectl` binary.

pub mod error;
pub mod items;
pub mod log_filter;
pub mod logging;
pub mod metrics;
pub mod observe;
pub mod openapi;
pub mod ops;
pub mod routes;
pub mod server;
pub mod settings;
pub mod startup;
pub mod wording;

/// The name the service gives itself in `GET /` and `GET /health` (its binary's name; the
/// package is `warp-redis-cache-service`, beside the `warp-redis-cache` library).
pub const SERVICE_NAME: &str = "warp-redis-cache";
