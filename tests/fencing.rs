//! Fencing tokens and writes guarded by the lock, against DynamoDB Local.
#![allow(clippy::disallowed_methods)] // Tests sleep in real time.

mod common;

#[path = "../examples/fencing.rs"]
#[allow(dead_code, unreachable_pub)]
mod example;

use std::time::Duration;

use common::*;
use ddb_lock::dynamodb::transact_write_items::{TransactItem, TransactTarget};
use ddb_lock::dynamodb::{self, AttributeValue, Item};
use ddb_lock::{GuardedWriteError, LockOptions, LossReason};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_increase_across_release_takeover_and_deletion() {
    let (t, a) = fresh("fence").await;
    let b = client(&t);
    let short = LockOptions::new()
        .lease(ms(300))
        .prolong(false)
        .poll_interval(ms(50));
    let mut tokens = Vec::new();

    let l = a.lock("g", "k", &short).await.unwrap();
    tokens.push(l.fencing_token().unwrap());
    l.release().await.unwrap();
    tokio::time::sleep(ms(5)).await;

    // Re-created after a delete: from the creator's clock.
    let l = b.lock("g", "k", &short).await.unwrap();
    tokens.push(l.fencing_token().unwrap());
    l.abandon(); // b dies holding it

    // Taken over: +1 in the same write.
    let l = a.lock("g", "k", &short).await.unwrap();
    tokens.push(l.fencing_token().unwrap());
    assert_eq!(
        raw_item(&a, "g", "k").await.unwrap()["fencingToken"].as_u64(),
        l.fencing_token()
    );
    l.abandon(); // as if this process had crashed

    // The item vanishes (as by TTL) while abandoned.
    let key: Item = [
        ("lockId".to_owned(), AttributeValue::s("k")),
        ("lockGroup".to_owned(), AttributeValue::s("g")),
    ]
    .into();
    a.call(&dynamodb::DeleteItem {
        table_name: t.name().into(),
        key,
        ..Default::default()
    })
    .await
    .unwrap();
    tokio::time::sleep(ms(5)).await;
    let l = b.lock("g", "k", &short).await.unwrap();
    tokens.push(l.fencing_token().unwrap());
    l.release().await.unwrap();

    assert!(tokens.windows(2).all(|w| w[0] < w[1]), "{tokens:?}");
    assert_eq!(tokens[2], tokens[1] + 1, "a takeover adds one: {tokens:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeping_the_item_on_release_keeps_counting_without_clocks() {
    let (t, a) = fresh("fencekeep").await;
    let b = client(&t);
    let keep = LockOptions::new()
        .keep_item_on_release(true)
        .max_retry_count(0);
    let l = a.lock("g", "k", &keep).await.unwrap();
    let first = l.fencing_token().unwrap();
    l.release().await.unwrap();
    let item = raw_item(&a, "g", "k").await.expect("item kept");
    assert_eq!(item["leaseDurationInMs"].as_u64(), Some(0));
    assert_eq!(item["fencingToken"].as_u64(), Some(first));
    // A released item is free at once: no wait, no failed attempt counted.
    let start = std::time::Instant::now();
    let l = b.lock("g", "k", &keep).await.unwrap();
    assert!(start.elapsed() < ms(500));
    assert_eq!(l.fencing_token(), Some(first + 1));
    let s = b.stats();
    assert_eq!(
        (s.put_item.requests, s.update_item.requests),
        (1, 1),
        "{s:?}"
    );
    l.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_holder_is_rejected_by_the_resource() {
    let (a, b, late) = example::scenario(&endpoint(), &unique_table("fenceex"))
        .await
        .unwrap();
    assert!(b > a, "{a} {b}");
    assert!(!late, "the resource accepted a stale holder's write");
}

fn data_put(table: &str, value: &str) -> TransactItem {
    TransactItem::Put(TransactTarget {
        table_name: table.to_owned(),
        item: [
            ("lockId".to_owned(), AttributeValue::s("data")),
            ("lockGroup".to_owned(), AttributeValue::s("data")),
            ("v".to_owned(), AttributeValue::s(value)),
        ]
        .into(),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_guarded_by_the_lock_happen_only_while_it_is_held() {
    let (t, a) = fresh("guard").await;
    let lock = a
        .lock(
            "g",
            "k",
            &LockOptions::new().lease(ms(3000)).prolong_every(ms(200)),
        )
        .await
        .unwrap();
    lock.write_if_held(vec![data_put(t.name(), "one")])
        .await
        .unwrap();
    assert_eq!(
        raw_item(&a, "data", "data").await.unwrap()["v"].as_s(),
        Some("one")
    );

    // Someone else takes the item over.
    overwrite_holder(&a, "g", "k", "thief").await;
    // Before the next renewal notices, the guarded write is refused by DynamoDB itself.
    match lock.write_if_held(vec![data_put(t.name(), "two")]).await {
        Err(GuardedWriteError::NotHeld { holder: Some(h) }) => assert_eq!(h.owner, "thief"),
        Err(GuardedWriteError::NotHeld { holder: None }) => {} // the renewal noticed first
        other => panic!("{other:?}"),
    }
    assert_eq!(
        raw_item(&a, "data", "data").await.unwrap()["v"].as_s(),
        Some("one")
    );
    assert!(matches!(
        tokio::time::timeout(ms(2000), lock.lost()).await.unwrap(),
        LossReason::Stolen { .. }
    ));
    assert!(matches!(
        lock.write_if_held(vec![data_put(t.name(), "three")]).await,
        Err(GuardedWriteError::NotHeld { holder: None })
    ));
}
