//! `TransactWriteItems`: several writes that all happen or none do. Used to make a caller's
//! own write conditional on still holding a lock (a `ConditionCheck` on the lock item).
//!
//! ```text
//! {"TransactItems":[{"ConditionCheck":{"TableName":"lockTable","Key":{...},
//!   "ConditionExpression":"#rvn = :rvn","ExpressionAttributeNames":{...},
//!   "ExpressionAttributeValues":{...},"ReturnValuesOnConditionCheckFailure":"ALL_OLD"}},
//!  {"Put":{"TableName":"data","Item":{...}}}]}
//! -> {}   or   TransactionCanceledException with one CancellationReason per action
//! ```

use serde::{Deserialize, Serialize};

use super::{ConsumedCapacity, Item, Names, Operation, ReturnOnConditionFailure};

/// The parts every transactional action shares.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransactTarget {
    /// The table.
    pub table_name: String,
    /// The item's key (unused by `Put`, which carries the whole item).
    #[serde(skip_serializing_if = "Item::is_empty")]
    pub key: Item,
    /// The whole item, for `Put`.
    #[serde(skip_serializing_if = "Item::is_empty")]
    pub item: Item,
    /// For `Update`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_expression: Option<String>,
    /// Condition that must hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition_expression: Option<String>,
    /// `#name` placeholders.
    #[serde(skip_serializing_if = "Names::is_empty")]
    pub expression_attribute_names: Names,
    /// `:value` placeholders.
    #[serde(skip_serializing_if = "Item::is_empty")]
    pub expression_attribute_values: Item,
    /// What a failed condition returns in the cancellation reasons.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_values_on_condition_check_failure: Option<ReturnOnConditionFailure>,
}

/// One action of a transaction.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum TransactItem {
    /// Only check a condition.
    ConditionCheck(TransactTarget),
    /// Put an item.
    Put(TransactTarget),
    /// Update an item.
    Update(TransactTarget),
    /// Delete an item.
    Delete(TransactTarget),
}

/// A `TransactWriteItems` request.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransactWriteItems {
    /// The actions, at most 100.
    pub transact_items: Vec<TransactItem>,
    /// Makes retries of the same transaction idempotent for 10 minutes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_request_token: Option<String>,
    /// `"TOTAL"` to learn the capacity used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_consumed_capacity: Option<&'static str>,
}

/// A successful `TransactWriteItems`'s answer.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TransactWriteItemsOutput {
    /// Capacity used per table, if asked for.
    #[serde(default)]
    pub consumed_capacity: Option<Vec<ConsumedCapacity>>,
}

impl Operation for TransactWriteItems {
    const NAME: &'static str = "TransactWriteItems";
    type Output = TransactWriteItemsOutput;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamodb::AttributeValue;

    #[test]
    fn encodes() {
        let op = TransactWriteItems {
            transact_items: vec![
                TransactItem::ConditionCheck(TransactTarget {
                    table_name: "l".into(),
                    key: [("k".to_owned(), AttributeValue::s("a"))].into(),
                    condition_expression: Some("attribute_exists(k)".into()),
                    ..Default::default()
                }),
                TransactItem::Put(TransactTarget {
                    table_name: "d".into(),
                    item: [("k".to_owned(), AttributeValue::s("b"))].into(),
                    ..Default::default()
                }),
            ],
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&op).unwrap(),
            r#"{"TransactItems":[{"ConditionCheck":{"TableName":"l","Key":{"k":{"S":"a"}},"ConditionExpression":"attribute_exists(k)"}},{"Put":{"TableName":"d","Item":{"k":{"S":"b"}}}}]}"#
        );
    }
}
