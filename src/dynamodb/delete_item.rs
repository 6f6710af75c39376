//! `DeleteItem`: delete one item, optionally under a condition.
//!
//! ```text
//! {"TableName":"lockTable","Key":{...},"ConditionExpression":"#rvn = :rvn AND #owner = :me",
//!  "ExpressionAttributeNames":{...},"ExpressionAttributeValues":{...},
//!  "ReturnValuesOnConditionCheckFailure":"ALL_OLD"}
//! -> {"ConsumedCapacity":{...}}
//! ```
//! Deleting an absent item succeeds unless a condition requires the item.

use serde::{Deserialize, Serialize};

use super::{ConsumedCapacity, Item, Names, Operation, ReturnOnConditionFailure};

/// A `DeleteItem` request.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteItem {
    /// The table.
    pub table_name: String,
    /// The item's key.
    pub key: Item,
    /// Condition that must hold for the delete to happen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition_expression: Option<String>,
    /// `#name` placeholders.
    #[serde(skip_serializing_if = "Names::is_empty")]
    pub expression_attribute_names: Names,
    /// `:value` placeholders.
    #[serde(skip_serializing_if = "Item::is_empty")]
    pub expression_attribute_values: Item,
    /// What to return when the condition fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_values_on_condition_check_failure: Option<ReturnOnConditionFailure>,
    /// `"TOTAL"` to learn the capacity used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_consumed_capacity: Option<&'static str>,
}

/// A successful `DeleteItem`'s answer.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteItemOutput {
    /// Capacity used, if asked for.
    #[serde(default)]
    pub consumed_capacity: Option<ConsumedCapacity>,
}

impl Operation for DeleteItem {
    const NAME: &'static str = "DeleteItem";
    type Output = DeleteItemOutput;

    fn capacity(output: &DeleteItemOutput) -> f64 {
        super::units(&output.consumed_capacity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamodb::AttributeValue;

    #[test]
    fn encodes_and_decodes() {
        let op = DeleteItem {
            table_name: "t".into(),
            key: [("k".to_owned(), AttributeValue::s("v"))].into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&op).unwrap(),
            r#"{"TableName":"t","Key":{"k":{"S":"v"}}}"#
        );
        assert_eq!(
            serde_json::from_str::<DeleteItemOutput>("{}").unwrap(),
            DeleteItemOutput::default()
        );
    }
}
