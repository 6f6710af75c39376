//! Shared helpers for tests against DynamoDB Local (started by `scripts/ddb-local.sh run`).
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

#[path = "../scenarios/mod.rs"]
#[macro_use]
#[allow(unused_macros, unreachable_pub)]
mod scenarios;
#[allow(unused_imports)] // Not every test file uses both.
pub use scenarios::{overwrite_holder, raw_item};

use ddb_lock::dynamodb::{Item, Scan};
use ddb_lock::rt::TokioHost;
use ddb_lock::table::CreateTableOptions;
use ddb_lock::{ClientConfig, Credentials, LockClient, TableOptions};

/// DynamoDB Local's endpoint. Tests fail (never skip) without it.
pub fn endpoint() -> String {
    std::env::var("DDB_LOCAL_ENDPOINT").expect(
        "DDB_LOCAL_ENDPOINT is not set: run the tests with `bash scripts/test.sh` \
         (or `bash scripts/ddb-local.sh run -- cargo test`)",
    )
}

/// A table name no other test uses.
pub fn unique_table(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn config(table: TableOptions) -> ClientConfig {
    ClientConfig::new("us-east-1", Credentials::new("local", "local", None))
        .endpoint_url(endpoint())
        .table(table)
}

pub fn client(table: &TableOptions) -> LockClient<TokioHost> {
    LockClient::new(TokioHost::new(), config(table.clone())).expect("valid config")
}

/// A fresh lock table and a client on it.
pub async fn fresh(prefix: &str) -> (TableOptions, LockClient<TokioHost>) {
    fresh_with(TableOptions::new().table_name(unique_table(prefix))).await
}

pub async fn fresh_with(table: TableOptions) -> (TableOptions, LockClient<TokioHost>) {
    let c = client(&table);
    c.create_table(&CreateTableOptions::new())
        .await
        .expect("create table");
    (table, c)
}

/// Every item of the table (consistent scan).
pub async fn scan(c: &LockClient<TokioHost>) -> Vec<Item> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = c
            .call(&Scan {
                table_name: c.table().name().to_owned(),
                consistent_read: true,
                exclusive_start_key: start.take(),
                ..Default::default()
            })
            .await
            .expect("scan");
        items.extend(page.items);
        match page.last_evaluated_key {
            Some(k) => start = Some(k),
            None => return items,
        }
    }
}
