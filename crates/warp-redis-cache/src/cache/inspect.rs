//! Read-only views of the cache for operators: paged key listings and single-entry inspection.
//!
//! Kept apart from the request path: these calls cost more than one round trip and exist for
//! the admin routes, never for serving.

use std::collections::BTreeMap;

use serde::Serialize;

use super::backend_types::{KeyPage, KeyTtl, TaggedRead};
use super::codec::{self, PayloadEncoding};
use super::key::{escape_glob, Namespace};
use super::manager::{CacheError, CacheManager};
use super::stamp::Generation;
use super::stamp::{judge, NamespaceState, Stamp, TagState, Validity};
use super::tag::{decode_names, Tag};

/// Largest body shown by [`CacheManager::inspect`].
const MAX_BODY_PREVIEW: usize = 64 * 1024;

/// What is stored under one key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntryView {
    /// The full key.
    pub key: String,
    /// Remaining lifetime.
    pub ttl: KeyTtl,
    /// Bytes stored (header and compression included).
    pub stored_bytes: usize,
    /// `"gzip"` or `"identity"`.
    pub encoding: &'static str,
    /// Whether the entry may be served (`valid`), only as stale (`soft_purged`) or not at all
    /// (`dead`: another generation, or a tag invalidated after it was stored); `None` for values
    /// stored without a generation.
    pub validity: Option<&'static str>,
    /// The tags the entry is filed under.
    pub tags: Vec<String>,
    /// The metadata section (for HTTP responses: status, headers, ETag, times), as JSON.
    pub meta: Option<serde_json::Value>,
    /// The body as text, when it is UTF-8 (inflated; at most 64 KiB).
    pub body: Option<String>,
    /// Why the value could not be decoded, when it could not.
    pub decode_error: Option<String>,
}

/// What a survey of a namespace found: its entries that may still be served, in all and per
/// tag asked about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Survey {
    /// Entries not invalidated (valid or soft-purged).
    pub live_entries: u64,
    /// For each tag asked about, the live entries filed under it.
    pub by_tag: BTreeMap<String, u64>,
    /// Whether the survey stopped at [`MAX_SURVEYED_KEYS`] before the end.
    pub truncated: bool,
}

/// Largest SCAN `COUNT` hint a listing grows to while it finds nothing.
const MAX_SCAN_HINT: usize = 10_000;

/// Most keys one survey reads.
pub const MAX_SURVEYED_KEYS: u64 = 100_000;

/// How an entry stands, judged from what a tagged read returned; `None` without a generation.
fn validity_of(decoded: &codec::Decoded, read: &TaggedRead) -> Option<Validity> {
    let generation = decoded.generation?;
    let state = read.record.as_deref().and_then(NamespaceState::parse);
    let stamp = Stamp {
        generation: Generation::from_value(generation),
        clock: decoded.clock.unwrap_or(0),
    };
    let tags = read
        .tags
        .iter()
        .map(|record| record.as_deref().and_then(TagState::parse));
    Some(match state {
        Some(state) if decode_names(&decoded.tags).count() == read.tags.len() => {
            judge(stamp, decoded.soft_purged, &state, tags)
        }
        _ => Validity::Dead,
    })
}

impl CacheManager {
    /// Counts the entries of `ns` that may still be served, in all and per tag of `tags`
    /// (for dry runs of purges). Reads every entry: O(entries), admin use only, stops after
    /// [`MAX_SURVEYED_KEYS`] keys.
    pub async fn survey(&self, ns: &Namespace, tags: &[Tag]) -> Result<Survey, CacheError> {
        let mut survey = Survey {
            by_tag: tags.iter().map(|tag| (tag.to_string(), 0)).collect(),
            ..Survey::default()
        };
        let record_key = self.layout().generation_key(ns);
        let tag_prefix = self.layout().tag_prefix(ns);
        let (mut cursor, mut seen) = (0, 0u64);
        loop {
            let page = self.list_keys(Some(ns), None, cursor, 500).await?;
            for info in &page.keys {
                seen += 1;
                let read = self
                    .backend()
                    .read_tagged(&info.key, &record_key, &tag_prefix)
                    .await;
                let read = self.observe_global(read)?;
                let Some(decoded) = read.entry.as_ref().and_then(|v| codec::decode(v).ok()) else {
                    continue;
                };
                if matches!(validity_of(&decoded, &read), None | Some(Validity::Dead)) {
                    continue;
                }
                survey.live_entries += 1;
                for name in decode_names(&decoded.tags) {
                    if let Some(count) = survey.by_tag.get_mut(name) {
                        *count += 1;
                    }
                }
            }
            cursor = page.next_cursor;
            if cursor == 0 {
                return Ok(survey);
            }
            if seen >= MAX_SURVEYED_KEYS {
                survey.truncated = true;
                return Ok(survey);
            }
        }
    }

    /// Whether the entry under `key` of `ns` exists and may still be served.
    pub async fn is_live(&self, ns: &Namespace, key: &str) -> Result<bool, CacheError> {
        let full_key = self.layout().full_key(ns, key);
        let record_key = self.layout().generation_key(ns);
        let tag_prefix = self.layout().tag_prefix(ns);
        let read = self
            .backend()
            .read_tagged(&full_key, &record_key, &tag_prefix)
            .await;
        let read = self.observe(ns, read)?;
        let Some(decoded) = read.entry.as_ref().and_then(|v| codec::decode(v).ok()) else {
            return Ok(false);
        };
        Ok(matches!(
            validity_of(&decoded, &read),
            Some(Validity::Valid | Validity::SoftPurged)
        ))
    }

    /// One page of the entries under the prefix, or under `namespace` (and then, when given,
    /// only keys starting with `key_prefix`). Generation, tag and lock records are left out.
    ///
    /// `count` is a hint: a page holds at least one entry unless the listing is complete
    /// (`next_cursor` 0), and may hold more than `count`. SCAN can return nothing for many
    /// calls in a sparse keyspace, so the page keeps scanning, with a growing hint, until it has
    /// `count` entries or the scan is over; an operator never gets an empty page to step over.
    pub async fn list_keys(
        &self,
        namespace: Option<&Namespace>,
        key_prefix: Option<&str>,
        cursor: u64,
        count: usize,
    ) -> Result<KeyPage, CacheError> {
        let layout = self.layout();
        let mut start = match namespace {
            Some(ns) => layout.namespace_start(ns),
            None => layout.prefix_start(),
        };
        if let (Some(_), Some(key_prefix)) = (namespace, key_prefix) {
            start.push_str(key_prefix);
        }
        let mut pattern = escape_glob(&start);
        pattern.push('*');
        let mut page = KeyPage {
            keys: Vec::new(),
            next_cursor: cursor,
        };
        let mut hint = count.max(1);
        loop {
            let result = self
                .backend()
                .scan_page(&start, &pattern, page.next_cursor, hint)
                .await;
            let scanned = self.observe_global(result)?;
            let before = page.keys.len();
            page.keys.extend(
                (scanned.keys.into_iter()).filter(|info| layout.split(&info.key).is_some()),
            );
            page.next_cursor = scanned.next_cursor;
            if page.next_cursor == 0 || page.keys.len() >= count {
                return Ok(page);
            }
            if page.keys.len() == before {
                hint = (hint * 2).min(MAX_SCAN_HINT);
            }
        }
    }

    /// What is stored under `key` in `ns`, or `None` when nothing is.
    pub async fn inspect(
        &self,
        ns: &Namespace,
        key: &str,
    ) -> Result<Option<EntryView>, CacheError> {
        let full_key = self.layout().full_key(ns, key);
        let record_key = self.layout().generation_key(ns);
        let tag_prefix = self.layout().tag_prefix(ns);
        let read = self
            .backend()
            .read_tagged(&full_key, &record_key, &tag_prefix)
            .await;
        let read = self.observe_global(read)?;
        let Some(stored) = read.entry.clone() else {
            return Ok(None);
        };
        let ttl = self.observe_global(self.backend().ttl(&full_key).await)?;
        let mut view = EntryView {
            key: full_key,
            ttl,
            stored_bytes: stored.len(),
            encoding: "identity",
            validity: None,
            tags: Vec::new(),
            meta: None,
            body: None,
            decode_error: None,
        };
        let decoded = match codec::decode(&stored) {
            Ok(decoded) => decoded,
            Err(err) => {
                view.decode_error = Some(err.to_string());
                return Ok(Some(view));
            }
        };
        if decoded.encoding == PayloadEncoding::Gzip {
            view.encoding = "gzip";
        }
        view.tags = decode_names(&decoded.tags).map(str::to_string).collect();
        view.validity = validity_of(&decoded, &read).map(|validity| match validity {
            Validity::Valid => "valid",
            Validity::SoftPurged => "soft_purged",
            Validity::Dead => "dead",
        });
        view.meta = super::entry_meta::EntryMeta::decode(&decoded.meta)
            .and_then(|meta| serde_json::to_value(meta).ok())
            .or_else(|| serde_json::from_slice(&decoded.meta).ok());
        match decoded.into_plain() {
            Ok(plain) => {
                let shown = &plain[..plain.len().min(MAX_BODY_PREVIEW)];
                view.body = std::str::from_utf8(shown).ok().map(str::to_string);
            }
            Err(err) => view.decode_error = Some(err.to_string()),
        }
        Ok(Some(view))
    }
}
