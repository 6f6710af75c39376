//! A native lock client driven from the command line, one JSON line per event: the native side
//! of the wasm hosts' mutual-exclusion tests (`wasm-tests/workerd/test.mjs`).
//!
//! ```text
//! lock_peer create                          # create the table (or check it)
//! lock_peer lock GROUP ID LEASE_MS          # try once (report the holder), then wait, take it,
//!                                           #   release it
//! lock_peer hold GROUP ID LEASE_MS HOLD_MS  # take it, keep it HOLD_MS (renewed), release it
//! ```
//!
//! Endpoint from `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL` / `DDB_LOCAL_ENDPOINT`,
//! credentials and region from `AWS_*`, table from `LOCK_TABLE` (default `lockTable`).

use std::time::Duration;

use ddb_lock::host::Clock;
use ddb_lock::rt::TokioHost;
use ddb_lock::table::CreateTableOptions;
use ddb_lock::{ClientConfig, LockClient, LockOptions, LockRecord, TableOptions, TryLock};
use serde_json::{Value, json};

fn record(r: &LockRecord) -> Value {
    json!({ "owner": r.owner, "rvn": r.rvn, "lastUpdatedMs": r.last_updated.as_millis() })
}

fn emit(host: &TokioHost, event: &str, mut v: Value) {
    v["event"] = event.into();
    v["wallMs"] = host.now().wall.as_millis().into();
    println!("{v}");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut config = ClientConfig::from_vars(|k| match k {
        "AWS_ENDPOINT_URL_DYNAMODB" => var(k)
            .or_else(|| var("AWS_ENDPOINT_URL"))
            .or_else(|| var("DDB_LOCAL_ENDPOINT")),
        _ => var(k),
    })?;
    if let Some(t) = var("LOCK_TABLE") {
        config = config.table(TableOptions::new().table_name(t));
    }
    let arg = |i: usize| -> Result<&str, String> {
        args.get(i)
            .map(String::as_str)
            .ok_or_else(|| format!("missing argument {i}: see the usage in examples/lock_peer.rs"))
    };
    let millis = |i: usize| -> Result<Duration, Box<dyn std::error::Error>> {
        Ok(Duration::from_millis(arg(i)?.parse()?))
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let host = TokioHost::new();
        let client = LockClient::new(host.clone(), config)?;
        match arg(0)? {
            "create" => {
                let created = client.create_table(&CreateTableOptions::new()).await?;
                emit(&host, "table", json!({ "created": format!("{created:?}") }));
            }
            "lock" => {
                let (group, id) = (arg(1)?, arg(2)?);
                let lease = millis(3)?;
                let opts = LockOptions::new()
                    .lease(lease)
                    .prolong_every(lease / 4)
                    .poll_interval(Duration::from_millis(50))
                    .acquire_timeout(Duration::from_secs(30));
                match client.try_lock(group, id, &opts).await? {
                    TryLock::Held(busy) => {
                        emit(&host, "held", json!({ "holder": record(&busy.holder) }))
                    }
                    TryLock::Acquired(lock) => {
                        emit(&host, "free", json!({ "record": record(&lock.record()) }));
                        lock.release().await?;
                    }
                }
                let lock = client.lock(group, id, &opts).await?;
                let s = client.stats();
                emit(
                    &host,
                    "acquired",
                    json!({
                        "owner": client.owner(),
                        "takeovers": s.update_item.requests,
                        "reads": s.get_item.requests,
                    }),
                );
                lock.release().await?;
                emit(&host, "released", json!({}));
            }
            "hold" => {
                let (group, id) = (arg(1)?, arg(2)?);
                let lease = millis(3)?;
                let lock = client
                    .lock(
                        group,
                        id,
                        &LockOptions::new().lease(lease).prolong_every(lease / 4),
                    )
                    .await?;
                emit(&host, "acquired", json!({ "owner": client.owner() }));
                tokio::time::sleep(millis(4)?).await;
                let held = lock.is_held();
                lock.release().await?;
                emit(&host, "released", json!({ "heldToTheEnd": held }));
            }
            other => return Err(format!("unknown command {other:?}").into()),
        }
        Ok(())
    })
}
