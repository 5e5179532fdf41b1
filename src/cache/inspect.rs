//! Read-only views of the cache for operators: paged key listings and single-entry inspection.
//!
//! Kept apart from the request path: these calls cost more than one round trip and exist for
//! the admin routes, never for serving.

use serde::Serialize;

use super::backend::{KeyPage, KeyTtl};
use super::codec::{self, PayloadEncoding};
use super::generations::Generation;
use super::key::Namespace;
use super::manager::{CacheError, CacheManager};
use super::stamp::{judge, NamespaceState, Stamp, TagState, Validity};
use super::tags::decode_names;

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

impl CacheManager {
    /// One page of the keys under the prefix, or under `namespace` when given.
    pub async fn list_keys(
        &self,
        namespace: Option<&Namespace>,
        cursor: u64,
        count: usize,
    ) -> Result<KeyPage, CacheError> {
        let layout = self.layout();
        let (start, pattern) = match namespace {
            Some(ns) => (layout.namespace_start(ns), layout.namespace_pattern(ns)),
            None => (layout.prefix_start(), layout.prefix_pattern()),
        };
        let result = self
            .backend()
            .scan_page(&start, &pattern, cursor, count)
            .await;
        self.observe_global(result)
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
        let Some(stored) = read.entry else {
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
        view.validity = decoded.generation.map(|generation| {
            let state = read.record.as_deref().and_then(NamespaceState::parse);
            let stamp = Stamp {
                generation: Generation::from_value(generation),
                clock: decoded.clock.unwrap_or(0),
            };
            let tags = read
                .tags
                .iter()
                .map(|record| record.as_deref().and_then(TagState::parse));
            let validity = match state {
                Some(state) if view.tags.len() == read.tags.len() => {
                    judge(stamp, decoded.soft_purged, &state, tags)
                }
                _ => Validity::Dead,
            };
            match validity {
                Validity::Valid => "valid",
                Validity::SoftPurged => "soft_purged",
                Validity::Dead => "dead",
            }
        });
        view.meta = serde_json::from_slice(&decoded.meta).ok();
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
