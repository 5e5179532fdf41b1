//! What an operator route needs from the cache: statistics, key listings, entry inspection,
//! purges and backend health.
//!
//! The methods live on [`CacheManager`](crate::CacheManager) (`stats`, `list_keys`,
//! `inspect`, `invalidate_tags`, `clear_namespace`, `node_health`, ...); this module holds the
//! types they return, so that the crate root stays the small API a route author needs.
//! Everything here reads or deletes cache entries only: nothing flushes a Redis database and
//! nothing runs `KEYS`.

pub use crate::cache::inspect::MAX_SURVEYED_KEYS;
pub use crate::cache::intents::{
    HEARTBEAT_TTL as INSTANCE_HEARTBEAT_TTL, SWEEP_INTERVAL as WRITE_INTENT_SWEEP_INTERVAL,
};
pub use crate::cache::key::KeyLayout;
pub use crate::cache::manager::L1Usage;
pub use crate::cache::throttled_log::ThrottledLog;
pub use crate::cache::{
    BackendError, BackendKind, CacheEvent, CacheStats, CircuitState, CounterSnapshot, EntryView,
    Invalidation, KeyInfo, KeyPage, KeyTtl, NodeHealth, PoolState, StatsSnapshot, Survey,
    MAX_TRACKED_NAMESPACES,
};
