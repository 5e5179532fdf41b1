//! The cache: key layout, codec, statistics, backends and the manager that ties them together.
//!
//! Only [`CacheManager`] talks to a backend; the warp filters and admin routes go through it.

pub mod auto;
pub mod backend;
pub mod breaker;
mod cluster;
pub mod codec;
pub mod generations;
pub mod inspect;
pub mod intents;
pub mod invalidation;
pub mod key;
pub mod l1;
pub mod manager;
pub mod memory;
pub mod redis;
pub mod refill_lock;
pub mod scripts;
pub mod stamp;
pub mod stats;
pub mod tags;
pub mod throttled_log;

pub use backend::{
    Backend, BackendError, BackendKind, KeyInfo, KeyPage, KeyTtl, NodeHealth, PoolState,
};
pub use breaker::CircuitState;
pub use generations::{Generation, Lookup, StorePayload};
pub use inspect::EntryView;
pub use key::{InvalidNamespace, Namespace};
pub use manager::{CacheError, CacheManager};
pub use stamp::{Stamp, Validity};
pub use stats::{CacheEvent, CacheStats, StatsSnapshot};
pub use tags::{InvalidTag, Invalidation, Tag};
