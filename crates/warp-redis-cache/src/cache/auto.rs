//! `cache.backend: auto`: Redis whenever it answers, the in-process memory backend only until
//! it first does.
//!
//! An instance that starts while Redis is down serves from memory, and a background probe
//! keeps asking Redis; the moment it answers, the instance switches to Redis for good and drops
//! every memory entry (they were never invalidated by other instances' writes). After the
//! switch, a Redis outage is handled as in `redis` mode (served uncached, never from memory),
//! so an instance's memory can serve an entry across another instance's write only while
//! Redis has been unreachable since this instance started: `auto` is safe for a single
//! instance, and for several instances only as a degraded start-up mode (readiness says
//! `degraded` meanwhile).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::memory::MemoryBackend;
use super::redis::RedisBackend;

/// How often an `auto` instance on its memory fallback asks Redis whether it answers.
pub const AUTO_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Redis with a memory fallback used until Redis first answers.
pub struct AutoBackend {
    pub(super) redis: RedisBackend,
    pub(super) memory: MemoryBackend,
    on_redis: AtomicBool,
}

impl AutoBackend {
    /// Starts on Redis when `redis_answered`, else on `memory`.
    pub fn new(redis: RedisBackend, memory: MemoryBackend, redis_answered: bool) -> Self {
        Self {
            redis,
            memory,
            on_redis: AtomicBool::new(redis_answered),
        }
    }

    /// Whether calls go to Redis (for good) rather than to the memory fallback.
    pub fn on_redis(&self) -> bool {
        self.on_redis.load(Ordering::Acquire)
    }

    /// Sends every later call to Redis and drops the memory entries; returns whether this
    /// call made the switch.
    pub(super) fn switch_to_redis(&self) -> bool {
        if self.on_redis.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.memory.clear();
        true
    }
}
