//! Lock scenarios written once, generic over the host, and run on every host against
//! DynamoDB Local: native tokio (`tests/scenarios.rs`), Node and headless Chromium
//! (`wasm-tests/tests/scenarios.rs`, which includes this file by `#[path]`).
//!
//! Time is measured and slept on the host's own clock and timers, so nothing here reads
//! `std::time` (which panics on wasm32). A harness provides the host and the endpoint
//! ([`Env`]) and expands [`scenario_tests!`] with its test attribute: both hosts run the same
//! list.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ddb_lock::dynamodb::{self, AttributeValue, Item};
use ddb_lock::host::Host;
use ddb_lock::table::CreateTableOptions;
use ddb_lock::time::Instant;
use ddb_lock::{
    ClientConfig, Credentials, LockClient, LockOptions, LockStatus, LossReason, ReleaseError,
    ReleaseOutcome, TableOptions, TryLock,
};
use futures_util::future::join_all;

/// Expands to one test per scenario, each with the given attribute and `Env` expression:
///
/// ```ignore
/// scenario_tests!(#[tokio::test(flavor = "multi_thread", worker_threads = 2)] native_env());
/// scenario_tests!(#[wasm_bindgen_test::wasm_bindgen_test] wasm_env());
/// ```
///
/// The including crate declares this module as `scenarios` at its root.
macro_rules! scenario_tests {
    (#[$attr:meta] $env:expr) => {
        scenario_tests!(@each #[$attr] $env;
            free_lock_costs_one_write_and_release_one_delete,
            held_lock_is_waited_for_and_taken_over_after_the_lease,
            a_waiter_takes_the_lock_right_after_a_release,
            prolonging_keeps_the_lock_past_its_lease,
            a_replaced_item_is_detected_as_lost,
            try_lock_returns_the_holder,
            concurrent_lockers_hold_one_at_a_time
        );
    };
    (@each #[$attr:meta] $env:expr; $($name:ident),* $(,)?) => {
        $(
            #[$attr]
            async fn $name() {
                crate::scenarios::$name(&$env).await;
            }
        )*
    };
}

/// What a host's harness provides: the host (clients made from it share its clocks) and
/// DynamoDB Local's endpoint.
pub struct Env<H: Host> {
    pub host: H,
    pub endpoint: String,
}

impl<H: Host> Env<H> {
    pub fn new(host: H, endpoint: impl Into<String>) -> Self {
        Env {
            host,
            endpoint: endpoint.into(),
        }
    }

    /// A client on `table` (its own owner name).
    pub fn client(&self, table: &TableOptions) -> LockClient<H> {
        let config = ClientConfig::new("us-east-1", Credentials::new("local", "local", None))
            .endpoint_url(self.endpoint.clone())
            .table(table.clone());
        LockClient::new(self.host.clone(), config).expect("valid config")
    }

    /// A fresh table (random name) and a client on it.
    pub async fn fresh(&self, prefix: &str) -> (TableOptions, LockClient<H>) {
        let mut bytes = [0u8; 6];
        self.host.fill(&mut bytes);
        let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let table = TableOptions::new().table_name(format!("{prefix}-{suffix}"));
        let c = self.client(&table);
        c.create_table(&CreateTableOptions::new())
            .await
            .expect("create table");
        (table, c)
    }

    /// The host's monotonic clock.
    pub fn now(&self) -> Instant {
        self.host.now().mono
    }

    /// Sleeps on the host's timers.
    pub async fn sleep(&self, d: Duration) {
        self.host.sleep_until(self.host.now().mono + d).await;
    }

    /// Time since `start` on the host's monotonic clock.
    pub fn since(&self, start: Instant) -> Duration {
        self.now() - start
    }

    /// `fut`, or a panic after `limit`.
    pub async fn within<T>(&self, limit: Duration, fut: impl std::future::Future<Output = T>) -> T {
        let fut = std::pin::pin!(fut);
        let timer = std::pin::pin!(self.sleep(limit));
        match futures_util::future::select(fut, timer).await {
            futures_util::future::Either::Left((v, _)) => v,
            futures_util::future::Either::Right(_) => panic!("not done within {limit:?}"),
        }
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The raw item of lock (group, id), read consistently.
pub async fn raw_item<H: Host>(c: &LockClient<H>, group: &str, id: &str) -> Option<Item> {
    let t = c.table();
    let key: Item = [
        (t.partition_key_name().to_owned(), AttributeValue::s(id)),
        (t.sort_key_name().to_owned(), AttributeValue::s(group)),
    ]
    .into();
    c.call(&dynamodb::GetItem {
        table_name: t.name().to_owned(),
        key,
        consistent_read: true,
        ..Default::default()
    })
    .await
    .expect("get")
    .item
}

/// Replaces the holder of lock (group, id) with `owner` and a new version, as another
/// client's takeover would.
pub async fn overwrite_holder<H: Host>(c: &LockClient<H>, group: &str, id: &str, owner: &str) {
    let t = c.table();
    c.call(&dynamodb::UpdateItem {
        table_name: t.name().into(),
        key: [
            (t.partition_key_name().to_owned(), AttributeValue::s(id)),
            (t.sort_key_name().to_owned(), AttributeValue::s(group)),
        ]
        .into(),
        update_expression: "SET ownerName = :o, recordVersionNumber = :r".into(),
        expression_attribute_values: [
            (":o".to_owned(), AttributeValue::s(owner)),
            (
                ":r".to_owned(),
                AttributeValue::s(format!("{owner}-version")),
            ),
        ]
        .into(),
        ..Default::default()
    })
    .await
    .expect("overwrite the holder");
}

pub async fn free_lock_costs_one_write_and_release_one_delete<H: Host>(env: &Env<H>) {
    let (_, c) = env.fresh("free").await;
    let lock = c.lock("g", "free", &LockOptions::new()).await.unwrap();
    let s = c.stats();
    assert_eq!(s.put_item.requests, 1, "{s:?}");
    assert_eq!(s.requests() - s.other.requests, 1, "one PutItem: {s:?}");
    assert_eq!(s.get_item.requests, 0);
    assert!(lock.is_held());
    let item = raw_item(&c, "g", "free").await.expect("item written");
    assert_eq!(item["ownerName"].as_s(), Some(c.owner()));
    assert_eq!(
        item["recordVersionNumber"].as_s(),
        Some(lock.record().rvn.as_str())
    );
    assert_eq!(item["leaseDurationInMs"].as_u64(), Some(20_000));
    // The host's wall clock was read (a year-2020+ epoch, not zero).
    assert!(item["lastUpdatedTimeInMs"].as_u64().unwrap() > 1_600_000_000_000);
    assert_eq!(lock.release().await.unwrap(), ReleaseOutcome::Released);
    assert!(raw_item(&c, "g", "free").await.is_none());
    let s = c.stats();
    assert_eq!((s.delete_item.requests, s.put_item.requests), (1, 1));
    assert!(matches!(
        lock.status(),
        LockStatus::Lost(LossReason::Released)
    ));
    assert!(s.capacity_units >= 2.0, "capacity counted: {s:?}");
}

pub async fn held_lock_is_waited_for_and_taken_over_after_the_lease<H: Host>(env: &Env<H>) {
    let (t, a) = env.fresh("takeover").await;
    let b = env.client(&t);
    let lease = ms(1200);
    let opts = LockOptions::new()
        .lease(lease)
        .prolong(false)
        .poll_interval(ms(100));
    let dead = a.lock("g", "k", &opts).await.unwrap();
    let start = env.now();
    let lock = b.lock("g", "k", &opts).await.unwrap();
    let waited = env.since(start);
    assert!(
        waited >= lease,
        "took over after {waited:?}, before the lease"
    );
    assert!(waited < lease + ms(1500), "took {waited:?}");
    let s = b.stats();
    assert_eq!(s.put_item.requests, 1, "{s:?}");
    assert_eq!(s.update_item.requests, 1, "one takeover write: {s:?}");
    assert!(s.get_item.requests >= 5, "waited by reading: {s:?}");
    assert_eq!(
        s.conditional_failures(),
        1,
        "only the first create failed: {s:?}"
    );
    assert!(matches!(
        dead.status(),
        LockStatus::Lost(LossReason::Expired { .. })
    ));
    assert!(matches!(
        dead.release().await,
        Err(ReleaseError::NotOwner { holder: Some(h) }) if h.owner == b.owner()
    ));
    assert_eq!(
        raw_item(&a, "g", "k").await.unwrap()["recordVersionNumber"].as_s(),
        Some(lock.record().rvn.as_str()),
        "b's item untouched"
    );
    lock.release().await.unwrap();
}

pub async fn a_waiter_takes_the_lock_right_after_a_release<H: Host>(env: &Env<H>) {
    let (t, a) = env.fresh("handoff").await;
    let b = env.client(&t);
    let held = a
        .lock(
            "g",
            "k",
            &LockOptions::new().lease(ms(10_000)).prolong_every(ms(2000)),
        )
        .await
        .unwrap();
    let released_at = std::cell::Cell::new(None);
    let releaser = async {
        env.sleep(ms(500)).await;
        assert_eq!(held.release().await.unwrap(), ReleaseOutcome::Released);
        released_at.set(Some(env.now()));
    };
    let wait_opts = LockOptions::new().poll_interval(ms(100));
    let waiter = b.lock("g", "k", &wait_opts);
    let ((), lock) = futures_util::join!(releaser, waiter);
    let lock = lock.unwrap();
    let gap = env.since(released_at.get().expect("released"));
    assert!(gap < ms(600), "handoff took {gap:?} after the release");
    let s = b.stats();
    assert_eq!(s.update_item.requests, 0, "no takeover: {s:?}");
    assert_eq!(s.delete_item.requests, 0, "{s:?}");
    assert_eq!(s.put_item.requests, 2, "{s:?}");
    lock.release().await.unwrap();
}

pub async fn prolonging_keeps_the_lock_past_its_lease<H: Host>(env: &Env<H>) {
    let (t, a) = env.fresh("prolong").await;
    let b = env.client(&t);
    let opts = LockOptions::new().lease(ms(600)).prolong_every(ms(150));
    let lock = a.lock("g", "k", &opts).await.unwrap();
    let first = lock.record().rvn;
    env.sleep(ms(2000)).await;
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
        (6..=16).contains(&renewals),
        "renewed every 150 ms for 2 s: {renewals}"
    );
    lock.release().await.unwrap();
}

pub async fn a_replaced_item_is_detected_as_lost<H: Host>(env: &Env<H>) {
    let (_, a) = env.fresh("stolen").await;
    let lock = a
        .lock(
            "g",
            "k",
            &LockOptions::new().lease(ms(3000)).prolong_every(ms(200)),
        )
        .await
        .unwrap();
    // Another writer replaces the record (as a takeover by another client would).
    overwrite_holder(&a, "g", "k", "thief").await;
    let start = env.now();
    let reason = env.within(ms(2000), lock.lost()).await;
    assert!(env.since(start) < ms(600), "noticed at the next renewal");
    match reason {
        LossReason::Stolen { by: Some(r) } => assert_eq!(r.owner, "thief"),
        other => panic!("{other:?}"),
    }
    assert!(!lock.is_held());
    assert!(matches!(
        lock.release().await,
        Err(ReleaseError::AlreadyLost(_))
    ));
    assert_eq!(
        raw_item(&a, "g", "k").await.unwrap()["ownerName"].as_s(),
        Some("thief"),
        "the thief's item is untouched"
    );
    assert_eq!(a.held_count(), 0);
}

pub async fn try_lock_returns_the_holder<H: Host>(env: &Env<H>) {
    let (t, a) = env.fresh("try").await;
    let b = env.client(&t);
    let opts = LockOptions::new().lease(ms(800)).prolong(false);
    let _dead = a.lock("g", "k", &opts).await.unwrap();
    let busy = match b.try_lock("g", "k", &opts).await.unwrap() {
        TryLock::Held(busy) => busy,
        TryLock::Acquired(_) => panic!("acquired a held lock"),
    };
    assert_eq!(busy.holder.owner, a.owner());
    assert!(
        busy.retry_after > ms(600) && busy.retry_after <= ms(800),
        "{:?}",
        busy.retry_after
    );
    env.sleep(busy.retry_after).await;
    match b.try_lock("g", "k", &opts).await.unwrap() {
        TryLock::Acquired(lock) => lock.release().await.unwrap(),
        TryLock::Held(busy) => panic!("still held: {busy:?}"),
    };
}

pub async fn concurrent_lockers_hold_one_at_a_time<H: Host>(env: &Env<H>) {
    let (t, _) = env.fresh("many").await;
    let inside = AtomicUsize::new(0);
    let opts = LockOptions::new()
        .lease(ms(1000))
        .prolong(false)
        .poll_interval(ms(25));
    let workers = (0..5).map(|_| {
        let c = env.client(&t);
        let (inside, opts) = (&inside, &opts);
        async move {
            let lock = c.lock("g", "hot", opts).await.expect("acquired");
            let start = env.now();
            assert_eq!(
                inside.fetch_add(1, Ordering::SeqCst),
                0,
                "two holders at once"
            );
            env.sleep(ms(20)).await;
            inside.fetch_sub(1, Ordering::SeqCst);
            let end = env.now();
            assert!(lock.is_held(), "still within the lease when done");
            lock.release().await.unwrap();
            (start, end)
        }
    });
    let mut spans = join_all(workers).await;
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[0].1 <= w[1].0, "critical sections overlap: {w:?}");
    }
    assert_eq!(spans.len(), 5);
}
