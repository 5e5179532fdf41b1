//! All integration tests, compiled into one binary (one link step, shared harness): each module
//! here is a specification named for what it proves; the harness lives in `support/`.

mod access_log;
mod admin_api;
mod admin_surface;
mod busting_races;
mod cache_filters;
mod command_line;
mod conditional_requests;
mod connection_limits;
mod dashboard_browser;
mod exact_settings;
mod faults;
mod first_run;
mod freshness;
mod history_faults;
mod http_semantics;
mod item_cache;
mod item_store_postgres;
mod item_store_suite;
mod l1_tier;
mod manager_suite;
mod metadata_lifetimes;
mod metric_cardinality;
mod monitoring_files;
mod operator_scripts;
mod redis_backend;
mod redis_cluster;
mod service_binary;
mod stale_and_stampede;
mod support;
mod tags_and_purge;
mod topology;
