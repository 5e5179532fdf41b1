//! Namespace generations: invalidating a whole namespace in O(1), race-free, and checked in
//! the same round trip as the entry.
//!
//! Every namespace has a generation, a random 64-bit value under `<prefix>:#gen:<namespace>`.
//! An entry written through [`CacheManager::store`] records the generation that was current
//! when its request *started* (read by the lookup that missed). A lookup reads the entry and
//! the current generation together (`MGET`) and serves the entry only if the two match.
//! Busting sets a new random generation: every older entry is dead at once, and so is any
//! entry that a slow request stores afterwards from data it read before the bust — the race
//! that makes delete-based invalidation serve stale data until the TTL.
//!
//! Generations are random rather than counters so a lost generation key (evicted, cleared,
//! expired) cannot bring old entries back: the replacement is another random value, and while
//! a namespace has no record none of its entries is served.
//!
//! That is what makes lifetimes on records safe. A record is created (`SET NX PX`) with an
//! entry's default lifetime, every store extends it to outlive the entry it writes, and a
//! bust replaces only an existing record (`SET XX KEEPTTL`): a namespace that is no longer
//! used disappears with its last entry, and clearing one that never existed writes nothing.
//!
//! The same record carries the namespace's invalidation clock for tags and soft purges, and a
//! lookup of a tagged route reads the entry's tag records in the same round trip; see
//! [`super::stamp`] for the records and the rule, and [`super::tags`] for invalidation.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;

use super::backend_types::{BackendError, TaggedRead};
use super::codec::{self, Decoded, Sections};
use super::invalidation::Invalidated;
use super::key::Namespace;
use super::manager::{CacheError, CacheManager};
use super::pending_busts::{PENDING_BUST_RETRY_MAX, PENDING_BUST_RETRY_MIN};
use super::stamp::{judge, Generation, NamespaceState, Stamp, TagState, Validity};
use super::stats::CacheEvent;
use super::tag::{decode_names, encode_names, Tag};

/// What a lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// An entry of the current generation that no hard invalidation reached.
    Hit {
        /// The entry.
        decoded: Decoded,
        /// A soft purge reached it: serve it only as stale.
        soft_purged: bool,
        /// The namespace's current stamp, to store a refreshed entry under.
        current: Stamp,
    },
    /// Nothing usable. `current` is the namespace's current stamp, to store a fresh entry
    /// under; `None` when the namespace has no record yet (see
    /// [`CacheManager::current_stamp`]).
    Miss {
        /// The namespace's current stamp, if it has one.
        current: Option<Stamp>,
    },
}

impl CacheManager {
    /// Reads the entry under `key` with its namespace record, and with its tags' records when
    /// `tagged`, in one round trip, and judges it (see [`super::stamp::judge`]). Invalidated
    /// entries, and undecodable ones, are misses. Without `tagged`, an entry that carries tags
    /// is a miss: its tags cannot be checked.
    pub(crate) async fn lookup(
        &self,
        ns: &Namespace,
        key: &str,
        tagged: bool,
    ) -> Result<Lookup, CacheError> {
        let full_key = self.layout().full_key(ns, key);
        let record_key = self.layout().generation_key(ns);
        let read = if tagged {
            let tag_prefix = self.layout().tag_prefix(ns);
            let read = self
                .backend()
                .read_tagged(&full_key, &record_key, &tag_prefix)
                .await;
            self.observe(ns, read)?
        } else {
            let pair = self.backend().get_pair(&full_key, &record_key).await;
            let (entry, record) = self.observe(ns, pair)?;
            TaggedRead {
                entry,
                record,
                tags: Vec::new(),
            }
        };
        let state = read.record.as_deref().and_then(NamespaceState::parse);
        let current = state.map(NamespaceState::stamp);
        let miss = |manager: &Self| {
            manager.stats().record(Some(ns), CacheEvent::Miss);
            Ok(Lookup::Miss { current })
        };
        let (Some(stored), Some(state)) = (read.entry, state) else {
            return miss(self);
        };
        let decoded = match codec::decode(&stored) {
            Ok(decoded) => decoded,
            Err(err) => {
                self.drop_corrupt(ns, full_key, &err).await;
                return Ok(Lookup::Miss { current });
            }
        };
        let Some(generation) = decoded.generation.map(Generation::from_value) else {
            return miss(self);
        };
        let names = decode_names(&decoded.tags).count();
        if names != read.tags.len() {
            return miss(self);
        }
        let stamp = Stamp {
            generation,
            clock: decoded.clock.unwrap_or(0),
        };
        let tags = read
            .tags
            .iter()
            .map(|record| record.as_deref().and_then(TagState::parse));
        let soft_purged = match judge(stamp, decoded.soft_purged, &state, tags) {
            Validity::Valid => false,
            Validity::SoftPurged => true,
            Validity::Dead => return miss(self),
        };
        self.stats().record(Some(ns), CacheEvent::Hit);
        Ok(Lookup::Hit {
            decoded,
            soft_purged,
            current: state.stamp(),
        })
    }

    /// The namespace's current stamp, creating its record if it has none (one round trip).
    /// A new record lives as long as an entry stored with the default lifetimes; every store
    /// extends it to outlive the entry (see [`super::scripts::STORE_TAGGED`]).
    pub(crate) async fn current_stamp(&self, ns: &Namespace) -> Result<Stamp, CacheError> {
        let key = self.layout().generation_key(ns);
        let fresh = NamespaceState::new(Generation::fresh()).to_record();
        let result = self
            .backend()
            .set_if_absent(&key, Bytes::from(fresh), self.new_record_lifetime())
            .await;
        if let Err(BackendError::Command(_)) = result {
            // The key holds something that is not a string (WRONGTYPE): replace it.
            return self.reset_namespace_record(ns).await;
        }
        let current = self.observe(ns, result)?;
        match NamespaceState::parse(&current) {
            Some(state) => Ok(state.stamp()),
            None => self.reset_namespace_record(ns).await,
        }
    }

    /// Invalidates every generation-checked entry of `ns` at once. A namespace without a
    /// record has no valid entry, so nothing is written for it: clearing a namespace that
    /// never existed leaves no key behind. A record that exists gets a new generation and
    /// keeps its lifetime.
    pub async fn bust_namespace(&self, ns: &Namespace) -> Result<(), CacheError> {
        let key = self.layout().generation_key(ns);
        let state = NamespaceState::new(Generation::fresh());
        let result = self
            .backend()
            .replace_existing(&key, Bytes::from(state.to_record()))
            .await;
        self.announce(Invalidated::Namespace(ns)).await;
        self.observe(ns, result)
    }

    /// Replaces an unreadable namespace record with a new generation; returns its stamp.
    async fn reset_namespace_record(&self, ns: &Namespace) -> Result<Stamp, CacheError> {
        let key = self.layout().generation_key(ns);
        let state = NamespaceState::new(Generation::fresh());
        let result = self
            .backend()
            .set(
                &key,
                Bytes::from(state.to_record()),
                self.new_record_lifetime(),
            )
            .await;
        self.announce(Invalidated::Namespace(ns)).await;
        self.observe(ns, result)?;
        Ok(state.stamp())
    }

    /// How long a new namespace record lives before any store extends it: an entry's default
    /// lifetime with both stale windows.
    fn new_record_lifetime(&self) -> Duration {
        let (while_revalidate, if_error) = self.default_stale_windows();
        self.default_ttl() + while_revalidate + if_error
    }

    /// Stores `payload` with `meta` under `key`, recording `stamp` and `tags`; compressed
    /// above the threshold unless `payload` already is gzip. The entry is written with its
    /// namespace record and tag records kept alive at least as long as it (one script call).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn store(
        &self,
        ns: &Namespace,
        key: &str,
        stamp: Stamp,
        tags: &[Tag],
        meta: &[u8],
        payload: StorePayload<'_>,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        let names = (!tags.is_empty()).then(|| encode_names(tags));
        let sections = Sections {
            generation: Some(stamp.generation.value()),
            clock: Some(stamp.clock),
            tags: names.as_deref(),
            meta: Some(meta),
        };
        let encoded = match payload {
            StorePayload::Plain(body) => self.codec().encode_with(sections, body),
            StorePayload::Verbatim(body) => self.codec().encode_verbatim(sections, body),
            StorePayload::Gzip {
                compressed,
                plain_len,
            } => self
                .codec()
                .encode_precompressed(sections, compressed, plain_len),
        };
        let full_key = self.layout().full_key(ns, key);
        let record_key = self.layout().generation_key(ns);
        let tag_keys: Vec<String> = tags
            .iter()
            .map(|tag| self.layout().tag_key(ns, tag.as_str()))
            .collect();
        let ttl = ttl.unwrap_or(self.default_ttl());
        let event = CacheEvent::Set {
            plain_bytes: encoded.plain_len as u64,
            stored_bytes: encoded.bytes.len() as u64,
        };
        let result = self
            .backend()
            .store_tagged(
                &full_key,
                encoded.bytes,
                ttl,
                &record_key,
                &self.layout().tag_log_key(ns),
                &tag_keys,
            )
            .await;
        self.observe(ns, result)?;
        self.stats().record(Some(ns), event);
        Ok(())
    }
}

impl CacheManager {
    /// Busts `ns`; when the backend fails, remembers the namespace so that it is not read
    /// until a later bust succeeds. Returns whether the bust happened now.
    pub(crate) async fn bust_or_remember(&self, ns: &Namespace) -> bool {
        let started = self.pending_busts().now();
        match self.bust_namespace(ns).await {
            Ok(_) => {
                self.pending_busts().clear_if_not_newer(ns, started);
                true
            }
            Err(err) => {
                log::warn!("invalidation of namespace {ns} failed ({err}); it is bypassed here and retried in the background until it lands");
                self.remember_failed_bust(ns);
                false
            }
        }
    }

    /// Remembers that an invalidation in `ns` failed: the namespace is bypassed until a bust
    /// of it succeeds, which a background task retries until it does.
    pub(crate) fn remember_failed_bust(&self, ns: &Namespace) {
        self.pending_busts().add(ns);
        self.start_bust_retries();
    }

    /// How many namespaces have an invalidation pending (failed, being retried).
    pub fn pending_bust_count(&self) -> usize {
        self.pending_busts().len()
    }

    /// Starts the background task that retries pending busts, unless it runs already. It
    /// holds the manager weakly: dropping every handle of the manager ends it.
    fn start_bust_retries(&self) {
        if self.pending_busts().retrying.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime (a synchronous caller): reads still retry before they are served.
            self.pending_busts()
                .retrying
                .store(false, Ordering::Release);
            return;
        };
        let manager = self.downgrade();
        runtime.spawn(async move {
            let mut pause = PENDING_BUST_RETRY_MIN;
            loop {
                tokio::time::sleep(pause).await;
                let Some(manager) = manager.upgrade() else {
                    return;
                };
                let pending = manager.pending_busts();
                let mut failed = false;
                for ns in pending.snapshot() {
                    failed |= manager.settle_pending_bust(&ns).await.is_err();
                }
                if pending.is_empty() {
                    pending.retrying.store(false, Ordering::Release);
                    // A failure recorded after the check would have found the flag set:
                    // take the work back if so, else stop.
                    if pending.is_empty() || pending.retrying.swap(true, Ordering::AcqRel) {
                        return;
                    }
                }
                pause = if failed {
                    (pause * 2).min(PENDING_BUST_RETRY_MAX)
                } else {
                    PENDING_BUST_RETRY_MIN
                };
            }
        });
    }

    /// Ok when `ns` may be read: no bust of it is pending, or the pending one succeeds now.
    pub(crate) async fn settle_pending_bust(&self, ns: &Namespace) -> Result<(), CacheError> {
        if self.pending_busts().pending(ns).is_none() {
            return Ok(());
        }
        let started = self.pending_busts().now();
        self.bust_namespace(ns).await?;
        self.pending_busts().clear_if_not_newer(ns, started);
        log::info!("pending invalidation of namespace {ns} done");
        Ok(())
    }
}

/// A payload to store: plain (compressed by the codec when large) or already gzip-compressed.
#[derive(Debug, Clone, Copy)]
pub enum StorePayload<'a> {
    /// Uncompressed bytes.
    Plain(&'a [u8]),
    /// Bytes stored exactly as given, never compressed (HTTP semantics: the route's
    /// representation, byte for byte).
    Verbatim(&'a [u8]),
    /// gzip bytes, never compressed again.
    Gzip {
        /// The gzip stream.
        compressed: &'a [u8],
        /// Its size once inflated.
        plain_len: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_generations_differ_and_parse_back() {
        let a = Generation::fresh();
        let b = Generation::fresh();
        assert_ne!(a, b);
        let record = NamespaceState::new(a).to_record();
        assert_eq!(
            NamespaceState::parse(record.as_bytes()).map(|s| s.generation),
            Some(a)
        );
        assert_eq!(NamespaceState::parse(b"garbage"), None);
    }
}
