//! `keys`: cached entries with their TTL and size, a page at a time (or every page with
//! `--all`), through `GET /cache/keys`.

use std::fmt::Write as _;

use super::client::Client;
use super::error::RequestError;
use super::views::{KeyPageView, KeyView};
use crate::wording::bytes;
use warp_redis_cache::Namespace;

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct KeysQuery {
    /// Only this namespace.
    pub namespace: Option<Namespace>,
    /// Only keys starting with this (needs `namespace`).
    pub prefix: Option<String>,
    /// Where to start: a `next_cursor` printed before, or 0.
    pub cursor: u64,
    /// Entries per page (a hint to the service).
    pub limit: usize,
    /// Follow the cursor to the end.
    pub all: bool,
}

/// A TTL for people: `59 s`, `4 min 59 s`, `2 h 5 min`, or `never`.
///
/// ```
/// use warp_redis_cache_service::ops::keys::ttl;
///
/// assert_eq!(ttl(Some(299_400)), "4 min 59 s");
/// assert_eq!(ttl(None), "never");
/// ```
pub fn ttl(ms: Option<u64>) -> String {
    let Some(ms) = ms else {
        return "never".into();
    };
    let secs = ms / 1000;
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
    }
}

/// The header line of a listing.
pub fn header() -> String {
    format!(
        "{:<20} {:>12} {:>10}  {}",
        "namespace", "ttl", "size", "key"
    )
}

/// One line per entry.
pub fn lines(keys: &[KeyView]) -> String {
    let mut text = String::new();
    for key in keys {
        let _ = writeln!(
            text,
            "{:<20} {:>12} {:>10}  {}",
            key.namespace.as_deref().unwrap_or("-"),
            ttl(key.ttl_ms),
            bytes(key.size_bytes),
            key.entry_key.as_deref().unwrap_or(&key.key)
        );
    }
    text
}

/// Lists per `query`, printing each page as it arrives; returns the entries shown and the
/// cursor to continue from (0 at the end).
pub async fn run(
    client: &Client,
    query: &KeysQuery,
    mut print: impl FnMut(&str),
) -> Result<(u64, u64), RequestError> {
    let mut cursor = query.cursor;
    let mut shown = 0u64;
    print(&format!("{}\n", header()));
    loop {
        let page: KeyPageView = client
            .keys(
                query.namespace.as_ref(),
                query.prefix.as_deref(),
                cursor,
                query.limit,
            )
            .await?;
        shown += page.keys.len() as u64;
        print(&lines(&page.keys));
        cursor = page.next_cursor;
        if cursor == 0 || !query.all {
            return Ok((shown, cursor));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_show_namespace_ttl_size_and_the_key_within_the_namespace() {
        let keys = [KeyView {
            key: "wrc:items:GET:/items/1".into(),
            namespace: Some("items".into()),
            entry_key: Some("GET:/items/1".into()),
            ttl_ms: Some(7_384_000),
            size_bytes: 2048,
        }];
        let text = lines(&keys);
        assert!(text.starts_with("items "), "{text}");
        assert!(text.contains("2 h 3 min"), "{text}");
        assert!(text.contains("2.0 KiB"), "{text}");
        assert!(text.trim_end().ends_with("GET:/items/1"), "{text}");
    }
}
