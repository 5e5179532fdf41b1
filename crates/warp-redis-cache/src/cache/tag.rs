//! Tags: names an entry is filed under inside its namespace (`item:42`), so that everything
//! filed under a name can be invalidated at once, in O(1) whatever the number of entries.
//!
//! A tag is only a record (see [`super::stamp`]); invalidating it bumps the namespace clock and
//! writes the clock into the record. Entries are never listed or touched, and a read checks the
//! records of its entry's tags in the same round trip as the entry (a Lua script).

use std::fmt;
use std::sync::Arc;

/// Longest tag accepted.
pub const MAX_TAG_LEN: usize = 128;
/// Most tags one entry may carry; a response with more is not stored.
pub const MAX_TAGS_PER_ENTRY: usize = 256;

/// A validated tag name; cheap to clone.
///
/// ```
/// use warp_redis_cache::Tag;
/// assert!(Tag::new("item:42").is_ok());
/// assert!(Tag::new("two words").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(Arc<str>);

/// Why a tag was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid tag {name:?}: {reason}")]
pub struct InvalidTag {
    /// The name as given (truncated to 80 characters).
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Tag {
    /// Validates `name`: ASCII letters, digits and `_ . - : / = @ +`; 1 to 128 characters.
    pub fn new(name: &str) -> Result<Self, InvalidTag> {
        let reason = if name.is_empty() {
            Some("must not be empty")
        } else if name.len() > MAX_TAG_LEN {
            Some("must be at most 128 characters")
        } else if !name.bytes().all(is_tag_byte) {
            Some(
                "may only contain ASCII letters, digits and '_', '.', '-', ':', '/', '=', '@', '+'",
            )
        } else {
            None
        };
        match reason {
            None => Ok(Self(Arc::from(name))),
            Some(reason) => Err(InvalidTag {
                name: name.chars().take(80).collect(),
                reason,
            }),
        }
    }

    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_tag_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b':' | b'/' | b'=' | b'@' | b'+')
}

/// The tag section of an entry: names separated by `\n`, sorted and without duplicates.
pub fn encode_names(tags: &[Tag]) -> Vec<u8> {
    let mut sorted: Vec<&str> = tags.iter().map(Tag::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted.join("\n").into_bytes()
}

/// The names in an entry's tag section.
pub fn decode_names(section: &[u8]) -> impl Iterator<Item = &str> {
    section
        .split(|b| *b == b'\n')
        .filter(|name| !name.is_empty())
        .map(|name| std::str::from_utf8(name).unwrap_or_default())
}

/// How an invalidation treats what it reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalidation {
    /// Never served again.
    Hard,
    /// Served only as stale (stale-while-revalidate, stale-if-error) until refreshed.
    Soft,
}

impl Invalidation {
    pub(super) fn script_mode(self) -> &'static str {
        match self {
            Invalidation::Hard => "hard",
            Invalidation::Soft => "soft",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_alphabet_is_enforced() {
        assert!(Tag::new("item:42").is_ok());
        assert!(Tag::new("user@example.org/orders=open+1").is_ok());
        for bad in ["", "a b", "a\nb", "a*", "é", &"x".repeat(129)] {
            assert!(Tag::new(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn names_are_sorted_deduplicated_and_read_back() {
        let tags: Vec<Tag> = ["b", "a", "b"]
            .iter()
            .map(|t| Tag::new(t).unwrap())
            .collect();
        let section = encode_names(&tags);
        assert_eq!(section, b"a\nb");
        assert_eq!(decode_names(&section).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(decode_names(b"").count(), 0);
    }
}
