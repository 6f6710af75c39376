//! The smallest native program: take one lock, release it, exit. `scripts/rss.sh` measures
//! its peak memory and wall time.
//!
//! ```text
//! bash scripts/ddb-local.sh run -- cargo run --release --example minimal
//! ```
//!
//! The endpoint comes from `AWS_ENDPOINT_URL_DYNAMODB` (or `AWS_ENDPOINT_URL`), else
//! `DDB_LOCAL_ENDPOINT`; region and credentials from `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`. The table (`lockTable`) is created if missing.

use ddb_lock::rt::TokioHost;
use ddb_lock::table::CreateTableOptions;
use ddb_lock::{ClientConfig, LockClient, LockOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let config = ClientConfig::from_vars(|k| match k {
        "AWS_ENDPOINT_URL_DYNAMODB" => var(k)
            .or_else(|| var("AWS_ENDPOINT_URL"))
            .or_else(|| var("DDB_LOCAL_ENDPOINT")),
        _ => var(k),
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = LockClient::new(TokioHost::new(), config)?;
        client.create_table(&CreateTableOptions::new()).await?;
        let lock = client
            .lock("minimal", "example", &LockOptions::new())
            .await?;
        println!("acquired as {}", client.owner());
        let outcome = lock.release().await?;
        println!("released: {outcome:?}");
        Ok(())
    })
}
