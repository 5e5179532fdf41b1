//! Test harness, apart from the specifications: real processes on free loopback ports (Redis,
//! a Redis Cluster, PostgreSQL databases, the service binary, a browser), the service running
//! in this process, and polling.

pub mod cluster;
pub mod postgres;
pub mod service_process;
pub mod webdriver;

mod app;
mod filter_requests;
mod headers;
mod redis_server;
mod round_trips;
mod settings;

use std::time::{Duration, Instant};

pub use app::{spawn_app, spawn_app_from, spawn_app_on, spawn_app_with, TestApp};
pub use filter_requests::{body_text, get};
pub use headers::{header, x_cache};
pub use redis_server::{free_port, RedisServer};
pub use round_trips::{command_calls, round_trips, round_trips_on};
pub use settings::{app_settings, cache_settings, redis_manager, redis_settings};

/// Polls `condition` every 10 ms until it holds or `within` passes; returns whether it held.
pub async fn eventually<F, Fut>(within: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
