//! A minimal model of DynamoDB's `AttributeValue` and items, in DynamoDB's JSON form.
//!
//! Wire form: every value is an object with one key naming its type, e.g. `{"S":"abc"}`,
//! `{"N":"42"}`, `{"M":{"k":{"BOOL":true}}}`. Numbers stay strings, as DynamoDB sends them,
//! so nothing is lost; binary values stay base64 text.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An item: attribute name to value. Ordered, so encodings are deterministic.
pub type Item = BTreeMap<String, AttributeValue>;

/// One DynamoDB attribute value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttributeValue {
    /// A string.
    S(String),
    /// A number, in DynamoDB's decimal text form.
    N(String),
    /// Binary data, base64 text as on the wire.
    B(String),
    /// A boolean.
    #[serde(rename = "BOOL")]
    Bool(bool),
    /// Null (the flag is always `true` on the wire).
    #[serde(rename = "NULL")]
    Null(bool),
    /// A map of values.
    M(BTreeMap<String, AttributeValue>),
    /// A list of values.
    L(Vec<AttributeValue>),
    /// A string set.
    SS(Vec<String>),
    /// A number set.
    NS(Vec<String>),
    /// A binary set (base64 text).
    BS(Vec<String>),
}

impl AttributeValue {
    /// A string value.
    pub fn s(s: impl Into<String>) -> Self {
        AttributeValue::S(s.into())
    }

    /// A number value from an unsigned integer.
    pub fn n(n: u64) -> Self {
        AttributeValue::N(n.to_string())
    }

    /// The string, if this is `S`.
    pub fn as_s(&self) -> Option<&str> {
        match self {
            AttributeValue::S(s) => Some(s),
            _ => None,
        }
    }

    /// The number as a `u64`, if this is an `N` holding a non-negative integer that fits.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            AttributeValue::N(n) => n.trim().parse().ok(),
            _ => None,
        }
    }

    /// The map, if this is `M`.
    pub fn as_m(&self) -> Option<&BTreeMap<String, AttributeValue>> {
        match self {
            AttributeValue::M(m) => Some(m),
            _ => None,
        }
    }

    /// The DynamoDB type tag of this value (`"S"`, `"N"`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            AttributeValue::S(_) => "S",
            AttributeValue::N(_) => "N",
            AttributeValue::B(_) => "B",
            AttributeValue::Bool(_) => "BOOL",
            AttributeValue::Null(_) => "NULL",
            AttributeValue::M(_) => "M",
            AttributeValue::L(_) => "L",
            AttributeValue::SS(_) => "SS",
            AttributeValue::NS(_) => "NS",
            AttributeValue::BS(_) => "BS",
        }
    }

    /// An upper bound of the bytes DynamoDB counts for this value (name lengths excluded),
    /// following its item-size rules closely enough to reject what it would reject.
    pub fn size_estimate(&self) -> usize {
        match self {
            AttributeValue::S(s) | AttributeValue::B(s) => s.len(),
            AttributeValue::N(n) => n.len().div_ceil(2) + 1,
            AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
            AttributeValue::M(m) => {
                3 + m
                    .iter()
                    .map(|(k, v)| k.len() + v.size_estimate() + 1)
                    .sum::<usize>()
            }
            AttributeValue::L(l) => 3 + l.iter().map(|v| v.size_estimate() + 1).sum::<usize>(),
            AttributeValue::SS(v) | AttributeValue::BS(v) => v.iter().map(String::len).sum(),
            AttributeValue::NS(v) => v.iter().map(|n| n.len().div_ceil(2) + 1).sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_round_trips() {
        let json = r#"{"a":{"S":"x"},"b":{"N":"12"},"c":{"BOOL":true},"d":{"NULL":true},"e":{"M":{"f":{"L":[{"S":"y"},{"SS":["p","q"]}]}}},"g":{"B":"AAE="}}"#;
        let item: Item = serde_json::from_str(json).unwrap();
        assert_eq!(item["b"].as_u64(), Some(12));
        assert_eq!(item["a"].as_s(), Some("x"));
        assert_eq!(item["c"], AttributeValue::Bool(true));
        assert_eq!(serde_json::to_string(&item).unwrap(), json);
    }

    #[test]
    fn unknown_type_is_an_error_not_a_panic() {
        assert!(serde_json::from_str::<Item>(r#"{"a":{"Q":"x"}}"#).is_err());
        assert!(serde_json::from_str::<Item>(r#"{"a":{"S":1}}"#).is_err());
        assert!(serde_json::from_str::<Item>(r#"{"a":{"S":"x","N":"1"}}"#).is_err());
    }

    #[test]
    fn numbers_that_do_not_fit_are_none() {
        assert_eq!(AttributeValue::N("-1".into()).as_u64(), None);
        assert_eq!(AttributeValue::N("1.5".into()).as_u64(), None);
        assert_eq!(
            AttributeValue::N("99999999999999999999999".into()).as_u64(),
            None
        );
        assert_eq!(AttributeValue::S("1".into()).as_u64(), None);
    }
}
