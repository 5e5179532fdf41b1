//! The in-process memory backend: bounded by bytes, with per-entry TTL.
//!
//! The embedded default when no Redis answers, and the backend for single-instance setups. It
//! mirrors the Redis backend's behaviour (TTL, prefix-scoped deletion) but is local to one
//! process: instances do not share it. Built on moka, whose TinyLFU eviction keeps the hottest
//! entries when the byte bound is reached.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::sync::Cache;
use moka::Expiry;

use super::backend_types::{BackendError, KeyInfo, KeyPage, KeyTtl, TaggedRead};
use super::codec::{self, FLAG_SOFT_PURGED};
use super::stamp::{missing_tag_record, NamespaceState, TagLog, TagState, TAG_LOG_MAX_BYTES};
use super::tag::decode_names;

/// Per-entry bookkeeping added to the weight of each entry.
const ENTRY_OVERHEAD_BYTES: usize = 64;

#[derive(Clone)]
struct MemoryEntry {
    value: Bytes,
    /// `None`: never expires (namespace generations).
    expires_at: Option<Instant>,
}

impl MemoryEntry {
    fn is_live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

struct EntryDeadline;

impl Expiry<String, MemoryEntry> for EntryDeadline {
    fn expire_after_create(
        &self,
        _key: &String,
        entry: &MemoryEntry,
        created_at: Instant,
    ) -> Option<Duration> {
        entry
            .expires_at
            .map(|at| at.saturating_duration_since(created_at))
    }

    fn expire_after_update(
        &self,
        _key: &String,
        entry: &MemoryEntry,
        updated_at: Instant,
        _remaining: Option<Duration>,
    ) -> Option<Duration> {
        entry
            .expires_at
            .map(|at| at.saturating_duration_since(updated_at))
    }
}

/// Cache entries held in this process's memory.
pub struct MemoryBackend {
    entries: Cache<String, MemoryEntry>,
    /// Serialises the read-modify-write operations that Redis runs as Lua scripts with every
    /// write, as Redis's single thread does: a script must never write back a value that a
    /// write (a namespace bust, a delete, a store) replaced while it ran.
    scripts: Mutex<()>,
}

impl MemoryBackend {
    /// A backend holding at most `max_bytes` of keys and values.
    pub fn new(max_bytes: u64) -> Self {
        let entries = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, entry: &MemoryEntry| {
                let weight = key.len() + entry.value.len() + ENTRY_OVERHEAD_BYTES;
                u32::try_from(weight).unwrap_or(u32::MAX)
            })
            .expire_after(EntryDeadline)
            .build();
        Self {
            entries,
            scripts: Mutex::new(()),
        }
    }

    /// Drops every entry (an `auto` backend leaving its memory fallback).
    pub(super) fn clear(&self) {
        self.entries.invalidate_all();
    }

    fn script_lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.scripts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the value under `key`, keeping its expiry.
    fn replace_keeping_ttl(&self, key: &str, value: Bytes, old: &MemoryEntry) {
        let entry = MemoryEntry {
            value,
            expires_at: old.expires_at,
        };
        self.entries.insert(key.to_string(), entry);
    }

    fn live(&self, key: &str) -> Option<MemoryEntry> {
        self.entries
            .get(key)
            .filter(|entry| entry.is_live(Instant::now()))
    }

    pub(super) async fn get(&self, key: &str) -> Result<Option<Bytes>, BackendError> {
        Ok(self.live(key).map(|entry| entry.value))
    }

    pub(super) async fn set(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
    ) -> Result<(), BackendError> {
        // Writes wait for a script-like read-modify-write in progress (see `scripts`).
        let _write = self.script_lock();
        // A TTL past what Instant can represent means "practically never".
        let entry = MemoryEntry {
            value,
            expires_at: Instant::now().checked_add(ttl),
        };
        self.entries.insert(key.to_string(), entry);
        Ok(())
    }

    pub(super) async fn get_pair(
        &self,
        first: &str,
        second: &str,
    ) -> Result<(Option<Bytes>, Option<Bytes>), BackendError> {
        let value = |key| self.live(key).map(|entry| entry.value);
        Ok((value(first), value(second)))
    }

    /// Mirrors [`super::scripts::READ_TAGGED`].
    pub(super) async fn read_tagged(
        &self,
        entry: &str,
        record: &str,
        tag_prefix: &str,
    ) -> Result<TaggedRead, BackendError> {
        let value = |key: &str| self.live(key).map(|entry| entry.value);
        let (entry, record) = (value(entry), value(record));
        let tags = match entry.as_ref().map(codec::decode) {
            Some(Ok(decoded)) => decode_names(&decoded.tags)
                .map(|name| value(&format!("{tag_prefix}{name}")))
                .collect(),
            _ => Vec::new(),
        };
        Ok(TaggedRead {
            entry,
            record,
            tags,
        })
    }

    /// Mirrors [`super::scripts::STORE_TAGGED`].
    pub(super) async fn store_tagged(
        &self,
        entry: &str,
        value: Bytes,
        ttl: Duration,
        record: &str,
        tag_log: &str,
        tag_keys: &[String],
    ) -> Result<(), BackendError> {
        let _script = self.script_lock();
        let stored = MemoryEntry {
            value,
            expires_at: Instant::now().checked_add(ttl),
        };
        self.entries.insert(entry.to_string(), stored);
        let Some(record_entry) = self.live(record) else {
            return Ok(());
        };
        let Some(state) = NamespaceState::parse(&record_entry.value) else {
            return Ok(());
        };
        let keep_until = Instant::now().checked_add(ttl);
        // The record, and the tag log with it, outlive every entry stored under them.
        let record_until = match (record_entry.expires_at, keep_until) {
            (Some(at), Some(keep)) => Some(at.max(keep)),
            _ => None,
        };
        if record_until != record_entry.expires_at {
            let extended = MemoryEntry {
                value: record_entry.value,
                expires_at: record_until,
            };
            self.entries.insert(record.to_string(), extended);
            if let Some(log) = self.live(tag_log) {
                let extended = MemoryEntry {
                    value: log.value,
                    expires_at: keep_until,
                };
                self.entries.insert(tag_log.to_string(), extended);
            }
        }
        let mut log: Option<Option<TagLog>> = None;
        for tag_key in tag_keys {
            let existing = self.live(tag_key);
            let owned = existing
                .as_ref()
                .and_then(|tag| TagState::parse(&tag.value))
                .is_some_and(|tag| tag.generation == state.generation);
            let entry = match existing {
                Some(existing) if owned => MemoryEntry {
                    expires_at: match (existing.expires_at, keep_until) {
                        (Some(at), Some(keep)) => Some(at.max(keep)),
                        _ => None,
                    },
                    value: existing.value,
                },
                _ => {
                    let log = log.get_or_insert_with(|| {
                        self.live(tag_log)
                            .and_then(|entry| TagLog::parse(&entry.value))
                    });
                    let written = missing_tag_record(&state, log.as_ref(), tag_key);
                    MemoryEntry {
                        value: Bytes::from(written.to_record()),
                        expires_at: keep_until,
                    }
                }
            };
            self.entries.insert(tag_key.clone(), entry);
        }
        Ok(())
    }

    /// Mirrors [`super::scripts::INVALIDATE`].
    pub(super) async fn invalidate(
        &self,
        record: &str,
        tag_log: &str,
        tag_keys: &[String],
        mode: &str,
    ) -> Result<u64, BackendError> {
        let _script = self.script_lock();
        let Some(current) = self.live(record) else {
            return Ok(0);
        };
        let Some(mut state) = NamespaceState::parse(&current.value) else {
            return Ok(0);
        };
        let previous = self
            .live(tag_log)
            .and_then(|entry| TagLog::parse(&entry.value));
        let log = TagLog::after_invalidation(previous, &state, tag_keys, TAG_LOG_MAX_BYTES);
        let log = MemoryEntry {
            value: Bytes::from(log.to_record()),
            expires_at: current.expires_at,
        };
        self.entries.insert(tag_log.to_string(), log);
        state.clock += 1;
        let now = state.clock;
        if mode == "namespace-soft" {
            state.soft_at = now;
        }
        self.replace_keeping_ttl(record, Bytes::from(state.to_record()), &current);
        if mode == "namespace-soft" {
            return Ok(now);
        }
        for tag_key in tag_keys {
            let Some(existing) = self.live(tag_key) else {
                continue;
            };
            let Some(mut tag) = TagState::parse(&existing.value) else {
                continue;
            };
            if tag.generation != state.generation {
                continue;
            }
            if mode == "hard" {
                tag.hard_at = now;
            } else {
                tag.soft_at = now;
            }
            self.replace_keeping_ttl(tag_key, Bytes::from(tag.to_record()), &existing);
        }
        Ok(now)
    }

    /// Mirrors [`super::scripts::MARK_SOFT_PURGED`].
    pub(super) async fn mark_soft_purged(&self, key: &str) -> Result<bool, BackendError> {
        let _script = self.script_lock();
        let Some(existing) = self.live(key) else {
            return Ok(false);
        };
        if codec::decode(&existing.value).is_err() {
            return Ok(false);
        }
        let mut marked = existing.value.to_vec();
        marked[codec::HEADER_LEN - 1] |= FLAG_SOFT_PURGED;
        self.replace_keeping_ttl(key, Bytes::from(marked), &existing);
        Ok(true)
    }

    pub(super) async fn replace_existing(
        &self,
        key: &str,
        value: Bytes,
    ) -> Result<(), BackendError> {
        let _write = self.script_lock();
        if let Some(existing) = self.live(key) {
            let entry = MemoryEntry {
                value,
                expires_at: existing.expires_at,
            };
            self.entries.insert(key.to_string(), entry);
        }
        Ok(())
    }

    pub(super) async fn set_if_absent(
        &self,
        key: &str,
        value: Bytes,
        ttl: Duration,
    ) -> Result<Bytes, BackendError> {
        let _write = self.script_lock();
        let now = Instant::now();
        let entry =
            self.entries
                .entry(key.to_string())
                .and_compute_with(|existing| match existing {
                    Some(entry) if entry.value().is_live(now) => moka::ops::compute::Op::Nop,
                    _ => moka::ops::compute::Op::Put(MemoryEntry {
                        value,
                        expires_at: now.checked_add(ttl),
                    }),
                });
        match entry {
            moka::ops::compute::CompResult::Inserted(entry)
            | moka::ops::compute::CompResult::ReplacedWith(entry)
            | moka::ops::compute::CompResult::Unchanged(entry) => Ok(entry.into_value().value),
            moka::ops::compute::CompResult::StillNone(_)
            | moka::ops::compute::CompResult::Removed(_) => Err(BackendError::Command(
                "memory backend lost a value it just stored".into(),
            )),
        }
    }

    pub(super) async fn set_nx_px(
        &self,
        key: &str,
        value: &str,
        ttl: Duration,
    ) -> Result<bool, BackendError> {
        use moka::ops::compute::{CompResult, Op};
        let now = Instant::now();
        let result =
            self.entries
                .entry(key.to_string())
                .and_compute_with(|existing| match existing {
                    Some(entry) if entry.value().is_live(now) => Op::Nop,
                    _ => Op::Put(MemoryEntry {
                        value: Bytes::copy_from_slice(value.as_bytes()),
                        expires_at: now.checked_add(ttl),
                    }),
                });
        Ok(matches!(
            result,
            CompResult::Inserted(_) | CompResult::ReplacedWith(_)
        ))
    }

    pub(super) async fn delete_if_equals(
        &self,
        key: &str,
        value: &str,
    ) -> Result<bool, BackendError> {
        use moka::ops::compute::{CompResult, Op};
        let result =
            self.entries
                .entry(key.to_string())
                .and_compute_with(|existing| match existing {
                    Some(entry) if entry.value().value == value.as_bytes() => Op::Remove,
                    _ => Op::Nop,
                });
        Ok(matches!(result, CompResult::Removed(_)))
    }

    pub(super) async fn delete(&self, keys: &[String]) -> Result<u64, BackendError> {
        let _write = self.script_lock();
        let removed = keys
            .iter()
            .filter_map(|key| self.entries.remove(key))
            .filter(|entry| entry.is_live(Instant::now()))
            .count();
        Ok(removed as u64)
    }

    pub(super) async fn exists(&self, key: &str) -> Result<bool, BackendError> {
        Ok(self.live(key).is_some())
    }

    pub(super) async fn ttl(&self, key: &str) -> Result<KeyTtl, BackendError> {
        Ok(match self.live(key).map(|entry| entry.expires_at) {
            None => KeyTtl::Missing,
            Some(None) => KeyTtl::Persistent,
            Some(Some(at)) => KeyTtl::ExpiresIn(at.saturating_duration_since(Instant::now())),
        })
    }

    pub(super) async fn delete_matching(
        &self,
        start: &str,
        _pattern: &str,
    ) -> Result<u64, BackendError> {
        let doomed: Vec<String> = self
            .entries
            .iter()
            .filter(|(key, _)| key.starts_with(start))
            .map(|(key, _)| key.as_ref().clone())
            .collect();
        self.delete(&doomed).await
    }

    /// The cursor is an offset into the matching keys in sorted order.
    pub(super) async fn scan_page(
        &self,
        start: &str,
        _pattern: &str,
        cursor: u64,
        count: usize,
    ) -> Result<KeyPage, BackendError> {
        let now = Instant::now();
        let mut matching: Vec<(String, MemoryEntry)> = self
            .entries
            .iter()
            .filter(|(key, entry)| key.starts_with(start) && entry.is_live(now))
            .map(|(key, entry)| (key.as_ref().clone(), entry))
            .collect();
        matching.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let from = usize::try_from(cursor)
            .unwrap_or(usize::MAX)
            .min(matching.len());
        let to = from.saturating_add(count).min(matching.len());
        let keys = matching[from..to]
            .iter()
            .map(|(key, entry)| KeyInfo {
                key: key.clone(),
                ttl: match entry.expires_at {
                    None => KeyTtl::Persistent,
                    Some(at) => KeyTtl::ExpiresIn(at.saturating_duration_since(now)),
                },
                size: entry.value.len() as u64,
            })
            .collect();
        let next_cursor = if to >= matching.len() { 0 } else { to as u64 };
        Ok(KeyPage { keys, next_cursor })
    }

    pub(super) async fn ping(&self) -> Result<Duration, BackendError> {
        Ok(Duration::ZERO)
    }
}
