//! Uncontended acquire + release against DynamoDB Local, next to the cost of two bare requests.
//!
//! ```text
//! bash scripts/ddb-local.sh run -- cargo bench --bench acquire
//! ACQUIRE_WARMUP=3000 ACQUIRE_CYCLES=2000 bash scripts/ddb-local.sh run -- cargo bench --bench acquire
//! ```
//!
//! Defaults: 1000 measured cycles after 1000 warm-up cycles (DynamoDB Local is a JVM: its
//! JIT needs a few thousand requests before latencies settle). Each cycle is `lock` (prolong off) + `release` on a fresh table. A free lock must cost one
//! `PutItem` and its release one `DeleteItem`, no read (asserted). The "floor" is two bare
//! signed `GetItem`s (the same consistent read a waiter sends) on the same client and
//! connection pool: the least two round trips to this server can take. Samples of both are
//! interleaved so that drift in the machine's load hits both alike. Target: median cycle /
//! median floor <= 1.2.
//!
//! A third series, "raw writes", sends the cycle's own two requests (the lock's conditional
//! `PutItem` and its release's conditional `DeleteItem`, built by the same [`Layout`]) bare
//! through `call`: cycle / raw writes is the lock machinery's own overhead, while raw writes
//! / floor is what the server charges for two conditional writes over two reads.
//!
//! Under `cargo test` (no `--bench` argument) it runs a few cycles and checks the request
//! counts only.
#![allow(clippy::disallowed_methods)] // A benchmark measures real elapsed time.

use std::time::{Duration, Instant};

use ddb_lock::core::{Layout, LockKey};
use ddb_lock::host::Clock;
use ddb_lock::rt::TokioHost;
use ddb_lock::table::CreateTableOptions;
use ddb_lock::{ClientConfig, Credentials, LockClient, LockOptions, Stats, TableOptions};

const GROUP: &str = "bench";
const ID: &str = "acquire";

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `after - before`, per operation.
fn diff(after: &Stats, before: &Stats) -> Stats {
    let op = |a: ddb_lock::OpStats, b: ddb_lock::OpStats| ddb_lock::OpStats {
        requests: a.requests - b.requests,
        conditional_failures: a.conditional_failures - b.conditional_failures,
    };
    Stats {
        put_item: op(after.put_item, before.put_item),
        update_item: op(after.update_item, before.update_item),
        get_item: op(after.get_item, before.get_item),
        delete_item: op(after.delete_item, before.delete_item),
        other: op(after.other, before.other),
        throttled: after.throttled - before.throttled,
        errors: after.errors - before.errors,
        capacity_units: after.capacity_units - before.capacity_units,
        unexpected_responses: after.unexpected_responses - before.unexpected_responses,
    }
}

fn main() {
    let endpoint = match std::env::var("DDB_LOCAL_ENDPOINT") {
        Ok(e) if !e.is_empty() => e,
        _ => {
            eprintln!(
                "error: DDB_LOCAL_ENDPOINT is not set. This benchmark needs DynamoDB Local:\n  \
                 bash scripts/ddb-local.sh run -- cargo bench --bench acquire"
            );
            std::process::exit(2);
        }
    };
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let (warmup, cycles) = if bench_mode {
        (
            env_usize("ACQUIRE_WARMUP", 1000),
            env_usize("ACQUIRE_CYCLES", 1000),
        )
    } else {
        (2, 10)
    };
    assert!(cycles > 0, "ACQUIRE_CYCLES must be positive");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run(endpoint, warmup, cycles, bench_mode));
}

async fn run(endpoint: String, warmup: usize, cycles: usize, bench_mode: bool) {
    let table = TableOptions::new().table_name(format!("bench-acquire-{}", std::process::id()));
    let config = ClientConfig::new("us-east-1", Credentials::new("local", "local", None))
        .endpoint_url(&endpoint)
        .table(table.clone());
    let client = LockClient::new(TokioHost::new(), config).expect("valid config");
    client
        .create_table(&CreateTableOptions::new())
        .await
        .expect("create the bench table");
    let options = LockOptions::new().prolong(false);
    let layout = Layout::new(
        table,
        LockKey {
            group: GROUP.into(),
            id: ID.into(),
        },
    );
    let read = layout.get();

    let cycle = || async {
        let start = Instant::now();
        let lock = client.lock(GROUP, ID, &options).await.expect("lock");
        lock.release().await.expect("release");
        start.elapsed()
    };
    let floor = || async {
        let start = Instant::now();
        for _ in 0..2 {
            client.call(&read).await.expect("bare GetItem");
        }
        start.elapsed()
    };

    let raw_writes = || async {
        let rvn = format!("raw-{}", client.host().now().mono.as_nanos());
        let put = layout.create(
            client.owner(),
            &rvn,
            options.lease_duration(),
            &Default::default(),
            client.host().now().wall,
        );
        let delete = layout.release(std::slice::from_ref(&rvn), client.owner());
        let start = Instant::now();
        client.call(&put).await.expect("raw PutItem");
        client.call(&delete).await.expect("raw DeleteItem");
        start.elapsed()
    };

    for _ in 0..warmup {
        cycle().await;
        floor().await;
        raw_writes().await;
    }

    let mut cycle_times = Vec::with_capacity(cycles);
    let mut floor_times = Vec::with_capacity(cycles);
    let mut raw_times = Vec::with_capacity(cycles);
    let mut per_cycle = Stats::default();
    let mut counted = |s: Stats| {
        per_cycle.put_item.requests += s.put_item.requests;
        per_cycle.put_item.conditional_failures += s.put_item.conditional_failures;
        per_cycle.update_item.requests += s.update_item.requests;
        per_cycle.get_item.requests += s.get_item.requests;
        per_cycle.delete_item.requests += s.delete_item.requests;
        per_cycle.delete_item.conditional_failures += s.delete_item.conditional_failures;
        per_cycle.other.requests += s.other.requests;
        per_cycle.throttled += s.throttled;
        per_cycle.errors += s.errors;
        per_cycle.capacity_units += s.capacity_units;
    };
    let wall = Instant::now();
    for i in 0..cycles {
        // Alternate which comes first, so neither always follows the other.
        if i % 2 == 1 {
            floor_times.push(floor().await);
        }
        let before = client.stats();
        cycle_times.push(cycle().await);
        counted(diff(&client.stats(), &before));
        if i % 2 == 0 {
            floor_times.push(floor().await);
        }
        raw_times.push(raw_writes().await);
    }
    let wall = wall.elapsed();

    let n = cycles as u64;
    let s = &per_cycle;
    assert_eq!(
        (
            s.put_item.requests,
            s.delete_item.requests,
            s.get_item.requests,
            s.update_item.requests,
            s.other.requests
        ),
        (n, n, 0, 0, 0),
        "an uncontended cycle must cost exactly 1 PutItem + 1 DeleteItem and nothing else: {s:?}"
    );
    assert_eq!(
        (s.conditional_failures(), s.throttled, s.errors),
        (0, 0, 0),
        "no failures expected: {s:?}"
    );

    cycle_times.sort();
    floor_times.sort();
    raw_times.sort();
    let r50 = percentile(&raw_times, 50.0);
    let (c50, c99) = (
        percentile(&cycle_times, 50.0),
        percentile(&cycle_times, 99.0),
    );
    let (f50, f99) = (
        percentile(&floor_times, 50.0),
        percentile(&floor_times, 99.0),
    );
    let ratio = c50.as_secs_f64() / f50.as_secs_f64();
    let per = |x: u64| x as f64 / n as f64;

    println!("acquire + release, uncontended, prolong off ({endpoint})");
    println!("  cycles measured     {cycles} (after {warmup} warm-up), {wall:.2?} in all");
    println!(
        "  requests per cycle  PutItem {:.2}  DeleteItem {:.2}  GetItem {:.2}  UpdateItem {:.2}  other {:.2}",
        per(s.put_item.requests),
        per(s.delete_item.requests),
        per(s.get_item.requests),
        per(s.update_item.requests),
        per(s.other.requests),
    );
    println!(
        "  capacity per cycle  {:.2} units (as DynamoDB reports them)",
        s.capacity_units / n as f64
    );
    println!(
        "  cycle time          median {:.3} ms   p99 {:.3} ms   min {:.3} ms",
        ms(c50),
        ms(c99),
        ms(cycle_times[0])
    );
    println!(
        "  floor (2 bare GetItem) median {:.3} ms   p99 {:.3} ms   min {:.3} ms",
        ms(f50),
        ms(f99),
        ms(floor_times[0])
    );
    println!(
        "  raw writes (bare PutItem + DeleteItem) median {:.3} ms   p99 {:.3} ms",
        ms(r50),
        ms(percentile(&raw_times, 99.0)),
    );
    println!(
        "  cycle / raw writes  {:.3} (the lock machinery's own overhead)",
        c50.as_secs_f64() / r50.as_secs_f64()
    );
    println!(
        "  raw writes / floor  {:.3} (server: two conditional writes vs two reads)",
        r50.as_secs_f64() / f50.as_secs_f64()
    );
    println!(
        "  cycle / floor       {ratio:.3} (median / median; target <= 1.2){}",
        match (bench_mode, ratio <= 1.2) {
            (false, _) => "",
            (true, true) => "  ok",
            (true, false) => "  MISSED",
        }
    );
    if !bench_mode {
        println!("  (test mode: few cycles, timings not meaningful; run with `cargo bench`)");
    }
}
