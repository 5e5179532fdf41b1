//! Write intents: a write that crashes between its commit and its bust must not leave the cache
//! behind the store.
//!
//! Before a mutation route runs, [`CacheManager::begin_write`] records an intent in Redis (a
//! field of the namespace's intent hash, `<prefix>#intent:<namespace>`, named after the
//! instance that owns the write and holding the time it began); after its bust has landed,
//! [`CacheManager::end_write`] removes it. Every instance keeps a heartbeat,
//! `<prefix>#alive:<instance>`, that lives [`HEARTBEAT_TTL`] and is renewed every
//! [`SWEEP_INTERVAL`]. If the process dies between a write's commit and its bust (SIGKILL,
//! OOM, a power cut), its heartbeat expires and its intents stay; every instance whose filters
//! bust that namespace sweeps the hash every [`SWEEP_INTERVAL`], and replays an intent whose
//! owner has no heartbeat (and that is older than `cache.write_intent_grace_ms`) as a bust of
//! the whole namespace (what the write changed is not known any more), then removes it.
//! Whatever was stored meanwhile, including values read between the commit and the crash, was
//! stored under an older stamp and dies.
//!
//! So a crash mid-write leaves stale entries for at most the heartbeat's lifetime plus one sweep
//! interval (or the grace, when longer), whether or not the crashed instance comes back; and a
//! live instance's write is never replayed, however slowly its client sends the body. Both keys
//! sit outside the prefix's patterns, so clearing the cache never drops an intent. The memory backend needs none of this: a
//! crash takes its entries with it. When Redis cannot take the intent, the write goes on
//! without one (a write is never refused for the cache's sake); a crash in that same window is
//! then not covered.

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::key::Namespace;
use super::manager::CacheManager;
use super::stamp::Generation;

/// How often each instance looks for intents that outlived their grace.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(2);
/// How long an instance's heartbeat lives unless renewed: after a crash, its intents are
/// replayed once it has expired.
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(6);
/// How long an intent hash lives after its latest write (a safety net: intents are removed one
/// by one when their writes finish or are replayed).
const INTENTS_TTL: Duration = Duration::from_secs(24 * 3600);

/// An intent recorded by [`CacheManager::begin_write`], to hand back to
/// [`CacheManager::end_write`] once the write's bust has landed.
#[derive(Debug)]
pub struct WriteIntent {
    key: String,
    field: String,
}

/// The instance that owns an intent field (`<owner>:<write>`).
fn owner_of(field: &str) -> &str {
    field.split_once(':').map_or(field, |(owner, _)| owner)
}

fn now_ms() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

impl CacheManager {
    /// Records that a write that may change `ns` is about to run; `None` when there is nothing
    /// to record (memory backend) or Redis did not take it (the write goes on regardless).
    pub(crate) async fn begin_write(&self, ns: &Namespace) -> Option<WriteIntent> {
        let redis = self.backend().redis()?;
        self.sweep_write_intents(ns);
        let owner = &self.intent_sweep().owner;
        let intent = WriteIntent {
            key: self.layout().intents_key(ns),
            field: format!("{owner}:{:016x}", Generation::fresh().value()),
        };
        let started = now_ms().to_string();
        let recorded = redis
            .hash_set(&intent.key, &intent.field, &started, INTENTS_TTL)
            .await;
        self.observe(ns, recorded).ok().map(|()| intent)
    }

    /// Removes an intent whose write's bust has landed (or whose write changed nothing).
    pub(crate) async fn end_write(&self, ns: &Namespace, intent: WriteIntent) {
        let Some(redis) = self.backend().redis() else {
            return;
        };
        let removed = redis.hash_delete(&intent.key, &[intent.field]).await;
        // Left behind, the intent is replayed after its grace: one needless bust, no harm.
        let _ = self.observe(ns, removed);
    }

    /// Replays every intent of `ns` older than `grace` whose owner has no heartbeat (it died)
    /// as a bust of the namespace; returns how many were replayed.
    pub(crate) async fn replay_write_intents(
        &self,
        ns: &Namespace,
        grace: Duration,
    ) -> Result<usize, super::CacheError> {
        let Some(redis) = self.backend().redis() else {
            return Ok(0);
        };
        let key = self.layout().intents_key(ns);
        let entries = self.observe(ns, redis.hash_entries(&key).await)?;
        let cutoff = now_ms().saturating_sub(u64::try_from(grace.as_millis()).unwrap_or(0));
        let own = &self.intent_sweep().owner;
        let old: Vec<String> = entries
            .into_iter()
            .filter(|(field, _)| owner_of(field) != own)
            .filter(|(_, started)| started.parse::<u64>().map_or(true, |at| at <= cutoff))
            .map(|(field, _)| field)
            .collect();
        let mut abandoned = Vec::new();
        for field in old {
            let heartbeat = self.layout().heartbeat_key(owner_of(&field));
            if !self.observe(ns, redis.exists(&heartbeat).await)? {
                abandoned.push(field);
            }
        }
        if abandoned.is_empty() {
            return Ok(0);
        }
        self.bust_namespace(ns).await?;
        log::warn!(
            "namespace {ns}: {} write(s) of an instance that stopped (a crash?) never finished \
             their bust; namespace invalidated",
            abandoned.len()
        );
        let removed = redis.hash_delete(&key, &abandoned).await;
        self.observe(ns, removed)?;
        Ok(abandoned.len())
    }

    /// Renews this instance's heartbeat: while it lives, no other instance replays its intents.
    async fn renew_heartbeat(&self) {
        let Some(redis) = self.backend().redis() else {
            return;
        };
        let key = self.layout().heartbeat_key(&self.intent_sweep().owner);
        // Missed, the heartbeat expires and this instance's in-flight writes are replayed by
        // others: a needless bust, no harm.
        let _ = redis.heartbeat(&key, HEARTBEAT_TTL).await;
    }

    /// Adds `ns` to the namespaces this process sweeps for abandoned intents, and starts the
    /// sweeper (once per manager) when there is a runtime to run it.
    pub(crate) fn sweep_write_intents(&self, ns: &Namespace) {
        if !self.backend().has_redis() {
            return;
        }
        let sweep = self.intent_sweep();
        sweep
            .namespaces
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ns.clone());
        if sweep.running.load(Ordering::Acquire) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if sweep.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let manager = self.downgrade();
        runtime.spawn(async move {
            loop {
                let Some(manager) = manager.upgrade() else {
                    return;
                };
                let namespaces: Vec<Namespace> = {
                    let sweep = manager.intent_sweep();
                    let namespaces = sweep.namespaces.lock().unwrap_or_else(|e| e.into_inner());
                    namespaces.iter().cloned().collect()
                };
                let grace = manager.write_intent_grace();
                manager.renew_heartbeat().await;
                for ns in &namespaces {
                    // A failure is retried at the next sweep.
                    let _ = manager.replay_write_intents(ns, grace).await;
                }
                drop(manager);
                tokio::time::sleep(SWEEP_INTERVAL).await;
            }
        });
    }
}
