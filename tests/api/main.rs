//! All integration tests, compiled into one binary (one link step, shared harness).

mod admin_api;
mod admin_surface;
mod busting_races;
mod cache_filters;
mod cluster_fixture;
mod conditional_requests;
mod connection_limits;
mod exact_settings;
mod faults;
mod helpers;
mod item_cache;
mod item_store_postgres;
mod item_store_suite;
mod l1_tier;
mod manager_suite;
mod metric_cardinality;
mod operator_scripts;
mod postgres;
mod properties;
mod redis_backend;
mod redis_cluster;
mod service_binary;
mod service_process;
mod stale_and_stampede;
mod tags_and_purge;
mod topology;
