//! Operator commands against a running service, through its HTTP API: load items from a file
//! (`seed`), warm the cache (`warm`), clear it (`clear`), look at it (`stats`, `keys`) and
//! purge entries (`purge`).
//!
//! The `cachectl` binary (`src/bin/cachectl.rs`) parses arguments and calls these;
//! `scripts/seed`, `scripts/warm` and `scripts/clear` wrap it. Nothing here runs inside the
//! service or talks to Redis: every effect goes through the same HTTP API a client uses, so
//! these commands work against any deployment that answers HTTP.
//!
//! - [`client`]: the HTTP client, with timeouts; [`retry`]: which failures it retries and how
//!   long it waits; [`error`]: its errors, worded for the operator;
//! - [`records`]: reading a JSON array or NDJSON file, bad records located by index or line;
//! - [`batch`]: many requests with bounded concurrency and progress, stopping when the service
//!   is unreachable; [`progress`]: the progress lines;
//! - [`seed`], [`warm`], [`clear`], [`stats`], [`keys`], [`purge`]: the commands; [`summary`]:
//!   what a seed or warm run did; [`views`]: the admin API's answers as the commands read them.

pub mod batch;
pub mod clear;
pub mod client;
pub mod error;
pub mod keys;
pub mod progress;
pub mod purge;
pub mod records;
pub mod retry;
pub mod seed;
pub mod stats;
pub mod summary;
pub mod views;
pub mod warm;

/// Exit code when the command ran but something failed (a record, a request, the service).
pub const EXIT_FAILED: u8 = 1;
/// Exit code for a usage error, or a file that cannot be read or is not JSON.
pub const EXIT_USAGE: u8 = 2;
