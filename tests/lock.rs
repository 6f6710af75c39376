//! The lock against DynamoDB Local: the TypeScript client's feature set, done right. The
//! scenarios every host runs (free lock, takeover, handoff, prolong, loss, try_lock) live in
//! `tests/scenarios/mod.rs`.
#![allow(clippy::disallowed_methods)] // Tests measure real elapsed time; the crate itself may not.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use ddb_lock::dynamodb::{self, AttributeValue};
use ddb_lock::table::{CreateTableOptions, TableError};
use ddb_lock::{AcquireError, LockOptions, LossReason, ReleaseOutcome, TableOptions, TryLock};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_is_rejected_before_any_request() {
    let (_, c) = fresh("invalid").await;
    let before = c.stats().requests();
    let bad = [
        c.lock("g", "", &LockOptions::new()).await,
        c.lock("", "i", &LockOptions::new()).await,
        c.lock("g", &"x".repeat(2049), &LockOptions::new()).await,
        c.lock(
            "g",
            "i",
            &LockOptions::new().lease(ms(1000)).prolong_every(ms(600)),
        )
        .await,
        c.lock("g", "i", &LockOptions::new().trust_local_time(true))
            .await,
    ];
    for r in bad {
        assert!(matches!(r, Err(AcquireError::InvalidInput(_))), "{r:?}");
    }
    assert_eq!(c.stats().requests(), before);
    let bad_table = ddb_lock::LockClient::new(
        ddb_lock::rt::TokioHost::new(),
        config(TableOptions::new().sort_key("ownerName")),
    );
    assert!(bad_table.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_local_time_takes_over_on_stored_expiry() {
    let (t, a) = fresh("trust").await;
    let b = client(&t);
    let lease = ms(2000);
    let dead = a
        .lock("g", "k", &LockOptions::new().lease(lease).prolong(false))
        .await
        .unwrap();
    let stored = dead.record().last_updated.as_millis();
    tokio::time::sleep(ms(1200)).await;
    let start = Instant::now();
    let opts = LockOptions::new()
        .lease(lease)
        .prolong(false)
        .trust_local_time(true)
        .wait_duration(ms(300))
        .max_clock_skew(ms(100))
        .poll_interval(ms(100));
    let lock = b.lock("g", "k", &opts).await.unwrap();
    let waited = start.elapsed();
    let taken_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(
        taken_at > stored + 2000 + 100,
        "took over before stored expiry + skew"
    );
    assert_eq!(b.stats().update_item.requests, 1, "one takeover write");
    assert!(
        waited < ms(1500),
        "trusting stored time must beat watching a whole lease: {waited:?}"
    );
    lock.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_retry_count_gives_up_while_the_holder_is_alive() {
    let (t, a) = fresh("retries").await;
    let b = client(&t);
    let held = a
        .lock(
            "g",
            "k",
            &LockOptions::new().lease(ms(800)).prolong_every(ms(200)),
        )
        .await
        .unwrap();
    let start = Instant::now();
    let r = b
        .lock(
            "g",
            "k",
            &LockOptions::new()
                .lease(ms(800))
                .prolong(false)
                .max_retry_count(2)
                .poll_interval(ms(100)),
        )
        .await;
    match r {
        Err(AcquireError::MaxRetries {
            attempts: 3,
            holder: Some(h),
        }) => assert_eq!(h.owner, a.owner()),
        other => panic!("{other:?}"),
    }
    // Two waits: a whole lease from the first sight, then one from the latest renewal seen.
    assert!(
        start.elapsed() >= ms(1200),
        "two lease-long waits: {:?}",
        start.elapsed()
    );
    assert!(held.is_held());
    held.release().await.unwrap();
    let r = b
        .lock("g", "k2", &LockOptions::new().max_retry_count(0))
        .await;
    assert!(r.is_ok(), "free lock needs no retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_timeout_bounds_the_wait() {
    let (t, a) = fresh("timeout").await;
    let b = client(&t);
    let held = a.lock("g", "k", &LockOptions::new()).await.unwrap();
    let start = Instant::now();
    let r = b
        .lock(
            "g",
            "k",
            &LockOptions::new()
                .acquire_timeout(ms(700))
                .poll_interval(ms(100)),
        )
        .await;
    assert!(
        matches!(r, Err(AcquireError::Timeout { holder: Some(_) })),
        "{r:?}"
    );
    let e = start.elapsed();
    assert!(e >= ms(700) && e < ms(1500), "{e:?}");
    held.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prolonging_keeps_a_lock_past_its_lease() {
    let (t, a) = fresh("prolong").await;
    let b = client(&t);
    let opts = LockOptions::new().lease(ms(600)).prolong_every(ms(150));
    let lock = a.lock("g", "k", &opts).await.unwrap();
    let first = lock.record().rvn;
    tokio::time::sleep(ms(2000)).await;
    assert!(lock.is_held(), "{:?}", lock.status());
    assert_ne!(lock.record().rvn, first, "renewed");
    match b.try_lock("g", "k", &opts).await.unwrap() {
        TryLock::Held(busy) => {
            assert_eq!(busy.holder.owner, a.owner());
            assert!(busy.retry_after <= ms(600));
        }
        TryLock::Acquired(_) => panic!("acquired a renewed lock"),
    }
    let renewals = a.stats().update_item.requests;
    assert!(
        (8..=16).contains(&renewals),
        "renewed every 150 ms for 2 s: {renewals}"
    );
    lock.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrenewed_lock_reports_expiry() {
    let (_, a) = fresh("expiry").await;
    let lock = a
        .lock("g", "k", &LockOptions::new().lease(ms(500)).prolong(false))
        .await
        .unwrap();
    let warned = lock.expiring(ms(100)).await;
    assert!(warned <= ms(100) && lock.is_held());
    let reason = tokio::time::timeout(ms(1000), lock.lost()).await.unwrap();
    assert!(
        matches!(reason, LossReason::Expired { last_error: None }),
        "{reason:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_all_deletes_every_held_lock() {
    let (_, c) = fresh("all").await;
    let mut locks = Vec::new();
    for id in ["a", "b", "c"] {
        locks.push(c.lock("g", id, &LockOptions::new()).await.unwrap());
    }
    assert_eq!(scan(&c).await.len(), 3);
    let results = c.release_all().await;
    assert_eq!(results.len(), 3);
    assert!(
        results
            .iter()
            .all(|(_, r)| r == &Ok(ReleaseOutcome::Released)),
        "{results:?}"
    );
    assert!(scan(&c).await.is_empty(), "nothing left in DynamoDB");
    assert_eq!(c.held_count(), 0);
    assert!(locks.iter().all(|l| !l.is_held()));
    assert!(c.release_all().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn additional_attributes_and_ttl_are_written_and_refreshed() {
    let table = TableOptions::new()
        .table_name(unique_table("ttl"))
        .ttl_key("expiresAt")
        .ttl(Duration::from_secs(600));
    let (_, c) = fresh_with(table).await;
    let opts = LockOptions::new()
        .lease(ms(3000))
        .prolong_every(ms(1100))
        .additional_attribute("job", AttributeValue::s("report"))
        .additional_attribute("attempt", AttributeValue::n(3));
    let lock = c.lock("g", "k", &opts).await.unwrap();
    let item = raw_item(&c, "g", "k").await.unwrap();
    let attrs = item["additionalAttributes"].as_m().unwrap();
    assert_eq!(attrs["job"].as_s(), Some("report"));
    assert_eq!(attrs["attempt"].as_u64(), Some(3));
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ttl1 = item["expiresAt"].as_u64().unwrap();
    assert!(ttl1.abs_diff(now_s + 600) <= 2, "{ttl1} vs {now_s}");
    let updated1 = item["lastUpdatedTimeInMs"].as_u64().unwrap();
    tokio::time::sleep(ms(2300)).await;
    let item = raw_item(&c, "g", "k").await.unwrap();
    assert!(item["expiresAt"].as_u64().unwrap() > ttl1, "TTL refreshed");
    assert!(item["lastUpdatedTimeInMs"].as_u64().unwrap() >= updated1 + 1000);
    assert_eq!(
        item["additionalAttributes"].as_m().unwrap()["job"].as_s(),
        Some("report")
    );
    lock.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_id_in_another_group_is_independent() {
    let (t, a) = fresh("groups").await;
    let b = client(&t);
    let one = a.lock("g1", "same", &LockOptions::new()).await.unwrap();
    let two = b
        .lock("g2", "same", &LockOptions::new().max_retry_count(0))
        .await
        .unwrap();
    assert!(one.is_held() && two.is_held());
    assert_eq!(b.stats().put_item.conditional_failures, 0);
    one.release().await.unwrap();
    two.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_lockers_all_acquire_one_at_a_time() {
    let (t, _) = fresh("fifty").await;
    let inside = Arc::new(AtomicUsize::new(0));
    let opts = LockOptions::new()
        .lease(ms(500))
        .prolong(false)
        .poll_interval(ms(25));
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let c = client(&t);
        let inside = inside.clone();
        let opts = opts.clone();
        tasks.push(tokio::spawn(async move {
            let lock = c.lock("g", "hot", &opts).await.expect("acquired");
            let start = std::time::SystemTime::now();
            assert_eq!(
                inside.fetch_add(1, Ordering::SeqCst),
                0,
                "two holders at once"
            );
            tokio::time::sleep(ms(5)).await;
            inside.fetch_sub(1, Ordering::SeqCst);
            let end = std::time::SystemTime::now();
            assert!(lock.is_held(), "still within the lease when done");
            lock.release().await.unwrap();
            (start, end)
        }));
    }
    let mut spans = Vec::new();
    for t in tasks {
        spans.push(t.await.unwrap());
    }
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "critical sections overlap: {w:?}");
    }
    assert_eq!(spans.len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_helper_creates_checks_and_explains() {
    let name = unique_table("schema");
    let c = client(&TableOptions::new().table_name(name.clone()));
    assert!(matches!(
        c.check_table().await,
        Err(TableError::Dynamo(dynamodb::Error::NotFound { .. }))
    ));
    assert_eq!(
        c.create_table(&CreateTableOptions::new()).await.unwrap(),
        ddb_lock::table::TableCreated::Created
    );
    assert_eq!(
        c.create_table(&CreateTableOptions::new()).await.unwrap(),
        ddb_lock::table::TableCreated::AlreadyExisted
    );
    c.check_table().await.unwrap();
    let other_keys = client(
        &TableOptions::new()
            .table_name(name)
            .partition_key("pk")
            .sort_key("sk"),
    );
    match other_keys.check_table().await {
        Err(e @ TableError::KeySchema { .. }) => assert!(e.to_string().contains("lockId")),
        other => panic!("{other:?}"),
    }
}
