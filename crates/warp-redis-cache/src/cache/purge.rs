//! Invalidation by tag and soft purges: the [`CacheManager`] methods that reach entries through
//! their namespace and tag records (see [`super::stamp`]) without listing them.

use super::backend_types::BackendError;
use super::invalidation::Invalidated;
use super::key::Namespace;
use super::manager::{CacheError, CacheManager};
use super::tag::{Invalidation, Tag};

impl CacheManager {
    /// Invalidates every entry of `ns` filed under one of `tags`, in one round trip whatever
    /// their number. Race-free: an entry whose request started before this call is dead (or
    /// stale, for [`Invalidation::Soft`]) even if it is stored afterwards.
    pub async fn invalidate_tags(
        &self,
        ns: &Namespace,
        tags: &[Tag],
        how: Invalidation,
    ) -> Result<(), CacheError> {
        if tags.is_empty() {
            return Ok(());
        }
        let record = self.layout().generation_key(ns);
        let tag_keys: Vec<String> = tags
            .iter()
            .map(|tag| self.layout().tag_key(ns, tag.as_str()))
            .collect();
        let result = self
            .backend()
            .invalidate(
                &record,
                &self.layout().tag_log_key(ns),
                &tag_keys,
                how.script_mode(),
            )
            .await;
        let names = tags.iter().map(Tag::as_str).collect();
        self.announce(Invalidated::Tags(ns, names)).await;
        self.observe(ns, result).map(|_| ())
    }

    /// Marks every entry of `ns` stale at once (O(1)): they are served only under their stale
    /// windows until refreshed.
    pub async fn soft_purge_namespace(&self, ns: &Namespace) -> Result<(), CacheError> {
        let record = self.layout().generation_key(ns);
        let result = self
            .backend()
            .invalidate(
                &record,
                &self.layout().tag_log_key(ns),
                &[],
                "namespace-soft",
            )
            .await;
        self.announce(Invalidated::Namespace(ns)).await;
        self.observe(ns, result).map(|_| ())
    }

    /// Marks the entries under `keys` of `ns` stale, in place; returns how many existed.
    pub async fn soft_purge_keys(
        &self,
        ns: &Namespace,
        keys: &[String],
    ) -> Result<u64, CacheError> {
        let mut marked = 0;
        for key in keys {
            let full_key = self.layout().full_key(ns, key);
            let result: Result<bool, BackendError> =
                self.backend().mark_soft_purged(&full_key).await;
            self.announce(Invalidated::Key(ns, key)).await;
            if self.observe(ns, result)? {
                marked += 1;
            }
        }
        Ok(marked)
    }
}
