//! Cache key layout: `<prefix>:<namespace>:<key>`, and the validation that keeps it unambiguous.
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
/// use warp_redis_cache::cache::Namespace;
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
#[derive(Debug, Clone)]
pub struct KeyLayout {
    prefix: Arc<str>,
}

impl KeyLayout {
    /// A layout for `prefix`, which must pass [`validate_prefix`] (settings check it at load).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: Arc::from(prefix),
        }
    }

    /// The prefix every key starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `<prefix>:<namespace>:<key>`.
    pub fn full_key(&self, namespace: &Namespace, key: &str) -> String {
        let mut full =
            String::with_capacity(self.prefix.len() + namespace.as_str().len() + key.len() + 2);
        full.push_str(&self.prefix);
        full.push(':');
        full.push_str(namespace.as_str());
        full.push(':');
        full.push_str(key);
        full
    }

    /// `<prefix>:#gen:<namespace>`: where the namespace's current generation is kept.
    pub fn generation_key(&self, namespace: &Namespace) -> String {
        format!("{}:{GENERATION_SEGMENT}:{}", self.prefix, namespace)
    }

    /// `<prefix>:#tag:<namespace>:`: what every tag record of the namespace starts with.
    pub fn tag_prefix(&self, namespace: &Namespace) -> String {
        format!("{}:#tag:{}:", self.prefix, namespace)
    }

    /// `<prefix>:#tag:<namespace>:<tag>`: the record of one tag.
    pub fn tag_key(&self, namespace: &Namespace, tag: &str) -> String {
        let mut key = self.tag_prefix(namespace);
        key.push_str(tag);
        key
    }

    /// `<prefix>:#lock:<namespace>:<key>`: the refill lock of one entry.
    pub fn lock_key(&self, namespace: &Namespace, key: &str) -> String {
        format!("{}:#lock:{}:{key}", self.prefix, namespace)
    }

    /// The SCAN pattern matching every key of `namespace`, and only those.
    pub fn namespace_pattern(&self, namespace: &Namespace) -> String {
        format!(
            "{}:{}:*",
            escape_glob(&self.prefix),
            escape_glob(namespace.as_str())
        )
    }

    /// The SCAN pattern matching every key under the prefix, and only those.
    pub fn prefix_pattern(&self) -> String {
        format!("{}:*", escape_glob(&self.prefix))
    }

    /// The literal text every key of `namespace` starts with.
    pub fn namespace_start(&self, namespace: &Namespace) -> String {
        format!("{}:{}:", self.prefix, namespace)
    }

    /// The literal text every key under the prefix starts with.
    pub fn prefix_start(&self) -> String {
        format!("{}:", self.prefix)
    }

    /// Splits a full key back into namespace and key, when it is one of ours.
    pub fn split<'a>(&self, full_key: &'a str) -> Option<(&'a str, &'a str)> {
        let rest = full_key
            .strip_prefix(self.prefix.as_ref())?
            .strip_prefix(':')?;
        rest.split_once(':')
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
    fn glob_characters_are_escaped() {
        assert_eq!(escape_glob(r"a*b?[c]\"), r"a\*b\?\[c\]\\");
    }
}
