//! A resource that rejects stale lock holders by their fencing tokens.
//!
//! Holder A takes the lock, then stalls (a GC pause, a frozen VM) past its lease. B takes the
//! lock over and writes. A wakes up and, still believing it holds the lock, writes too: the
//! resource refuses, because A's token is lower than the highest it has seen. The resource here
//! is a DynamoDB item written with `ConditionExpression: attribute_not_exists(#t) OR #t <= :t`.
//!
//! `bash scripts/ddb-local.sh run -- cargo run --example fencing`
#![allow(clippy::disallowed_methods)] // An example: it sleeps in real time.

use std::time::Duration;

use ddb_lock::dynamodb::{self, AttributeValue, PutItem};
use ddb_lock::rt::TokioHost;
use ddb_lock::table::CreateTableOptions;
use ddb_lock::{ClientConfig, Credentials, LockClient, LockOptions, TableOptions};

/// The protected resource: accepts a write only with a token at least the highest seen.
pub struct Resource {
    pub client: LockClient<TokioHost>,
    pub table: String,
}

impl Resource {
    /// Writes `value` with fencing token `token`; `Ok(false)` when refused as stale.
    pub async fn write(&self, token: u64, value: &str) -> Result<bool, dynamodb::Error> {
        let op = PutItem {
            table_name: self.table.clone(),
            item: [
                ("lockId".to_owned(), AttributeValue::s("resource")),
                ("lockGroup".to_owned(), AttributeValue::s("data")),
                ("value".to_owned(), AttributeValue::s(value)),
                ("token".to_owned(), AttributeValue::n(token)),
            ]
            .into(),
            condition_expression: Some("attribute_not_exists(#t) OR #t <= :t".into()),
            expression_attribute_names: dynamodb::names([("#t", "token")]),
            expression_attribute_values: [(":t".to_owned(), AttributeValue::n(token))].into(),
            ..Default::default()
        };
        match self.client.call(&op).await {
            Ok(_) => Ok(true),
            Err(dynamodb::Error::ConditionalCheckFailed { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Runs the scenario against `endpoint`; returns (A's token, B's token, A's late write accepted).
pub async fn scenario(
    endpoint: &str,
    table: &str,
) -> Result<(u64, u64, bool), Box<dyn std::error::Error>> {
    let config = ClientConfig::new("us-east-1", Credentials::new("local", "local", None))
        .endpoint_url(endpoint)
        .table(TableOptions::new().table_name(table));
    let a = LockClient::new(TokioHost::new(), config.clone())?;
    let b = LockClient::new(TokioHost::new(), config.clone())?;
    a.create_table(&CreateTableOptions::new()).await?;
    let resource = Resource {
        client: a.clone(),
        table: table.to_owned(),
    };

    let opts = LockOptions::new()
        .lease(Duration::from_millis(600))
        .prolong(false)
        .poll_interval(Duration::from_millis(50));
    let lock_a = a.lock("jobs", "report", &opts).await?;
    let token_a = lock_a.fencing_token().ok_or("no token")?;
    println!("A holds the lock with token {token_a}");
    assert!(resource.write(token_a, "written by A").await?);

    println!("A stalls past its lease...");
    let lock_b = b.lock("jobs", "report", &opts).await?;
    let token_b = lock_b.fencing_token().ok_or("no token")?;
    println!("B took over with token {token_b}");
    assert!(resource.write(token_b, "written by B").await?);

    let late = resource.write(token_a, "stale write by A").await?;
    println!(
        "A wakes and writes with token {token_a}: {}",
        if late {
            "ACCEPTED (bad)"
        } else {
            "rejected as stale"
        }
    );
    lock_b.release().await?;
    Ok((token_a, token_b, late))
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let endpoint = std::env::var("DDB_LOCAL_ENDPOINT")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL_DYNAMODB"))
        .map_err(|_| "set DDB_LOCAL_ENDPOINT (bash scripts/ddb-local.sh run -- cargo run --example fencing)")?;
    let (a, b, late) = scenario(&endpoint, "fencingExample").await?;
    assert!(b > a && !late);
    Ok(())
}
