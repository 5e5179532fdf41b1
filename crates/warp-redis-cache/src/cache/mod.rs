//! The cache: key layout, codec, statistics, backends and the manager that ties them together.
//!
//! Only [`CacheManager`] talks to a backend; the warp filters and admin routes go through it.

pub(crate) mod auto;
pub(crate) mod backend;
pub(crate) mod backend_types;
pub(crate) mod breaker;
mod cluster;
pub(crate) mod codec;
pub(crate) mod entry_meta;
pub(crate) mod generations;
pub(crate) mod inspect;
pub(crate) mod intent_sweep;
pub(crate) mod intents;
pub(crate) mod invalidation;
pub(crate) mod key;
pub(crate) mod l1;
pub(crate) mod manager;
pub(crate) mod memory;
pub(crate) mod pending_busts;
#[cfg(test)]
mod properties;
pub(crate) mod purge;
pub(crate) mod redis;
pub(crate) mod refill_lock;
pub(crate) mod scripts;
pub(crate) mod stamp;
pub(crate) mod stats;
pub(crate) mod tag;
#[cfg(test)]
mod tag_records_tests;
pub(crate) mod throttled_log;

pub use backend_types::{
    BackendError, BackendKind, KeyInfo, KeyPage, KeyTtl, NodeHealth, PoolState,
};
pub use breaker::CircuitState;
pub use generations::{Lookup, StorePayload};
pub use inspect::{EntryView, Survey};
pub use key::{InvalidNamespace, Namespace};
pub use manager::{CacheError, CacheManager};
pub use stamp::Stamp;
pub use stats::{CacheEvent, CacheStats, CounterSnapshot, StatsSnapshot, MAX_TRACKED_NAMESPACES};
pub use tag::{InvalidTag, Invalidation, Tag};
