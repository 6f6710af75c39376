//! `UpdateItem`: change attributes of one item (creating it if absent), optionally under a
//! condition.
//!
//! ```text
//! {"TableName":"lockTable","Key":{"lockId":{"S":"a"},"lockGroup":{"S":"g"}},
//!  "UpdateExpression":"SET #rvn = :new","ConditionExpression":"#rvn = :old",
//!  "ExpressionAttributeNames":{...},"ExpressionAttributeValues":{...},
//!  "ReturnValues":"ALL_NEW","ReturnValuesOnConditionCheckFailure":"ALL_OLD"}
//! -> {"Attributes":{...},"ConsumedCapacity":{...}}
//! ```

use serde::{Deserialize, Serialize};

use super::{ConsumedCapacity, Item, Names, Operation, ReturnOnConditionFailure};

/// An `UpdateItem` request.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateItem {
    /// The table.
    pub table_name: String,
    /// The item's key.
    pub key: Item,
    /// `SET ...`, `ADD ...`, `REMOVE ...`.
    pub update_expression: String,
    /// Condition that must hold for the write to happen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition_expression: Option<String>,
    /// `#name` placeholders.
    #[serde(skip_serializing_if = "Names::is_empty")]
    pub expression_attribute_names: Names,
    /// `:value` placeholders.
    #[serde(skip_serializing_if = "Item::is_empty")]
    pub expression_attribute_values: Item,
    /// `"ALL_NEW"` etc. to get attributes back on success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_values: Option<&'static str>,
    /// What to return when the condition fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_values_on_condition_check_failure: Option<ReturnOnConditionFailure>,
    /// `"TOTAL"` to learn the capacity used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_consumed_capacity: Option<&'static str>,
}

/// A successful `UpdateItem`'s answer.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateItemOutput {
    /// The attributes asked for with `ReturnValues`.
    #[serde(default)]
    pub attributes: Option<Item>,
    /// Capacity used, if asked for.
    #[serde(default)]
    pub consumed_capacity: Option<ConsumedCapacity>,
}

impl Operation for UpdateItem {
    const NAME: &'static str = "UpdateItem";
    type Output = UpdateItemOutput;

    fn capacity(output: &UpdateItemOutput) -> f64 {
        super::units(&output.consumed_capacity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamodb::AttributeValue;

    #[test]
    fn encodes_and_decodes() {
        let op = UpdateItem {
            table_name: "t".into(),
            key: [("k".to_owned(), AttributeValue::s("v"))].into(),
            update_expression: "SET a = :a".into(),
            expression_attribute_values: [(":a".to_owned(), AttributeValue::n(1))].into(),
            return_values: Some("ALL_NEW"),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&op).unwrap(),
            r#"{"TableName":"t","Key":{"k":{"S":"v"}},"UpdateExpression":"SET a = :a","ExpressionAttributeValues":{":a":{"N":"1"}},"ReturnValues":"ALL_NEW"}"#
        );
        let out: UpdateItemOutput =
            serde_json::from_str(r#"{"Attributes":{"a":{"N":"1"}}}"#).unwrap();
        assert_eq!(out.attributes.unwrap()["a"].as_u64(), Some(1));
    }
}
