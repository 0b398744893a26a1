//! Reading Redis replies back into Rust: strings, arrays, field/value
//! lists, and JSON. Every shape we did not write becomes
//! `StoreError::Corrupt`, never a panic.
//!
//! Owns reply decoding only; it must not issue commands.

use std::collections::HashMap;

use ::redis::Value;
use serde::de::DeserializeOwned;

use crate::store::StoreError;

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// A bulk or simple string.
pub(crate) fn string(v: &Value) -> Result<String, StoreError> {
    match v {
        Value::BulkString(b) => {
            String::from_utf8(b.clone()).map_err(|_| corrupt("a reply is not UTF-8"))
        }
        Value::SimpleString(s) => Ok(s.clone()),
        Value::Okay => Ok("OK".into()),
        Value::Int(i) => Ok(i.to_string()),
        other => Err(corrupt(format!("expected a string, got {other:?}"))),
    }
}

/// An array (`Nil` → empty).
pub(crate) fn array(v: &Value) -> Result<&[Value], StoreError> {
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(&[]),
        other => Err(corrupt(format!("expected an array, got {other:?}"))),
    }
}

/// The strings of an array.
pub(crate) fn strings(v: &Value) -> Result<Vec<String>, StoreError> {
    array(v)?.iter().map(string).collect()
}

/// A flat `field, value, …` array (or a map) as a map.
pub(crate) fn fields(v: &Value) -> Result<HashMap<String, String>, StoreError> {
    if let Value::Map(pairs) = v {
        return pairs
            .iter()
            .map(|(k, v)| Ok((string(k)?, string(v)?)))
            .collect();
    }
    let items = array(v)?;
    if items.len() % 2 != 0 {
        return Err(corrupt("odd field/value list"));
    }
    items
        .chunks(2)
        .map(|kv| Ok((string(&kv[0])?, string(&kv[1])?)))
        .collect()
}

/// An integer reply.
pub(crate) fn int(v: &Value) -> Result<i64, StoreError> {
    match v {
        Value::Int(i) => Ok(*i),
        v => string(v)?
            .parse()
            .map_err(|_| corrupt("expected an integer")),
    }
}

/// JSON text as a `T`.
pub(crate) fn json<T: DeserializeOwned>(text: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt(format!("{what}: {e}")))
}

/// A value as JSON text.
pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    // Serialising our own records cannot fail (no non-string map keys).
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}
