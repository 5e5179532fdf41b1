//! Deserializers for settings fields whose YAML reading would surprise: text that looks like a
//! number, secrets, host lists.

use serde::{Deserialize, Deserializer};
use serde_yaml::Value;

/// Accepts any YAML scalar as a string, so `key_prefix: 2024` in the file is "2024".
pub(super) fn scalar_string<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<String, D::Error> {
    use serde::de::Error;
    match Value::deserialize(deserializer)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(D::Error::custom(format!(
            "expected a string, found {}",
            describe(&other)
        ))),
    }
}

/// A secret: a string or nothing (`null`), never a number or boolean YAML would rewrite
/// (`0x1F` would become 31).
pub(super) fn optional_secret_string<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    use serde::de::Error;
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        other => Err(D::Error::custom(format!(
            "expected a string, found {}; put the token in quotes so YAML keeps it as written",
            describe(&other)
        ))),
    }
}

/// A list of host names, or one comma-separated string of them.
pub(super) fn host_list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    use serde::de::Error;
    let split = |text: &str| -> Vec<String> {
        text.split(',')
            .map(|host| host.trim().to_ascii_lowercase())
            .filter(|host| !host.is_empty())
            .collect()
    };
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(Vec::new()),
        Value::String(text) => Ok(split(&text)),
        Value::Sequence(items) => items
            .into_iter()
            .map(|item| match item {
                Value::String(host) => Ok(host.trim().to_ascii_lowercase()),
                other => Err(D::Error::custom(format!(
                    "expected host names, found {}",
                    describe(&other)
                ))),
            })
            .collect(),
        other => Err(D::Error::custom(format!(
            "expected a list of host names, found {}",
            describe(&other)
        ))),
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}
