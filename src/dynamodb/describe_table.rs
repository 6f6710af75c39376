//! `DescribeTable`: a table's status and key schema.
//!
//! ```text
//! {"TableName":"lockTable"} -> {"Table":{"TableName":"lockTable","TableStatus":"ACTIVE","KeySchema":[...]}}
//! ```
//! A missing table fails with `ResourceNotFoundException`.

use serde::{Deserialize, Serialize};

use super::Operation;
use super::create_table::TableDescription;

/// A `DescribeTable` request.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeTable {
    /// The table.
    pub table_name: String,
}

/// A successful `DescribeTable`'s answer.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeTableOutput {
    /// The table.
    #[serde(default)]
    pub table: Option<TableDescription>,
}

impl Operation for DescribeTable {
    const NAME: &'static str = "DescribeTable";
    type Output = DescribeTableOutput;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_key_schema() {
        let out: DescribeTableOutput = serde_json::from_str(
            r#"{"Table":{"TableName":"t","TableStatus":"ACTIVE","KeySchema":[{"AttributeName":"lockId","KeyType":"HASH"}],"AttributeDefinitions":[{"AttributeName":"lockId","AttributeType":"S"}]}}"#,
        )
        .unwrap();
        let t = out.table.unwrap();
        assert_eq!(t.key_schema[0].attribute_name, "lockId");
        assert_eq!(
            serde_json::to_string(&DescribeTable {
                table_name: "t".into()
            })
            .unwrap(),
            r#"{"TableName":"t"}"#
        );
    }
}
