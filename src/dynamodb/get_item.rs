//! `GetItem`: read one item by key.
//!
//! ```text
//! {"TableName":"lockTable","Key":{"lockId":{"S":"a"},"lockGroup":{"S":"g"}},"ConsistentRead":true}
//! -> {"Item":{...}}   or   {}   when there is no such item
//! ```

use serde::{Deserialize, Serialize};

use super::{ConsumedCapacity, Item, Names, Operation, is_false};

/// A `GetItem` request.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetItem {
    /// The table.
    pub table_name: String,
    /// The item's key.
    pub key: Item,
    /// Strongly consistent read (lock decisions always use one).
    #[serde(skip_serializing_if = "is_false")]
    pub consistent_read: bool,
    /// Attributes to return (all when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projection_expression: Option<String>,
    /// `#name` placeholders.
    #[serde(skip_serializing_if = "Names::is_empty")]
    pub expression_attribute_names: Names,
    /// `"TOTAL"` to learn the capacity used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_consumed_capacity: Option<&'static str>,
}

/// A successful `GetItem`'s answer.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetItemOutput {
    /// The item, `None` if there is none.
    #[serde(default)]
    pub item: Option<Item>,
    /// Capacity used, if asked for.
    #[serde(default)]
    pub consumed_capacity: Option<ConsumedCapacity>,
}

impl Operation for GetItem {
    const NAME: &'static str = "GetItem";
    type Output = GetItemOutput;

    fn capacity(output: &GetItemOutput) -> f64 {
        super::units(&output.consumed_capacity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamodb::AttributeValue;

    #[test]
    fn encodes_and_decodes() {
        let op = GetItem {
            table_name: "t".into(),
            key: [("k".to_owned(), AttributeValue::s("v"))].into(),
            consistent_read: true,
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&op).unwrap(),
            r#"{"TableName":"t","Key":{"k":{"S":"v"}},"ConsistentRead":true}"#
        );
        assert_eq!(
            serde_json::from_str::<GetItemOutput>("{}").unwrap().item,
            None
        );
    }
}
