//! `PutItem`: create or replace one item, optionally under a condition.
//!
//! ```text
//! {"TableName":"lockTable","Item":{"lockId":{"S":"a"},...},
//!  "ConditionExpression":"attribute_not_exists(#pk)","ExpressionAttributeNames":{"#pk":"lockId"},
//!  "ReturnValuesOnConditionCheckFailure":"ALL_OLD","ReturnConsumedCapacity":"TOTAL"}
//! -> {"ConsumedCapacity":{"TableName":"lockTable","CapacityUnits":1.0}}
//! ```

use serde::{Deserialize, Serialize};

use super::{ConsumedCapacity, Item, Names, Operation, ReturnOnConditionFailure};

/// A `PutItem` request.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutItem {
    /// The table.
    pub table_name: String,
    /// The whole item, key included.
    pub item: Item,
    /// Condition that must hold for the write to happen.
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

/// A successful `PutItem`'s answer.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutItemOutput {
    /// Capacity used, if asked for.
    #[serde(default)]
    pub consumed_capacity: Option<ConsumedCapacity>,
}

impl Operation for PutItem {
    const NAME: &'static str = "PutItem";
    type Output = PutItemOutput;

    fn capacity(output: &PutItemOutput) -> f64 {
        super::units(&output.consumed_capacity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamodb::{AttributeValue, names};

    #[test]
    fn encodes_the_wire_form() {
        let op = PutItem {
            table_name: "t".into(),
            item: [("k".to_owned(), AttributeValue::s("v"))].into(),
            condition_expression: Some("attribute_not_exists(#k)".into()),
            expression_attribute_names: names([("#k", "k")]),
            return_values_on_condition_check_failure: Some(ReturnOnConditionFailure::AllOld),
            return_consumed_capacity: Some("TOTAL"),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&op).unwrap(),
            r##"{"TableName":"t","Item":{"k":{"S":"v"}},"ConditionExpression":"attribute_not_exists(#k)","ExpressionAttributeNames":{"#k":"k"},"ReturnValuesOnConditionCheckFailure":"ALL_OLD","ReturnConsumedCapacity":"TOTAL"}"##
        );
        let out: PutItemOutput =
            serde_json::from_str(r#"{"ConsumedCapacity":{"TableName":"t","CapacityUnits":1.0}}"#)
                .unwrap();
        assert_eq!(out.consumed_capacity.unwrap().capacity_units, Some(1.0));
    }
}
