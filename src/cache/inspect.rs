//! Read-only views of the cache for operators: paged key listings and single-entry inspection.
//!
//! Kept apart from the request path: these calls cost more than one round trip and exist for
//! the admin routes, never for serving.

use serde::Serialize;

use super::backend::{KeyPage, KeyTtl};
use super::codec::{self, PayloadEncoding};
use super::key::Namespace;
use super::manager::{CacheError, CacheManager};

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
    /// Whether the entry belongs to the namespace's current generation (a live entry); `None`
    /// for values stored without a generation.
    pub current_generation: Option<bool>,
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
        let generation_key = self.layout().generation_key(ns);
        let pair = self.backend().get_pair(&full_key, &generation_key).await;
        let (stored, generation) = self.observe_global(pair)?;
        let Some(stored) = stored else {
            return Ok(None);
        };
        let ttl = self.observe_global(self.backend().ttl(&full_key).await)?;
        let mut view = EntryView {
            key: full_key,
            ttl,
            stored_bytes: stored.len(),
            encoding: "identity",
            current_generation: None,
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
        view.current_generation = decoded.generation.map(|recorded| {
            generation
                .as_deref()
                .and_then(|g| std::str::from_utf8(g).ok())
                .and_then(|g| g.parse::<u64>().ok())
                == Some(recorded)
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
