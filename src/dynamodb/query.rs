//! `Query`: the items of one partition (all groups of one lock id).
//!
//! ```text
//! {"TableName":"lockTable","KeyConditionExpression":"#pk = :pk",
//!  "ExpressionAttributeNames":{"#pk":"lockId"},"ExpressionAttributeValues":{":pk":{"S":"a"}},
//!  "ConsistentRead":true}
//! -> {"Items":[...],"Count":1,"LastEvaluatedKey":{...}}
//! ```

use serde::{Deserialize, Serialize};

use super::{ConsumedCapacity, Item, Names, Operation, is_false};

/// A `Query` request.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Query {
    /// The table.
    pub table_name: String,
    /// Which partition (and optionally sort key range).
    pub key_condition_expression: String,
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

/// One page of a `Query` or `Scan`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Page {
    /// The items of this page.
    #[serde(default)]
    pub items: Vec<Item>,
    /// Where the next page starts; `None` on the last page.
    #[serde(default)]
    pub last_evaluated_key: Option<Item>,
    /// Capacity used, if asked for.
    #[serde(default)]
    pub consumed_capacity: Option<ConsumedCapacity>,
}

impl Operation for Query {
    const NAME: &'static str = "Query";
    type Output = Page;

    fn capacity(output: &Page) -> f64 {
        super::units(&output.consumed_capacity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamodb::AttributeValue;

    #[test]
    fn encodes_and_decodes() {
        let op = Query {
            table_name: "t".into(),
            key_condition_expression: "#pk = :pk".into(),
            expression_attribute_names: crate::dynamodb::names([("#pk", "k")]),
            expression_attribute_values: [(":pk".to_owned(), AttributeValue::s("a"))].into(),
            consistent_read: true,
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&op).unwrap(),
            r##"{"TableName":"t","KeyConditionExpression":"#pk = :pk","ExpressionAttributeNames":{"#pk":"k"},"ExpressionAttributeValues":{":pk":{"S":"a"}},"ConsistentRead":true}"##
        );
        let page: Page = serde_json::from_str(
            r#"{"Items":[{"k":{"S":"a"}}],"Count":1,"ScannedCount":1,"LastEvaluatedKey":{"k":{"S":"a"}}}"#,
        )
        .unwrap();
        assert_eq!(page.items.len(), 1);
        assert!(page.last_evaluated_key.is_some());
    }
}
