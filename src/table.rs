//! Creating and checking the lock table.

use std::fmt;
use std::time::Duration;

use crate::LockClient;
use crate::dynamodb::{
    self, CreateTable, DescribeTable, UpdateTimeToLive,
    create_table::{
        AttributeDefinition, KeySchemaElement, ProvisionedThroughput, TableDescription,
    },
    update_time_to_live::TimeToLiveSpecification,
};
use crate::host::Host;

/// How to create the lock table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateTableOptions {
    provisioned: Option<(u64, u64)>,
    wait: Duration,
}

impl Default for CreateTableOptions {
    fn default() -> Self {
        CreateTableOptions {
            provisioned: None,
            wait: Duration::from_secs(120),
        }
    }
}

impl CreateTableOptions {
    /// Pay-per-request billing, waiting up to two minutes for the table to be active.
    pub fn new() -> Self {
        Self::default()
    }
    /// Provisioned capacity instead of pay-per-request.
    pub fn provisioned(mut self, read_units: u64, write_units: u64) -> Self {
        self.provisioned = Some((read_units, write_units));
        self
    }
    /// How long to wait for the table to become active.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }
}

/// What [`LockClient::create_table`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableCreated {
    /// The table was created (and is active).
    Created,
    /// It existed already, with the right key schema.
    AlreadyExisted,
}

/// The lock table is missing, wrong, or could not be created.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum TableError {
    /// The table's keys are not the configured ones.
    KeySchema {
        /// What the options say: `(partition key, sort key)`, both of type S.
        expected: (String, String),
        /// What the table has: `(attribute, key type, attribute type)`.
        found: Vec<(String, String, String)>,
    },
    /// The table did not become active in time.
    NotActive {
        /// The last status seen.
        status: Option<String>,
    },
    /// DynamoDB refused (`NotFound` if the table does not exist).
    Dynamo(dynamodb::Error),
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableError::KeySchema { expected, found } => write!(
                f,
                "the lock table's key schema is {found:?}; expected partition key {:?} (S) and sort key {:?} (S)",
                expected.0, expected.1
            ),
            TableError::NotActive { status } => {
                write!(
                    f,
                    "the lock table did not become active (status {status:?})"
                )
            }
            TableError::Dynamo(e) => write!(f, "DynamoDB: {e}"),
        }
    }
}

impl std::error::Error for TableError {}

impl<H: Host> LockClient<H> {
    /// Creates the lock table (pay-per-request by default) with the configured key names,
    /// waits until it is active, and enables TTL when a TTL attribute is configured. An
    /// existing table is checked instead ([`check_table`](Self::check_table)). Waits at
    /// most `options.wait` for the table to become active.
    ///
    /// Cancellation: dropped before it returns, the table may have been created (DynamoDB
    /// goes on creating it); calling it again checks and finishes the job.
    pub async fn create_table(
        &self,
        options: &CreateTableOptions,
    ) -> Result<TableCreated, TableError> {
        let t = self.table();
        let key = |name: &str, kind: &str| KeySchemaElement {
            attribute_name: name.to_owned(),
            key_type: kind.to_owned(),
        };
        let def = |name: &str| AttributeDefinition {
            attribute_name: name.to_owned(),
            attribute_type: "S".to_owned(),
        };
        let op = CreateTable {
            table_name: t.name().to_owned(),
            key_schema: vec![
                key(t.partition_key_name(), "HASH"),
                key(t.sort_key_name(), "RANGE"),
            ],
            attribute_definitions: vec![def(t.partition_key_name()), def(t.sort_key_name())],
            billing_mode: if options.provisioned.is_some() {
                "PROVISIONED"
            } else {
                "PAY_PER_REQUEST"
            }
            .to_owned(),
            provisioned_throughput: options.provisioned.map(|(r, w)| ProvisionedThroughput {
                read_capacity_units: r,
                write_capacity_units: w,
            }),
        };
        let created = match self.call(&op).await {
            Ok(_) => TableCreated::Created,
            Err(dynamodb::Error::Service { code, .. }) if code == "ResourceInUseException" => {
                TableCreated::AlreadyExisted
            }
            Err(e) => return Err(TableError::Dynamo(e)),
        };
        self.wait_active(options.wait).await?;
        if let Some(ttl) = t.ttl_key_name() {
            let op = UpdateTimeToLive {
                table_name: t.name().to_owned(),
                time_to_live_specification: TimeToLiveSpecification {
                    enabled: true,
                    attribute_name: ttl.to_owned(),
                },
            };
            match self.call(&op).await {
                Ok(_) => {}
                // Already enabled: DynamoDB says so with a validation error.
                Err(dynamodb::Error::Validation { message })
                    if message.contains("already enabled") => {}
                Err(e) => return Err(TableError::Dynamo(e)),
            }
        }
        Ok(created)
    }

    /// Checks that the lock table exists and has the configured keys (both strings).
    ///
    /// Cancellation: nothing is left behind.
    pub async fn check_table(&self) -> Result<(), TableError> {
        let table = self.describe().await?;
        self.check_schema(&table)
    }

    async fn describe(&self) -> Result<TableDescription, TableError> {
        let out = self
            .call(&DescribeTable {
                table_name: self.table().name().to_owned(),
            })
            .await
            .map_err(TableError::Dynamo)?;
        out.table.ok_or_else(|| {
            TableError::Dynamo(dynamodb::Error::Malformed {
                status: 200,
                reason: "DescribeTable answer without Table".into(),
            })
        })
    }

    fn check_schema(&self, table: &TableDescription) -> Result<(), TableError> {
        let t = self.table();
        let type_of = |name: &str| {
            table
                .attribute_definitions
                .iter()
                .find(|d| d.attribute_name == name)
                .map(|d| d.attribute_type.clone())
                .unwrap_or_default()
        };
        let found: Vec<(String, String, String)> = table
            .key_schema
            .iter()
            .map(|k| {
                (
                    k.attribute_name.clone(),
                    k.key_type.clone(),
                    type_of(&k.attribute_name),
                )
            })
            .collect();
        let want = [
            (t.partition_key_name(), "HASH"),
            (t.sort_key_name(), "RANGE"),
        ];
        let ok = found.len() == 2
            && want.iter().all(|(name, kind)| {
                found
                    .iter()
                    .any(|(n, k, ty)| n == name && k == kind && ty == "S")
            });
        if ok {
            Ok(())
        } else {
            Err(TableError::KeySchema {
                expected: (
                    t.partition_key_name().to_owned(),
                    t.sort_key_name().to_owned(),
                ),
                found,
            })
        }
    }

    async fn wait_active(&self, wait: Duration) -> Result<(), TableError> {
        let host = self.host();
        let deadline = host.now().mono + wait;
        loop {
            let table = self.describe().await?;
            self.check_schema(&table)?;
            if table.table_status.as_deref() == Some("ACTIVE") {
                return Ok(());
            }
            let now = host.now().mono;
            if now >= deadline {
                return Err(TableError::NotActive {
                    status: table.table_status,
                });
            }
            host.sleep_until((now + Duration::from_millis(250)).min(deadline))
                .await;
        }
    }
}
