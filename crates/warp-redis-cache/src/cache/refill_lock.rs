//! A short Redis lock that lets one instance refill an entry while the others wait for it.
//!
//! `SET <prefix>:#lock:<ns>:<key> <random token> NX PX <ttl>` takes it; a Lua
//! compare-and-delete releases it, so a holder whose lock expired (and was taken by another
//! instance) never releases someone else's. The TTL bounds how long a crashed holder can make
//! others wait. A lock not released explicitly (the request was dropped) is released from a
//! task of its own.

use std::time::Duration;

use super::key::Namespace;
use super::manager::{CacheError, CacheManager};
use super::stamp::Generation;

/// A held refill lock.
pub struct RefillLock {
    cache: CacheManager,
    key: String,
    token: String,
    released: bool,
}

impl CacheManager {
    /// Tries to take the refill lock of `key` for at most `ttl`; `None` when another holds it.
    pub(crate) async fn try_refill_lock(
        &self,
        ns: &Namespace,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<RefillLock>, CacheError> {
        let lock_key = self.layout().lock_key(ns, key);
        let token = format!("{:016x}", Generation::fresh().value());
        let taken = self.backend().set_nx_px(&lock_key, &token, ttl).await;
        if !self.observe(ns, taken)? {
            return Ok(None);
        }
        Ok(Some(RefillLock {
            cache: self.clone(),
            key: lock_key,
            token,
            released: false,
        }))
    }
}

impl RefillLock {
    /// Releases the lock if this holder still has it.
    pub async fn release(mut self) {
        let released = self
            .cache
            .backend()
            .delete_if_equals(&self.key, &self.token)
            .await;
        // Only now: if this future is dropped mid-call, Drop still releases the lock.
        self.released = released.is_ok();
    }

    /// Whether the refill lock of `key` in `ns` is held by anyone (one round trip).
    pub async fn is_held(
        cache: &CacheManager,
        ns: &Namespace,
        key: &str,
    ) -> Result<bool, CacheError> {
        let lock_key = cache.layout().lock_key(ns, key);
        let held = cache.backend().exists(&lock_key).await;
        cache.observe(ns, held)
    }
}

impl Drop for RefillLock {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let (cache, key, token) = (self.cache.clone(), self.key.clone(), self.token.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = cache.backend().delete_if_equals(&key, &token).await;
            });
        }
    }
}
