//! `UpdateTimeToLive`: enable TTL on an attribute (epoch seconds, type N).
//!
//! ```text
//! {"TableName":"lockTable","TimeToLiveSpecification":{"Enabled":true,"AttributeName":"ttl"}}
//! -> {"TimeToLiveSpecification":{"Enabled":true,"AttributeName":"ttl"}}
//! ```

use serde::{Deserialize, Serialize};

use super::Operation;

/// Whether TTL is on and which attribute holds the expiry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TimeToLiveSpecification {
    /// On or off.
    pub enabled: bool,
    /// The attribute holding epoch seconds.
    pub attribute_name: String,
}

/// An `UpdateTimeToLive` request.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateTimeToLive {
    /// The table.
    pub table_name: String,
    /// The new setting.
    pub time_to_live_specification: TimeToLiveSpecification,
}

/// A successful `UpdateTimeToLive`'s answer.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateTimeToLiveOutput {
    /// The setting now in force.
    #[serde(default)]
    pub time_to_live_specification: Option<TimeToLiveSpecification>,
}

impl Operation for UpdateTimeToLive {
    const NAME: &'static str = "UpdateTimeToLive";
    type Output = UpdateTimeToLiveOutput;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_decodes() {
        let op = UpdateTimeToLive {
            table_name: "t".into(),
            time_to_live_specification: TimeToLiveSpecification {
                enabled: true,
                attribute_name: "ttl".into(),
            },
        };
        let json = serde_json::to_string(&op).unwrap();
        assert_eq!(
            json,
            r#"{"TableName":"t","TimeToLiveSpecification":{"Enabled":true,"AttributeName":"ttl"}}"#
        );
        let out: UpdateTimeToLiveOutput = serde_json::from_str(
            r#"{"TimeToLiveSpecification":{"Enabled":true,"AttributeName":"ttl"}}"#,
        )
        .unwrap();
        assert!(out.time_to_live_specification.unwrap().enabled);
    }
}
