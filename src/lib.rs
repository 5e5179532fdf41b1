//! # warp-redis-cache
//!
//! HTTP response caching on Redis for [warp] 0.4 applications, as reusable filters, plus the
//! service that uses them.
//!
//! The pieces, in the order a request meets them:
//! - [`routes`]: warp filter trees (items, cache admin, health);
//! - [`cache::CacheManager`]: the only code that talks to a backend (Redis through a mobc pool,
//!   or process memory), with key layout ([`cache::key`]), codec ([`cache::codec`]) and
//!   statistics ([`cache::stats`]);
//! - [`items`]: the item model, its validation and the [`items::ItemStore`] (SQLite or
//!   PostgreSQL) that the cache sits in front of;
//! - [`settings`]: typed settings from `settings.yaml` and the environment;
//! - [`startup`]: builds and runs the application;
//! - [`server`]: the accept loop that bounds connections, header/body/idle time and drains on
//!   shutdown;
//! - [`ops`]: operator commands (seed, warm, clear) against a running service, used by the
//!   `cachectl` binary.
//!
//! ```
//! use warp_redis_cache::cache::{CacheManager, Namespace};
//! use warp_redis_cache::settings::CacheSettings;
//!
//! # tokio_test_runtime(async {
//! let cache = CacheManager::in_memory(&CacheSettings::default());
//! let users = Namespace::new("users").expect("valid namespace");
//! cache.set(&users, "42", &serde_json::json!({"name": "Ada"}), None).await.unwrap();
//! let user: Option<serde_json::Value> = cache.get(&users, "42").await.unwrap();
//! assert_eq!(user.unwrap()["name"], "Ada");
//! # });
//! # fn tokio_test_runtime(f: impl std::future::Future<Output = ()>) {
//! #     tokio::runtime::Runtime::new().unwrap().block_on(f)
//! # }
//! ```

pub mod cache;
pub mod error;
pub mod filters;
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
