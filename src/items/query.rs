//! The list query of `GET /items` and the page it answers with.
//!
//! Parsing only: [`ListQuery::from_pairs`] turns decoded query parameters into a bounded,
//! validated query, and [`ItemStore::list`](super::ItemStore::list) runs it. Item content rules
//! live in [`model`](super::model), next to the item.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::model::{refuse_nul, Item, ValidationError, MAX_TAG_CHARS};

/// Longest name filter (`q`) accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// Highest `offset` accepted; deeper pages are refused rather than scanned.
pub const MAX_OFFSET: u64 = 1_000_000;

/// The query string of `GET /items`: one page of items, optionally filtered.
///
/// ```
/// use warp_redis_cache_service::items::ListQuery;
///
/// let pairs = vec![("limit".to_string(), "5".to_string()), ("q".to_string(), "pen".to_string())];
/// let query = ListQuery::from_pairs(&pairs).unwrap();
/// assert_eq!((query.limit, query.offset, query.q.as_deref()), (5, 0, Some("pen")));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Page size, 1 to [`ListQuery::MAX_LIMIT`].
    pub limit: u32,
    /// Matching items to skip, 0 to [`MAX_OFFSET`].
    pub offset: u64,
    /// Keep items whose name contains this text, ignoring ASCII case; never empty.
    pub q: Option<String>,
    /// Keep items carrying exactly this tag (case-sensitive); never empty.
    pub tag: Option<String>,
}

impl Default for ListQuery {
    fn default() -> Self {
        Self {
            limit: Self::DEFAULT_LIMIT,
            offset: 0,
            q: None,
            tag: None,
        }
    }
}

impl ListQuery {
    /// Page size when `limit` is not given.
    pub const DEFAULT_LIMIT: u32 = 20;
    /// Largest page size accepted.
    pub const MAX_LIMIT: u32 = 100;

    /// Parses decoded query parameters (what `warp::query::<Vec<(String, String)>>()` extracts).
    ///
    /// Accepts `limit`, `offset`, `q` and `tag`, each at most once. An empty `q` or `tag` means
    /// no filter. Anything else, or a value out of range, is an error naming the parameter.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, ValidationError> {
        let mut query = Self::default();
        let mut seen: HashSet<&str> = HashSet::new();
        for (name, value) in pairs {
            let field = match name.as_str() {
                "limit" => "limit",
                "offset" => "offset",
                "q" => "q",
                "tag" => "tag",
                _ => {
                    let message =
                        format!("unknown parameter {name:?}; expected limit, offset, q or tag");
                    return Err(ValidationError::new("query", message));
                }
            };
            if !seen.insert(field) {
                return Err(ValidationError::new(field, "must be given at most once"));
            }
            match field {
                "limit" => query.limit = parse_limit(value)?,
                "offset" => query.offset = parse_offset(value)?,
                "q" => query.q = parse_name_filter(value)?,
                _ => query.tag = parse_tag_filter(value)?,
            }
        }
        Ok(query)
    }

    /// Parses a raw query string (without `?`), decoded by the same
    /// [`decode_query`](warp_redis_cache::decode_query) the cache key uses.
    pub fn from_query_string(raw: &str) -> Result<Self, ValidationError> {
        Self::from_pairs(&warp_redis_cache::decode_query(raw))
    }

    /// The page this query asks for, in one canonical form: every parameter in a fixed order,
    /// numbers in decimal without sign or leading zeros, filters percent-encoded. Two queries
    /// that ask for the same page (`limit=0100`, `limit=100&offset=0`) have the same form, so
    /// the cache keeps one entry for them.
    pub fn canonical(&self) -> String {
        let encode = |text: &str| {
            percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
        };
        let mut form = format!("limit={}&offset={}", self.limit, self.offset);
        if let Some(q) = &self.q {
            form.push_str("&q=");
            form.push_str(&encode(q));
        }
        if let Some(tag) = &self.tag {
            form.push_str("&tag=");
            form.push_str(&encode(tag));
        }
        form
    }

    /// Whether the query filters by name or tag (its pages change when any item's name or tags
    /// do).
    pub fn is_filtered(&self) -> bool {
        self.q.is_some() || self.tag.is_some()
    }
}

fn parse_limit(value: &str) -> Result<u32, ValidationError> {
    match value.parse::<u32>() {
        Ok(limit) if (1..=ListQuery::MAX_LIMIT).contains(&limit) => Ok(limit),
        _ => {
            let message = format!("must be an integer from 1 to {}", ListQuery::MAX_LIMIT);
            Err(ValidationError::new("limit", message))
        }
    }
}

fn parse_offset(value: &str) -> Result<u64, ValidationError> {
    match value.parse::<u64>() {
        Ok(offset) if offset <= MAX_OFFSET => Ok(offset),
        _ => {
            let message = format!("must be an integer from 0 to {MAX_OFFSET}");
            Err(ValidationError::new("offset", message))
        }
    }
}

fn parse_name_filter(value: &str) -> Result<Option<String>, ValidationError> {
    refuse_nul("q", value)?;
    if value.chars().count() > MAX_QUERY_CHARS {
        let message = format!("must be at most {MAX_QUERY_CHARS} characters");
        return Err(ValidationError::new("q", message));
    }
    Ok(Some(value.to_owned()).filter(|q| !q.is_empty()))
}

fn parse_tag_filter(value: &str) -> Result<Option<String>, ValidationError> {
    refuse_nul("tag", value)?;
    // A longer tag cannot exist, so saying so beats silently returning nothing.
    if value.chars().count() > MAX_TAG_CHARS {
        let message = format!("must be at most {MAX_TAG_CHARS} characters");
        return Err(ValidationError::new("tag", message));
    }
    Ok(Some(value.to_owned()).filter(|tag| !tag.is_empty()))
}

/// One page of `GET /items`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ItemPage {
    /// The items on this page, by ascending id.
    pub items: Vec<Item>,
    /// How many items match the filters, on all pages.
    pub total: u64,
    /// The page size asked for.
    pub limit: u32,
    /// The number of matching items skipped before this page.
    pub offset: u64,
}

/// A `LIKE ... ESCAPE '\'` pattern matching `text` anywhere, its wildcards taken literally.
pub(super) fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn list_query_defaults() {
        assert_eq!(ListQuery::from_pairs(&[]), Ok(ListQuery::default()));
        let query = ListQuery::default();
        assert_eq!((query.limit, query.offset), (20, 0));
        assert_eq!((query.q, query.tag), (None, None));
    }

    #[test]
    fn list_query_reads_every_parameter() {
        let query = ListQuery::from_pairs(&pairs(&[
            ("limit", "100"),
            ("offset", "1000000"),
            ("q", "Pen"),
            ("tag", "office"),
        ]))
        .expect("valid query");
        assert_eq!(
            query,
            ListQuery {
                limit: 100,
                offset: 1_000_000,
                q: Some("Pen".into()),
                tag: Some("office".into()),
            }
        );
    }

    #[test]
    fn list_query_bounds_limit_and_offset() {
        for bad in ["0", "101", "-1", "99999999999"] {
            let err = ListQuery::from_pairs(&pairs(&[("limit", bad)])).expect_err(bad);
            assert_eq!(err.field, "limit");
        }
        for bad in ["-1", "1000001"] {
            let err = ListQuery::from_pairs(&pairs(&[("offset", bad)])).expect_err(bad);
            assert_eq!(err.field, "offset");
        }
        assert!(ListQuery::from_pairs(&pairs(&[("limit", "1"), ("offset", "0")])).is_ok());
    }

    #[test]
    fn non_numeric_limit_or_offset_names_the_parameter() {
        let err = ListQuery::from_pairs(&pairs(&[("limit", "ten")])).expect_err("not a number");
        assert_eq!(err.to_string(), "limit: must be an integer from 1 to 100");
        let err = ListQuery::from_pairs(&pairs(&[("offset", "")])).expect_err("empty");
        assert_eq!(
            err.to_string(),
            "offset: must be an integer from 0 to 1000000"
        );
    }

    #[test]
    fn empty_filters_mean_no_filter_and_long_ones_are_refused() {
        let query = ListQuery::from_pairs(&pairs(&[("q", ""), ("tag", "")])).expect("valid");
        assert_eq!((query.q, query.tag), (None, None));
        let long_q = "x".repeat(MAX_QUERY_CHARS + 1);
        let err = ListQuery::from_pairs(&pairs(&[("q", &long_q)])).expect_err("long q");
        assert_eq!(err.field, "q");
        let long_tag = "x".repeat(MAX_TAG_CHARS + 1);
        let err = ListQuery::from_pairs(&pairs(&[("tag", &long_tag)])).expect_err("long tag");
        assert_eq!(err.field, "tag");
    }

    #[test]
    fn filters_holding_a_nul_character_are_refused() {
        let err = ListQuery::from_pairs(&pairs(&[("q", "a\0")])).expect_err("NUL in q");
        assert_eq!(err.field, "q");
        let err = ListQuery::from_pairs(&pairs(&[("tag", "\0")])).expect_err("NUL in tag");
        assert_eq!(err.field, "tag");
    }

    #[test]
    fn queries_for_the_same_page_have_one_canonical_form() {
        let a = ListQuery::from_query_string("limit=0100").expect("valid");
        let b = ListQuery::from_query_string("offset=0&limit=%2B100&q=").expect("valid");
        assert_eq!(a.canonical(), "limit=100&offset=0");
        assert_eq!(a.canonical(), b.canonical());
        let c = ListQuery::from_query_string("q=a%26b+c&tag=x").expect("valid");
        assert_eq!(c.canonical(), "limit=20&offset=0&q=a%26b%20c&tag=x");
        assert!(c.is_filtered() && !a.is_filtered());
    }

    #[test]
    fn unknown_or_repeated_parameters_are_refused() {
        let err = ListQuery::from_pairs(&pairs(&[("page", "2")])).expect_err("unknown");
        assert_eq!(err.field, "query");
        assert!(err.message.contains("\"page\""), "{err}");
        let err =
            ListQuery::from_pairs(&pairs(&[("limit", "5"), ("limit", "6")])).expect_err("repeated");
        assert_eq!(err.field, "limit");
    }
}
