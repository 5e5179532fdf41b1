//! Cache key layout: `<prefix>:<namespace>:<key>` (`{<prefix>:<namespace>}:<key>` on a Redis
//! Cluster), and the validation that keeps it unambiguous.
//!
//! Namespaces are a closed alphabet (ASCII letters, digits, `_ . -`, 1 to 64 characters), so a
//! namespace can never contain `:` or a glob character and clearing one namespace can never
//! reach another. Keys inside a namespace are free-form; patterns built from prefix and namespace
//! escape glob characters anyway, so the mechanism does not depend on the validation alone.

use std::fmt;
use std::sync::Arc;

/// Longest namespace accepted.
pub const MAX_NAMESPACE_LEN: usize = 64;
/// Longest key prefix accepted.
pub const MAX_PREFIX_LEN: usize = 64;

/// A validated namespace name; cheap to clone.
///
/// ```
/// use warp_redis_cache::Namespace;
/// assert!(Namespace::new("items").is_ok());
/// assert!(Namespace::new("a*").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace(Arc<str>);

/// Why a namespace was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid namespace {name:?}: {reason}")]
pub struct InvalidNamespace {
    /// The name as given (truncated to 80 characters).
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Namespace {
    /// Validates `name`: ASCII letters, digits, `_`, `.`, `-`; 1 to 64 characters.
    pub fn new(name: &str) -> Result<Self, InvalidNamespace> {
        let reason = if name.is_empty() {
            Some("must not be empty")
        } else if name.len() > MAX_NAMESPACE_LEN {
            Some("must be at most 64 characters")
        } else if !name.bytes().all(is_namespace_byte) {
            Some("may only contain ASCII letters, digits, '_', '.' and '-'")
        } else {
            None
        };
        match reason {
            None => Ok(Self(Arc::from(name))),
            Some(reason) => Err(InvalidNamespace {
                name: name.chars().take(80).collect(),
                reason,
            }),
        }
    }

    /// The namespace as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_namespace_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// Checks a key prefix: the namespace alphabet, 1 to 64 characters.
///
/// No `:`: with prefixes `a` and `a:b` on one Redis, `a:b:ns:key` would belong to both.
pub fn validate_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN {
        return Err("must be 1 to 64 characters".into());
    }
    if !prefix.bytes().all(is_namespace_byte) {
        return Err(format!(
            "{prefix:?} may only contain ASCII letters, digits, '_', '.' and '-'"
        ));
    }
    Ok(())
}

/// The segment that marks a namespace's generation key; `#` is outside the namespace alphabet,
/// so no namespace's entries can collide with it or be matched by its clear pattern.
const GENERATION_SEGMENT: &str = "#gen";

/// Builds full keys and SCAN patterns under one prefix.
///
/// Two layouts. Standalone Redis: `<prefix>:<namespace>:<key>`, with the namespace's records
/// under `<prefix>:#gen:<namespace>`, `<prefix>:#tag:<namespace>:<tag>`,
/// `<prefix>:#tags:<namespace>` and `<prefix>:#lock:<namespace>:<key>`. Redis Cluster: every
/// key of a namespace starts with the hash tag `{<prefix>:<namespace>}`, so entry, namespace
/// record, tag records, tag log and refill locks share one hash slot:
/// `{<prefix>:<namespace>}:<key>`, `{..}#gen`, `{..}#tag:<tag>`, `{..}#tags`, `{..}#lock:<key>`.
/// That keeps a hit one `MGET` (or one script) and every invalidation one
/// atomic script; the price is that a namespace lives on one master, so load spreads over
/// masters by namespace, not by key (docs/scaling.md).
///
/// ```
/// use warp_redis_cache::{admin::KeyLayout, Namespace};
///
/// let items = Namespace::new("items").unwrap();
/// assert_eq!(KeyLayout::new("wrc").full_key(&items, "GET:/items/1"), "wrc:items:GET:/items/1");
/// let clustered = KeyLayout::clustered("wrc");
/// assert_eq!(clustered.full_key(&items, "GET:/items/1"), "{wrc:items}:GET:/items/1");
/// assert_eq!(clustered.generation_key(&items), "{wrc:items}#gen");
/// ```
#[derive(Debug, Clone)]
pub struct KeyLayout {
    prefix: Arc<str>,
    clustered: bool,
}

impl KeyLayout {
    /// The standalone layout for `prefix`, which must be a valid key prefix
    /// ([`CacheConfig::validate`](crate::CacheConfig::validate) checks it).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: Arc::from(prefix),
            clustered: false,
        }
    }

    /// The Redis Cluster layout for `prefix`: one hash slot per namespace.
    pub fn clustered(prefix: &str) -> Self {
        Self {
            prefix: Arc::from(prefix),
            clustered: true,
        }
    }

    /// Whether this is the Redis Cluster layout.
    pub fn is_clustered(&self) -> bool {
        self.clustered
    }

    /// The prefix every key starts with (after the `{` of the cluster layout).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Starts a namespace-scoped key: `{<prefix>:<namespace>}` (cluster) or
    /// `<prefix>:<segment>:<namespace>` (standalone), with room for `extra` more bytes.
    fn namespace_key(&self, namespace: &Namespace, segment: &str, extra: usize) -> String {
        let ns = namespace.as_str();
        let mut key =
            String::with_capacity(self.prefix.len() + ns.len() + segment.len() + extra + 4);
        if self.clustered {
            key.push('{');
            key.push_str(&self.prefix);
            key.push(':');
            key.push_str(ns);
            key.push('}');
            key.push_str(segment);
        } else {
            key.push_str(&self.prefix);
            key.push(':');
            if !segment.is_empty() {
                key.push_str(segment);
                key.push(':');
            }
            key.push_str(ns);
        }
        key
    }

    /// `<prefix>:<namespace>:<key>`, or `{<prefix>:<namespace>}:<key>`.
    pub fn full_key(&self, namespace: &Namespace, key: &str) -> String {
        let mut full = self.namespace_key(namespace, "", key.len() + 1);
        full.push(':');
        full.push_str(key);
        full
    }

    /// `<prefix>:#gen:<namespace>`, or `{<prefix>:<namespace>}#gen`: where the namespace's
    /// current generation is kept.
    pub fn generation_key(&self, namespace: &Namespace) -> String {
        self.namespace_key(namespace, GENERATION_SEGMENT, 0)
    }

    /// `<prefix>:#tag:<namespace>:`, or `{<prefix>:<namespace>}#tag:`: what every tag record
    /// of the namespace starts with.
    pub fn tag_prefix(&self, namespace: &Namespace) -> String {
        let mut key = self.namespace_key(namespace, "#tag", 1);
        key.push(':');
        key
    }

    /// The tag prefix followed by `tag`: the record of one tag.
    pub fn tag_key(&self, namespace: &Namespace, tag: &str) -> String {
        let mut key = self.tag_prefix(namespace);
        key.push_str(tag);
        key
    }

    /// `<prefix>:#tags:<namespace>`, or `{<prefix>:<namespace>}#tags`: the namespace's tag
    /// log, which lists the tags invalidated lately (see `cache::stamp`).
    pub fn tag_log_key(&self, namespace: &Namespace) -> String {
        self.namespace_key(namespace, "#tags", 0)
    }

    /// `<prefix>:#lock:<namespace>:<key>`, or `{<prefix>:<namespace>}#lock:<key>`: the refill
    /// lock of one entry.
    pub fn lock_key(&self, namespace: &Namespace, key: &str) -> String {
        let mut lock = self.namespace_key(namespace, "#lock", key.len() + 1);
        lock.push(':');
        lock.push_str(key);
        lock
    }

    /// The SCAN pattern matching every entry of `namespace`, and only those.
    pub fn namespace_pattern(&self, namespace: &Namespace) -> String {
        let mut pattern = escape_glob(&self.namespace_start(namespace));
        pattern.push('*');
        pattern
    }

    /// `<prefix>#intent:<namespace>`: the hash of the writes under way that may change the
    /// namespace (see `cache::intents`). Outside the prefix's patterns, like the lineage
    /// record: clearing the cache must not forget a write that may still need its bust.
    pub fn intents_key(&self, namespace: &Namespace) -> String {
        format!("{}#intent:{namespace}", self.prefix)
    }

    /// `<prefix>#alive:<instance>`: an instance's heartbeat (see `cache::intents`).
    pub fn heartbeat_key(&self, instance: &str) -> String {
        format!("{}#alive:{instance}", self.prefix)
    }

    /// `<prefix>#lineage`: which Redis server process the data under the prefix was last
    /// checked against (see `cache::redis::lineage`). Outside the prefix's patterns (`#` is
    /// not in the prefix alphabet), so clears never delete it and listings never show it.
    pub fn lineage_key(&self) -> String {
        format!("{}#lineage", self.prefix)
    }

    /// The SCAN pattern matching every namespace record under the prefix, and only those.
    pub fn namespace_records_pattern(&self) -> String {
        if self.clustered {
            format!(
                "{}*}}{GENERATION_SEGMENT}",
                escape_glob(&self.prefix_start())
            )
        } else {
            let mut pattern = escape_glob(&format!("{}:{GENERATION_SEGMENT}:", self.prefix));
            pattern.push('*');
            pattern
        }
    }

    /// The SCAN pattern matching every key under the prefix, and only those.
    pub fn prefix_pattern(&self) -> String {
        let mut pattern = escape_glob(&self.prefix_start());
        pattern.push('*');
        pattern
    }

    /// The literal text every entry of `namespace` starts with.
    pub fn namespace_start(&self, namespace: &Namespace) -> String {
        let mut start = self.namespace_key(namespace, "", 1);
        start.push(':');
        start
    }

    /// The literal text every key under the prefix starts with: `<prefix>:` or `{<prefix>:`.
    pub fn prefix_start(&self) -> String {
        if self.clustered {
            format!("{{{}:", self.prefix)
        } else {
            format!("{}:", self.prefix)
        }
    }

    /// Splits a full key back into namespace and key, when it is an entry of ours (not a
    /// generation, tag or lock record, nor a key of another app).
    pub fn split<'a>(&self, full_key: &'a str) -> Option<(&'a str, &'a str)> {
        if self.clustered {
            let rest = full_key
                .strip_prefix('{')?
                .strip_prefix(self.prefix.as_ref())?
                .strip_prefix(':')?;
            let (namespace, key) = rest.split_once('}')?;
            return Some((namespace, key.strip_prefix(':')?));
        }
        let rest = full_key
            .strip_prefix(self.prefix.as_ref())?
            .strip_prefix(':')?;
        // Records sit under `#gen`, `#tag`, `#tags` and `#lock`; `#` is never part of a namespace.
        rest.split_once(':')
            .filter(|(namespace, _)| !namespace.starts_with('#'))
    }
}

/// Escapes Redis glob metacharacters (`* ? [ ] \`) so the text matches only itself.
pub fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_alphabet_is_enforced() {
        for good in ["items", "a", "A-b_c.d", &"x".repeat(64)] {
            assert!(Namespace::new(good).is_ok(), "{good}");
        }
        for bad in ["", "a*", "a?", "a:b", "a b", "é", "[ab]", &"x".repeat(65)] {
            assert!(Namespace::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_and_patterns_are_laid_out() {
        let layout = KeyLayout::new("wrc");
        let ns = Namespace::new("items").expect("valid");
        assert_eq!(
            layout.full_key(&ns, "GET:/items/1"),
            "wrc:items:GET:/items/1"
        );
        assert_eq!(layout.namespace_pattern(&ns), "wrc:items:*");
        assert_eq!(layout.prefix_pattern(), "wrc:*");
        assert_eq!(layout.split("wrc:items:GET:/x"), Some(("items", "GET:/x")));
        assert_eq!(layout.split("other:items:x"), None);
        assert_eq!(layout.generation_key(&ns), "wrc:#gen:items");
        assert!(validate_prefix("my-app.v2").is_ok());
        assert!(validate_prefix("a:b").is_err());
    }

    #[test]
    fn cluster_layout_puts_a_namespace_in_one_slot_and_patterns_match_only_it() {
        let layout = KeyLayout::clustered("wrc");
        let ns = Namespace::new("items").expect("valid");
        let keys = [
            layout.full_key(&ns, "GET:/items/1"),
            layout.generation_key(&ns),
            layout.tag_key(&ns, "item:1"),
            layout.lock_key(&ns, "GET:/items/1"),
        ];
        for key in &keys {
            assert!(key.starts_with("{wrc:items}"), "{key}");
            assert!(key.starts_with(&layout.prefix_start()), "{key}");
        }
        assert_eq!(layout.namespace_pattern(&ns), "{wrc:items}:*");
        assert_eq!(layout.prefix_pattern(), "{wrc:*");
        assert!(!keys[1].starts_with(&layout.namespace_start(&ns)));
        assert!(!keys[2].starts_with(&layout.namespace_start(&ns)));
        assert_eq!(layout.split(&keys[0]), Some(("items", "GET:/items/1")));
        assert_eq!(layout.split(&keys[1]), None);
        assert_eq!(layout.split("wrc:items:x"), None);
        let other = Namespace::new("items2").expect("valid");
        assert!(!layout
            .full_key(&other, "x")
            .starts_with(&layout.namespace_start(&ns)));
        assert_eq!(layout.tag_prefix(&ns), "{wrc:items}#tag:");
        assert_eq!(layout.tag_log_key(&ns), "{wrc:items}#tags");
        assert_eq!(layout.split("{wrc:items}#tags"), None);
    }

    #[test]
    fn standalone_layout_is_unchanged() {
        let layout = KeyLayout::new("wrc");
        let ns = Namespace::new("items").expect("valid");
        assert_eq!(layout.tag_prefix(&ns), "wrc:#tag:items:");
        assert_eq!(layout.tag_key(&ns, "t"), "wrc:#tag:items:t");
        assert_eq!(layout.tag_log_key(&ns), "wrc:#tags:items");
        assert_eq!(layout.split("wrc:#tags:items"), None);
        assert_eq!(layout.lock_key(&ns, "k"), "wrc:#lock:items:k");
        assert_eq!(layout.namespace_start(&ns), "wrc:items:");
        assert_eq!(layout.prefix_start(), "wrc:");
        assert_eq!(
            layout.split(&layout.full_key(&ns, "GET:/a")),
            Some(("items", "GET:/a"))
        );
        for record in [
            layout.generation_key(&ns),
            layout.tag_key(&ns, "t"),
            layout.lock_key(&ns, "GET:/a"),
        ] {
            assert_eq!(layout.split(&record), None, "{record}");
        }
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(escape_glob(r"a*b?[c]\"), r"a\*b\?\[c\]\\");
    }
}
