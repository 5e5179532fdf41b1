//! The item model: what an item is, what a client may send, and the rules that content obeys.
//!
//! This module is pure data and checks: no I/O, no SQL, no HTTP. The routes deserialize request
//! bodies into [`NewItem`] or [`ItemPatch`], call `validate`, and hand the result to [`ItemStore`](super::ItemStore). The store normalizes
//! what it writes ([`NewItem::normalized`]) but does not validate: rejecting bad input with a
//! useful message is the caller's job, done here.
//!
//! Normalization: an item's name and each of its tags are stored trimmed of surrounding
//! whitespace; the limits below apply to the trimmed text, so `"  pen "` is stored as `"pen"`.
//! Descriptions are stored exactly as sent, and have no limit of their own: the request body
//! limit (`app.max_body_bytes`) bounds them, so every item that fits in a request is accepted.
//!
//! No text may contain the NUL character (U+0000): PostgreSQL cannot store it, and one item
//! must be storable by every backend.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// Longest item name accepted, in characters (not bytes), after trimming.
pub const MAX_NAME_CHARS: usize = 200;
/// Highest price accepted.
pub const MAX_PRICE: f64 = 1e12;
/// Most tags an item may carry.
pub const MAX_TAGS: usize = 20;
/// Longest tag accepted, in characters, after trimming.
pub const MAX_TAG_CHARS: usize = 50;

/// A stored item, as the API returns it.
///
/// Timestamps are RFC 3339 UTC with milliseconds (`2026-11-25T00:10:00.123Z`), written by
/// the store, so they sort correctly as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Item {
    /// Assigned by the store; never reused, even after the item is deleted.
    pub id: i64,
    /// Trimmed, 1 to 200 characters.
    pub name: String,
    /// Free text, as long as the request body limit allows; may be empty.
    pub description: String,
    /// Finite, from 0 to 1e12.
    pub price: f64,
    /// Trimmed, distinct, at most 20 of at most 50 characters each, in the order given.
    pub tags: Vec<String>,
    /// When the item was created.
    pub created_at: String,
    /// When the item was last created, replaced or patched.
    pub updated_at: String,
}

/// The body of `POST /items` and `PUT /items/{id}` (a full replacement).
///
/// ```
/// use warp_redis_cache_service::items::NewItem;
///
/// let item: NewItem = serde_json::from_str(r#"{"name": "pen", "price": 1.5}"#).unwrap();
/// assert!(item.validate().is_ok());
/// assert!(item.description.is_empty() && item.tags.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    /// Required; see [`Item::name`].
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    /// Optional, empty when absent.
    #[serde(default)]
    pub description: String,
    /// Required; see [`Item::price`].
    #[schema(minimum = 0, maximum = 1e12)]
    pub price: f64,
    /// Optional, none when absent.
    #[serde(default)]
    #[schema(max_items = 20, inline)]
    pub tags: Vec<String>,
}

/// The body of `PATCH /items/{id}`: only the fields present change.
///
/// A field given as JSON `null` counts as absent. A patch with no field set is invalid.
///
/// ```
/// use warp_redis_cache_service::items::ItemPatch;
///
/// let patch: ItemPatch = serde_json::from_str(r#"{"price": 2}"#).unwrap();
/// assert!(patch.validate().is_ok());
/// assert!(ItemPatch::default().validate().is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemPatch {
    /// New name, if changing.
    #[schema(min_length = 1, max_length = 200)]
    pub name: Option<String>,
    /// New description, if changing.
    pub description: Option<String>,
    /// New price, if changing.
    #[schema(minimum = 0, maximum = 1e12)]
    pub price: Option<f64>,
    /// New tags, replacing all old ones, if changing.
    pub tags: Option<Vec<String>>,
}

/// Why a request's content was refused: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The field or query parameter at fault (`name`, `tags`, `limit`, ...).
    pub field: &'static str,
    /// What the client should change.
    pub message: String,
}

impl ValidationError {
    /// An error about `field` saying what to change.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

impl NewItem {
    /// Checks every field against the rules documented on [`Item`]; reports the first failure.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_name(&self.name)?;
        validate_description(&self.description)?;
        validate_price(self.price)?;
        validate_tags(&self.tags)
    }

    /// The item as it is stored: name and tags trimmed.
    pub fn normalized(self) -> Self {
        Self {
            name: self.name.trim().to_owned(),
            tags: normalize_tags(self.tags),
            ..self
        }
    }
}

impl ItemPatch {
    /// Checks the fields that are set, and that at least one is.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.is_empty() {
            return Err(ValidationError::new(
                "body",
                "a patch must set at least one of name, description, price, tags",
            ));
        }
        if let Some(name) = &self.name {
            validate_name(name)?;
        }
        if let Some(description) = &self.description {
            validate_description(description)?;
        }
        if let Some(price) = self.price {
            validate_price(price)?;
        }
        if let Some(tags) = &self.tags {
            validate_tags(tags)?;
        }
        Ok(())
    }

    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        self.name.is_none()
            && self.description.is_none()
            && self.price.is_none()
            && self.tags.is_none()
    }

    /// The patch as it is applied: name and tags trimmed.
    pub fn normalized(self) -> Self {
        Self {
            name: self.name.map(|name| name.trim().to_owned()),
            tags: self.tags.map(normalize_tags),
            ..self
        }
    }
}

fn normalize_tags(tags: Vec<String>) -> Vec<String> {
    tags.into_iter().map(|tag| tag.trim().to_owned()).collect()
}

/// Refuses text holding U+0000, which PostgreSQL's `text` cannot store.
pub(crate) fn refuse_nul(field: &'static str, text: &str) -> Result<(), ValidationError> {
    if text.contains('\0') {
        return Err(ValidationError::new(
            field,
            "must not contain the NUL character (U+0000)",
        ));
    }
    Ok(())
}

fn validate_name(name: &str) -> Result<(), ValidationError> {
    refuse_nul("name", name)?;
    let name = name.trim();
    if name.is_empty() {
        return Err(ValidationError::new("name", "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        let message = format!("must be at most {MAX_NAME_CHARS} characters");
        return Err(ValidationError::new("name", message));
    }
    Ok(())
}

fn validate_description(description: &str) -> Result<(), ValidationError> {
    refuse_nul("description", description)
}

fn validate_price(price: f64) -> Result<(), ValidationError> {
    // Written so that NaN fails too: every comparison with NaN is false.
    if price.is_finite() && (0.0..=MAX_PRICE).contains(&price) {
        return Ok(());
    }
    let message = format!("must be a number from 0 to {MAX_PRICE:e}");
    Err(ValidationError::new("price", message))
}

fn validate_tags(tags: &[String]) -> Result<(), ValidationError> {
    if tags.len() > MAX_TAGS {
        let message = format!("must be at most {MAX_TAGS} tags");
        return Err(ValidationError::new("tags", message));
    }
    let mut seen = HashSet::with_capacity(tags.len());
    for tag in tags {
        refuse_nul("tags", tag)?;
        let tag = tag.trim();
        if tag.is_empty() {
            return Err(ValidationError::new("tags", "a tag must not be empty"));
        }
        if tag.chars().count() > MAX_TAG_CHARS {
            let message = format!("a tag must be at most {MAX_TAG_CHARS} characters");
            return Err(ValidationError::new("tags", message));
        }
        // Compared after trimming, as stored; case matters, as it does for the tag filter.
        if !seen.insert(tag) {
            let message = format!("tag {tag:?} is given more than once");
            return Err(ValidationError::new("tags", message));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_item() -> NewItem {
        NewItem {
            name: "pen".into(),
            description: "writes".into(),
            price: 1.5,
            tags: vec!["office".into(), "blue".into()],
        }
    }

    fn field_of(result: Result<(), ValidationError>) -> &'static str {
        result.expect_err("should be invalid").field
    }

    #[test]
    fn a_typical_item_is_valid() {
        assert_eq!(new_item().validate(), Ok(()));
    }

    #[test]
    fn name_must_not_be_blank() {
        let item = NewItem {
            name: " \t ".into(),
            ..new_item()
        };
        assert_eq!(field_of(item.validate()), "name");
    }

    #[test]
    fn name_length_counts_trimmed_characters_not_bytes() {
        let at_limit = NewItem {
            name: format!("  {}  ", "é".repeat(MAX_NAME_CHARS)),
            ..new_item()
        };
        assert_eq!(at_limit.validate(), Ok(()));
        let over = NewItem {
            name: "é".repeat(MAX_NAME_CHARS + 1),
            ..new_item()
        };
        assert_eq!(field_of(over.validate()), "name");
    }

    #[test]
    fn description_may_be_empty_or_as_long_as_the_body_limit_allows() {
        let empty = NewItem {
            description: String::new(),
            ..new_item()
        };
        assert_eq!(empty.validate(), Ok(()));
        let long = NewItem {
            description: "ü".repeat(100_000),
            ..new_item()
        };
        assert_eq!(long.validate(), Ok(()));
        let with_nul = NewItem {
            description: "a\0b".into(),
            ..new_item()
        };
        assert_eq!(field_of(with_nul.validate()), "description");
    }

    #[test]
    fn price_must_be_finite_and_in_range() {
        for good in [0.0, 0.01, MAX_PRICE] {
            let item = NewItem {
                price: good,
                ..new_item()
            };
            assert_eq!(item.validate(), Ok(()), "{good}");
        }
        for bad in [-0.01, MAX_PRICE * 1.01, f64::NAN, f64::INFINITY] {
            let item = NewItem {
                price: bad,
                ..new_item()
            };
            assert_eq!(field_of(item.validate()), "price", "{bad}");
        }
    }

    #[test]
    fn at_most_twenty_tags() {
        let tags = |n: usize| (0..n).map(|i| format!("t{i}")).collect::<Vec<_>>();
        let at_limit = NewItem {
            tags: tags(MAX_TAGS),
            ..new_item()
        };
        assert_eq!(at_limit.validate(), Ok(()));
        let over = NewItem {
            tags: tags(MAX_TAGS + 1),
            ..new_item()
        };
        assert_eq!(field_of(over.validate()), "tags");
    }

    #[test]
    fn tags_must_not_be_blank() {
        let item = NewItem {
            tags: vec!["ok".into(), "  ".into()],
            ..new_item()
        };
        assert_eq!(field_of(item.validate()), "tags");
    }

    #[test]
    fn tag_length_counts_trimmed_characters() {
        let at_limit = NewItem {
            tags: vec![format!(" {} ", "ß".repeat(MAX_TAG_CHARS))],
            ..new_item()
        };
        assert_eq!(at_limit.validate(), Ok(()));
        let over = NewItem {
            tags: vec!["x".repeat(MAX_TAG_CHARS + 1)],
            ..new_item()
        };
        assert_eq!(field_of(over.validate()), "tags");
    }

    #[test]
    fn duplicate_tags_are_compared_after_trimming_and_by_case() {
        let distinct_by_case = NewItem {
            tags: vec!["Rust".into(), "rust".into()],
            ..new_item()
        };
        assert_eq!(distinct_by_case.validate(), Ok(()));
        let duplicate = NewItem {
            tags: vec!["rust".into(), " rust ".into()],
            ..new_item()
        };
        let err = duplicate.validate().expect_err("duplicate tag");
        assert_eq!(
            err.to_string(),
            "tags: tag \"rust\" is given more than once"
        );
    }

    #[test]
    fn no_text_field_may_hold_a_nul_character() {
        let cases = [
            (
                NewItem {
                    name: "pe\0n".into(),
                    ..new_item()
                },
                "name",
            ),
            (
                NewItem {
                    description: "\0".into(),
                    ..new_item()
                },
                "description",
            ),
            (
                NewItem {
                    tags: vec!["ok".into(), "a\0".into()],
                    ..new_item()
                },
                "tags",
            ),
        ];
        for (item, field) in cases {
            assert_eq!(field_of(item.validate()), field);
        }
        let patch = ItemPatch {
            name: Some("\0".into()),
            ..ItemPatch::default()
        };
        assert_eq!(field_of(patch.validate()), "name");
    }

    #[test]
    fn normalizing_trims_name_and_tags_only() {
        let item = NewItem {
            name: "  pen ".into(),
            description: " as sent ".into(),
            price: 2.0,
            tags: vec![" a".into(), "b ".into()],
        }
        .normalized();
        assert_eq!(item.name, "pen");
        assert_eq!(item.description, " as sent ");
        assert_eq!(item.tags, ["a", "b"]);
    }

    #[test]
    fn new_item_body_defaults_optional_fields_and_refuses_unknown_ones() {
        let item: NewItem = serde_json::from_str(r#"{"name":"pen","price":3}"#).expect("valid");
        assert_eq!((item.description.as_str(), item.tags.len()), ("", 0));
        let unknown = serde_json::from_str::<NewItem>(r#"{"name":"pen","price":3,"colour":1}"#);
        assert!(unknown.is_err());
        let missing_price = serde_json::from_str::<NewItem>(r#"{"name":"pen"}"#);
        assert!(missing_price.is_err());
    }

    #[test]
    fn patch_must_set_a_field() {
        assert_eq!(field_of(ItemPatch::default().validate()), "body");
        let null_only: ItemPatch = serde_json::from_str(r#"{"name":null}"#).expect("valid json");
        assert_eq!(field_of(null_only.validate()), "body");
        let price_only = ItemPatch {
            price: Some(0.0),
            ..ItemPatch::default()
        };
        assert_eq!(price_only.validate(), Ok(()));
    }

    #[test]
    fn patch_checks_each_field_that_is_set() {
        let cases = [
            (
                ItemPatch {
                    name: Some(" ".into()),
                    ..ItemPatch::default()
                },
                "name",
            ),
            (
                ItemPatch {
                    description: Some("nul \0".into()),
                    ..ItemPatch::default()
                },
                "description",
            ),
            (
                ItemPatch {
                    price: Some(-1.0),
                    ..ItemPatch::default()
                },
                "price",
            ),
            (
                ItemPatch {
                    tags: Some(vec!["a".into(), "a".into()]),
                    ..ItemPatch::default()
                },
                "tags",
            ),
        ];
        for (patch, field) in cases {
            assert_eq!(field_of(patch.validate()), field);
        }
        let empty_tags = ItemPatch {
            tags: Some(Vec::new()),
            ..ItemPatch::default()
        };
        assert_eq!(empty_tags.validate(), Ok(()));
        let unknown = serde_json::from_str::<ItemPatch>(r#"{"id":3}"#);
        assert!(unknown.is_err());
    }
}
