//! `CreateTable`: create a table with a key schema and billing mode.
//!
//! ```text
//! {"TableName":"lockTable","KeySchema":[{"AttributeName":"lockId","KeyType":"HASH"},
//!  {"AttributeName":"lockGroup","KeyType":"RANGE"}],"AttributeDefinitions":[{"AttributeName":
//!  "lockId","AttributeType":"S"},...],"BillingMode":"PAY_PER_REQUEST"}
//! -> {"TableDescription":{"TableName":"lockTable","TableStatus":"CREATING",...}}
//! ```
//! An existing table fails with `ResourceInUseException`.

use serde::{Deserialize, Serialize};

use super::Operation;

/// One element of a key schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeySchemaElement {
    /// The attribute.
    pub attribute_name: String,
    /// `"HASH"` (partition key) or `"RANGE"` (sort key).
    pub key_type: String,
}

/// The type of a key attribute.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeDefinition {
    /// The attribute.
    pub attribute_name: String,
    /// `"S"`, `"N"` or `"B"`.
    pub attribute_type: String,
}

/// Provisioned read and write capacity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProvisionedThroughput {
    /// Read capacity units per second.
    pub read_capacity_units: u64,
    /// Write capacity units per second.
    pub write_capacity_units: u64,
}

/// A `CreateTable` request.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateTable {
    /// The table.
    pub table_name: String,
    /// Partition key, then sort key.
    pub key_schema: Vec<KeySchemaElement>,
    /// Types of the key attributes.
    pub attribute_definitions: Vec<AttributeDefinition>,
    /// `"PAY_PER_REQUEST"` or `"PROVISIONED"`.
    pub billing_mode: String,
    /// Required with `"PROVISIONED"`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provisioned_throughput: Option<ProvisionedThroughput>,
}

/// What DynamoDB says of a table (the fields this crate reads).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TableDescription {
    /// The table.
    #[serde(default)]
    pub table_name: Option<String>,
    /// `"CREATING"`, `"ACTIVE"`, `"UPDATING"`, `"DELETING"`, ...
    #[serde(default)]
    pub table_status: Option<String>,
    /// The key schema.
    #[serde(default)]
    pub key_schema: Vec<KeySchemaElement>,
    /// Types of the key (and index) attributes.
    #[serde(default)]
    pub attribute_definitions: Vec<AttributeDefinition>,
}

/// A successful `CreateTable`'s answer.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateTableOutput {
    /// The new table.
    #[serde(default)]
    pub table_description: Option<TableDescription>,
}

impl Operation for CreateTable {
    const NAME: &'static str = "CreateTable";
    type Output = CreateTableOutput;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_decodes() {
        let op = CreateTable {
            table_name: "t".into(),
            key_schema: vec![KeySchemaElement {
                attribute_name: "k".into(),
                key_type: "HASH".into(),
            }],
            attribute_definitions: vec![AttributeDefinition {
                attribute_name: "k".into(),
                attribute_type: "S".into(),
            }],
            billing_mode: "PAY_PER_REQUEST".into(),
            provisioned_throughput: None,
        };
        assert_eq!(
            serde_json::to_string(&op).unwrap(),
            r#"{"TableName":"t","KeySchema":[{"AttributeName":"k","KeyType":"HASH"}],"AttributeDefinitions":[{"AttributeName":"k","AttributeType":"S"}],"BillingMode":"PAY_PER_REQUEST"}"#
        );
        let out: CreateTableOutput = serde_json::from_str(
            r#"{"TableDescription":{"TableName":"t","TableStatus":"CREATING","ItemCount":0}}"#,
        )
        .unwrap();
        assert_eq!(
            out.table_description.unwrap().table_status.as_deref(),
            Some("CREATING")
        );
    }
}
