//! `Scan`: every item of a table, page by page (listing all locks).
//!
//! ```text
//! {"TableName":"lockTable","ConsistentRead":true,"ExclusiveStartKey":{...}}
//! -> {"Items":[...],"Count":2,"LastEvaluatedKey":{...}}
//! ```

use serde::Serialize;

use super::query::Page;
use super::{Item, Names, Operation, is_false};

/// A `Scan` request.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Scan {
    /// The table.
    pub table_name: String,
    /// Filter applied after reading (still costs the read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter_expression: Option<String>,
    /// `#name` placeholders.
    #[serde(skip_serializing_if = "Names::is_empty")]
    pub expression_attribute_names: Names,
    /// `:value` placeholders.
    #[serde(skip_serializing_if = "Item::is_empty")]
    pub expression_attribute_values: Item,
    /// Strongly consistent read.
    #[serde(skip_serializing_if = "is_false")]
    pub consistent_read: bool,
    /// Continue after this key (from the previous page's `LastEvaluatedKey`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclusive_start_key: Option<Item>,
    /// Page size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// `"TOTAL"` to learn the capacity used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_consumed_capacity: Option<&'static str>,
}

impl Operation for Scan {
    const NAME: &'static str = "Scan";
    type Output = Page;

    fn capacity(output: &Page) -> f64 {
        super::units(&output.consumed_capacity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes() {
        let op = Scan {
            table_name: "t".into(),
            consistent_read: true,
            limit: Some(10),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&op).unwrap(),
            r#"{"TableName":"t","ConsistentRead":true,"Limit":10}"#
        );
    }
}
