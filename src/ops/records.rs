//! Reading an item file for `seed`: a JSON array, or NDJSON (one JSON object per line).
//!
//! Every record is checked the way the API would check it, before anything is sent: parsed
//! into [`NewItem`] (unknown fields and wrong types refused) and [`NewItem::validate`]d. A bad
//! record becomes a [`RecordError`] located by its line (NDJSON, from 1) or array index (from
//! 0), and the good records around it are kept. Only a file that is not JSON at all is an error
//! for the whole file.
//!
//! The format is decided by the first character: `[` is an array, `{` is NDJSON, anything else
//! is not an item file.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::items::NewItem;

/// Where a record sits in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// NDJSON line, counted from 1.
    Line(usize),
    /// JSON array index, counted from 0 (as `jq '.[i]'`).
    Index(usize),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Line(line) => write!(f, "line {line}"),
            Location::Index(index) => write!(f, "index {index}"),
        }
    }
}

/// A record that parsed and passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Where it came from.
    pub location: Location,
    /// The item, as it will be sent.
    pub item: NewItem,
}

/// A record that did not parse or failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// Where it came from.
    pub location: Location,
    /// What is wrong, naming the field when there is one.
    pub message: String,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// The records of a file, good and bad, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemFile {
    /// Records to send.
    pub records: Vec<Record>,
    /// Records refused locally.
    pub errors: Vec<RecordError>,
}

/// Why a whole file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The reason.
        source: std::io::Error,
    },
    /// The file is not a JSON array nor NDJSON.
    #[error("{} is not an item file: {detail}", path.display())]
    NotJson {
        /// The file.
        path: PathBuf,
        /// What was found instead.
        detail: String,
    },
}

/// Reads and checks the item file at `path`.
pub fn read(path: &Path) -> Result<ItemFile, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|detail| FileError::NotJson {
        path: path.to_owned(),
        detail,
    })
}

/// Parses the text of an item file; `Err` says why it is not one.
///
/// ```
/// use warp_redis_cache_service::ops::records::{parse, Location};
///
/// let file = parse("{\"name\": \"pen\", \"price\": 1}\n{\"name\": \"\", \"price\": 1}\n").unwrap();
/// assert_eq!(file.records.len(), 1);
/// assert_eq!(file.errors[0].location, Location::Line(2));
/// assert!(parse("name,price\npen,1\n").is_err());
/// ```
pub fn parse(text: &str) -> Result<ItemFile, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match text.trim_start().chars().next() {
        Some('[') => parse_array(text),
        Some('{') => Ok(parse_ndjson(text)),
        Some(other) => Err(format!(
            "expected a JSON array or one JSON object per line (NDJSON), found {other:?}"
        )),
        None => Err("the file is empty".into()),
    }
}

fn parse_array(text: &str) -> Result<ItemFile, String> {
    let values: Vec<Value> =
        serde_json::from_str(text).map_err(|err| format!("invalid JSON array: {err}"))?;
    let mut file = ItemFile::default();
    for (index, value) in values.into_iter().enumerate() {
        file.push(Location::Index(index), to_item(value));
    }
    Ok(file)
}

fn parse_ndjson(text: &str) -> ItemFile {
    let mut file = ItemFile::default();
    for (number, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let item = serde_json::from_str::<Value>(line)
            .map_err(|err| format!("not valid JSON: {err}"))
            .and_then(to_item);
        file.push(Location::Line(number + 1), item);
    }
    file
}

/// Deserializes and validates one record; the error names the field at fault.
fn to_item(value: Value) -> Result<NewItem, String> {
    let item: NewItem = serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        // An unknown field's message names it already.
        if path == "." || message.starts_with("unknown field") {
            message
        } else {
            format!("{path}: {message}")
        }
    })?;
    item.validate().map_err(|err| err.to_string())?;
    Ok(item)
}

impl ItemFile {
    fn push(&mut self, location: Location, item: Result<NewItem, String>) {
        match item {
            Ok(item) => self.records.push(Record { location, item }),
            Err(message) => self.errors.push(RecordError { location, message }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(file: &ItemFile) -> Vec<String> {
        file.errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_json_array_keeps_good_records_and_locates_bad_ones_by_index() {
        let text = r#"[
            {"name": "pen", "price": 1.5, "tags": ["office"]},
            {"name": "lamp", "price": "cheap"},
            {"name": "mug", "price": 4, "colour": "red"},
            {"name": "cup", "price": -1},
            7,
            {"name": "desk", "price": 120, "description": "oak"}
        ]"#;
        let file = parse(text).expect("an array");
        let good: Vec<_> = file.records.iter().map(|r| r.location).collect();
        assert_eq!(good, [Location::Index(0), Location::Index(5)]);
        let errors = messages(&file);
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors[0].starts_with("index 1: price: invalid type: string"));
        assert!(errors[1].starts_with("index 2: unknown field `colour`"));
        assert_eq!(errors[2], "index 3: price: must be a number from 0 to 1e12");
        assert!(errors[3].starts_with("index 4: invalid type: integer `7`"));
    }

    #[test]
    fn ndjson_locates_bad_lines_counting_blank_ones() {
        let text = "{\"name\": \"pen\", \"price\": 1}\n\n{\"name\": \"x\", \"price\": 1, \n{\"price\": 2}\n{\"name\": \"mug\", \"price\": 3, \"tags\": [\"a\", \"a\"]}\n{\"name\": \"cup\", \"price\": 0}\n";
        let file = parse(text).expect("ndjson");
        let good: Vec<_> = file.records.iter().map(|r| r.location).collect();
        assert_eq!(good, [Location::Line(1), Location::Line(6)]);
        let errors = messages(&file);
        assert!(
            errors[0].starts_with("line 3: not valid JSON"),
            "{errors:?}"
        );
        assert!(
            errors[1].starts_with("line 4: missing field `name`"),
            "{errors:?}"
        );
        assert!(
            errors[2].starts_with("line 5: tags: tag \"a\""),
            "{errors:?}"
        );
    }

    #[test]
    fn text_that_is_not_json_is_refused_as_a_whole() {
        assert!(parse("name,price\npen,1\n").is_err());
        assert!(parse("   \n").is_err());
        assert!(parse("[{\"name\": \"pen\", \"price\": 1},").is_err());
        let empty_array = parse("[]").expect("an empty array is a file with no records");
        assert_eq!(empty_array, ItemFile::default());
    }

    #[test]
    fn a_byte_order_mark_is_ignored() {
        let file = parse("\u{feff}[{\"name\": \"pen\", \"price\": 1}]").expect("array");
        assert_eq!(file.records.len(), 1);
    }
}
