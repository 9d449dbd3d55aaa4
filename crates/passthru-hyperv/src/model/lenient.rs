//! Forgiving field decoders for PowerShell's JSON.
//!
//! Windows PowerShell 5.1's `ConvertTo-Json` is not always consistent across hosts and builds:
//! a one-element collection can arrive as a scalar, a number as a string, a registry QWORD as a
//! negative number, a `[bool]` as `0`/`1`. These decoders accept every such shape and turn
//! anything else into `None`/empty instead of failing the whole answer.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// `null`, a string, or an array of strings (non-strings skipped).
pub(crate) fn strings<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Ok(strings_of(&Value::deserialize(deserializer)?))
}

pub(crate) fn strings_of(value: &Value) -> Vec<String> {
    match value {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// A string, or a number/bool rendered as text; empty strings are `None`.
pub(crate) fn text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(text_of(&Value::deserialize(deserializer)?))
}

pub(crate) fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// An unsigned number from a number or a numeric string; negative 64-bit values (registry
/// QWORDs read as `Int64`) are reinterpreted as unsigned.
pub(crate) fn u64_opt<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    Ok(u64_of(&Value::deserialize(deserializer)?))
}

pub(crate) fn u64_of(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number
            .as_u64()
            .or_else(|| number.as_i64().map(|signed| signed as u64)),
        Value::String(text) => text.trim().parse().ok(),
        Value::Array(items) if items.len() == 1 => u64_of(&items[0]),
        _ => None,
    }
}

/// Like [`u64_opt`], narrowed to `u32` (values that do not fit become `None`).
pub(crate) fn u32_opt<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    Ok(u64_of(&Value::deserialize(deserializer)?).and_then(|value| u32::try_from(value).ok()))
}

/// A list of unsigned numbers from `null`, a number, or an array.
pub(crate) fn u32s<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u32>, D::Error> {
    let value = Value::deserialize(deserializer)?;
    let items = match &value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        single => vec![single],
    };
    Ok(items
        .into_iter()
        .filter_map(|item| u64_of(item).and_then(|number| u32::try_from(number).ok()))
        .collect())
}

/// A bool from `true`/`false`, `"True"`/`"False"`, or `0`/`1`.
pub(crate) fn bool_opt<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<bool>, D::Error> {
    Ok(bool_of(&Value::deserialize(deserializer)?))
}

pub(crate) fn bool_of(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        Value::Number(number) => number.as_u64().map(|n| n != 0),
        Value::String(text) => crate::text::format_list::parse_bool(text),
        _ => None,
    }
}

/// A bool that defaults to `false` when absent or unreadable.
pub(crate) fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(bool_of(&Value::deserialize(deserializer)?).unwrap_or(false))
}

/// Decodes every element of an array on its own, so that one malformed element costs only
/// itself. Returns the decoded elements and one message per element that could not be read.
pub(crate) fn each<T: serde::de::DeserializeOwned>(
    value: Option<&Value>,
    what: &str,
) -> (Vec<T>, Vec<String>) {
    let mut items = Vec::new();
    let mut problems = Vec::new();
    let elements: Vec<&Value> = match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(elements)) => elements.iter().collect(),
        Some(single) => vec![single],
    };
    for (index, element) in elements.into_iter().enumerate() {
        match serde_json::from_value::<T>(element.clone()) {
            Ok(item) => items.push(item),
            Err(error) => problems.push(format!("could not read {what} #{}: {error}", index + 1)),
        }
    }
    (items, problems)
}
