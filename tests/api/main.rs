//! All integration tests, compiled into one binary (one link step, shared harness).

mod helpers;
mod manager_suite;
mod redis_backend;
mod service_binary;
