//! Several workers race for one lock on DynamoDB: acquisitions, handoffs, a crashed holder
//! taken over after its lease, and what it all cost in DynamoDB requests.
//!
//! Run with `bash scripts/demo.sh` (starts DynamoDB Local itself), or against any DynamoDB
//! with `AWS_REGION`, credentials and optionally `AWS_ENDPOINT_URL_DYNAMODB` set:
//! `cargo run --release --example demo`.
#![allow(clippy::disallowed_methods)] // The demo prints real elapsed time.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ddb_lock::rt::TokioHost;
use ddb_lock::table::CreateTableOptions;
use ddb_lock::{ClientConfig, LockClient, LockOptions, Stats, TableOptions};

const WORKERS: usize = 5;
const RUN: Duration = Duration::from_secs(8);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let table = TableOptions::new().table_name("ddbLockDemo");
    let config = ClientConfig::from_env()?.table(table);
    let admin = LockClient::new(TokioHost::new(), config.clone())?;
    admin.create_table(&CreateTableOptions::new()).await?;
    println!(
        "ddb-lock demo: {WORKERS} workers race for lock 'reports/nightly' for {RUN:?}\n\
         lease 1 s, renewed every 300 ms while held, waiters poll every 100 ms\n\
         worker 0 crashes while holding the lock once: the others take over after its lease\n"
    );
    let start = Instant::now();
    let last_release: Arc<Mutex<Option<Instant>>> = Arc::default();
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let client = LockClient::new(TokioHost::new(), config.clone())?;
        let last_release = last_release.clone();
        tasks.push(tokio::spawn(async move {
            let opts = LockOptions::new()
                .lease(Duration::from_millis(1000))
                .prolong_every(Duration::from_millis(300))
                .poll_interval(Duration::from_millis(100));
            let mut held = 0u32;
            let mut crashed = false;
            while start.elapsed() < RUN {
                let lock = match client
                    .lock("reports", "nightly", &opts.clone().acquire_timeout(RUN))
                    .await
                {
                    Ok(lock) => lock,
                    Err(e) => {
                        println!("{:>6.2}s  worker {w} gave up: {e}", secs(start));
                        break;
                    }
                };
                held += 1;
                let gap = last_release
                    .lock()
                    .unwrap()
                    .take()
                    .map(|t| {
                        format!(
                            "{:.0} ms after the last release",
                            t.elapsed().as_secs_f64() * 1e3
                        )
                    })
                    .unwrap_or_else(|| "after a takeover or first".into());
                println!(
                    "{:>6.2}s  worker {w} acquired ({gap}), version {}",
                    secs(start),
                    &lock.record().rvn[..8]
                );
                if w == 0 && !crashed && held == 1 {
                    // Crash: abandoning the handle stops renewals and releases nothing, as a
                    // dead process would (dropping it would release it in the background).
                    // A waiter takes over once it has seen the same record version for a
                    // whole lease.
                    crashed = true;
                    println!("{:>6.2}s  worker {w} CRASHES holding the lock", secs(start));
                    lock.abandon();
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    println!("{:>6.2}s  worker {w} restarts", secs(start));
                    continue;
                }
                tokio::time::sleep(Duration::from_millis(400)).await;
                lock.release().await.expect("release");
                *last_release.lock().unwrap() = Some(Instant::now());
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            (w, held, client.stats())
        }));
    }
    let mut total = Stats::default();
    let mut rows = Vec::new();
    for t in tasks {
        let (w, held, s) = t.await?;
        rows.push((w, held, s.clone()));
        add(&mut total, &s);
    }
    println!("\nworker  acquisitions  PutItem(failed)  UpdateItem(failed)  GetItem  DeleteItem");
    for (w, held, s) in &rows {
        println!(
            "{w:>6}  {held:>12}  {:>9}({:>3})  {:>12}({:>3})  {:>7}  {:>10}",
            s.put_item.requests,
            s.put_item.conditional_failures,
            s.update_item.requests,
            s.update_item.conditional_failures,
            s.get_item.requests,
            s.delete_item.requests
        );
    }
    let acquisitions: u32 = rows.iter().map(|r| r.1).sum();
    println!(
        "\n{acquisitions} acquisitions in {:.1} s; {} requests ({:.1} per acquisition), {} failed conditional writes, {:.1} capacity units reported",
        secs(start),
        total.requests(),
        total.requests() as f64 / f64::from(acquisitions.max(1)),
        total.conditional_failures(),
        total.capacity_units
    );
    println!("waiting cost reads (GetItem), not failed writes: that is what keeps the bill low.");
    Ok(())
}

fn secs(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

fn add(total: &mut Stats, s: &Stats) {
    for (t, s) in [
        (&mut total.put_item, &s.put_item),
        (&mut total.update_item, &s.update_item),
        (&mut total.get_item, &s.get_item),
        (&mut total.delete_item, &s.delete_item),
        (&mut total.other, &s.other),
    ] {
        t.requests += s.requests;
        t.conditional_failures += s.conditional_failures;
    }
    total.capacity_units += s.capacity_units;
}
