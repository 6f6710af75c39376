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
            concurrent_lockers_hold_one_at_a_time,
            a_dropped_lock_call_leaves_nothing_that_blocks,
            a_dropped_release_does_not_hang_the_next_one,
            dropping_a_lock_releases_it_and_abandoning_leaves_it,
            with_lock_runs_the_body_while_held_and_stops_it_when_lost
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

/// Runs `fut` until it completes or `cut` passes on the host's clock, then drops it (as
/// `tokio::time::timeout` or `select!` would).
async fn cut_short<H: Host, T>(
    env: &Env<H>,
    cut: Duration,
    fut: impl std::future::Future<Output = T>,
) -> Option<T> {
    let fut = std::pin::pin!(fut);
    let timer = std::pin::pin!(env.sleep(cut));
    match futures_util::future::select(fut, timer).await {
        futures_util::future::Either::Left((v, _)) => Some(v),
        futures_util::future::Either::Right(_) => None,
    }
}

/// Waits (bounded) until `c` looks after no lock any more: every background release done.
async fn settled<H: Host>(env: &Env<H>, c: &LockClient<H>) {
    env.within(ms(5000), async {
        while c.active_count() > 0 {
            env.sleep(ms(5)).await;
        }
    })
    .await;
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
    // The client knew it had lost the lock: the release says so (and touches nothing).
    assert!(matches!(
        dead.release().await,
        Err(ReleaseError::AlreadyLost(LossReason::Expired { .. }))
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

/// `timeout(50 µs, client.lock(..))` used to leave an item owned by this client, and the
/// client's next `lock()` of the key waited its whole lease. Now the cancelled acquisition's
/// write is released in the background, and the next `lock()` recognises it.
pub async fn a_dropped_lock_call_leaves_nothing_that_blocks<H: Host>(env: &Env<H>) {
    let (_, a) = env.fresh("droplock").await;
    let opts = LockOptions::new().lease(ms(4000));
    let cuts = [0, 50, 200, 500, 1000, 2000, 5000].map(Duration::from_micros);
    let mut orphans = 0;
    for (i, cut) in cuts.iter().enumerate() {
        let id = format!("k{i}");
        if let Some(lock) = cut_short(env, *cut, a.lock("g", &id, &opts)).await {
            // Fast enough to finish: release it and move on.
            lock.unwrap().release().await.unwrap();
            continue;
        }
        orphans += usize::from(raw_item(&a, "g", &id).await.is_some());
        let start = env.now();
        let lock = env
            .within(ms(3000), a.lock("g", &id, &opts))
            .await
            .expect("acquired");
        assert!(
            env.since(start) < ms(1500),
            "the next lock() waited {:?} for the dropped one's item (lease 4 s)",
            env.since(start)
        );
        lock.release().await.unwrap();
        assert!(raw_item(&a, "g", &id).await.is_none());
    }
    settled(env, &a).await;
    for i in 0..cuts.len() {
        assert!(
            raw_item(&a, "g", &format!("k{i}")).await.is_none(),
            "k{i} left behind"
        );
    }
    let _ = orphans; // how many cuts landed after the write: timing-dependent, not asserted
}

/// `timeout(100 µs, lock.release())`, then `lock.release()` again, used to hang, and so did
/// `release_all()` (the first release's request was in flight forever).
pub async fn a_dropped_release_does_not_hang_the_next_one<H: Host>(env: &Env<H>) {
    let (_, a) = env.fresh("droprel").await;
    for (i, cut) in [0, 100, 1000, 3000]
        .map(Duration::from_micros)
        .iter()
        .enumerate()
    {
        let id = format!("k{i}");
        let lock = a.lock("g", &id, &LockOptions::new()).await.unwrap();
        let first = cut_short(env, *cut, lock.release()).await;
        let again = env.within(ms(3000), lock.release()).await;
        match first {
            Some(r) => assert_eq!(r, again, "a second call answers the same"),
            None => assert!(
                matches!(
                    again,
                    Ok(ReleaseOutcome::Released | ReleaseOutcome::AlreadyGone)
                ),
                "{again:?}"
            ),
        }
        let all = env.within(ms(3000), a.release_all()).await;
        assert!(all.iter().all(|(_, r)| r.is_ok()), "{all:?}");
        assert!(raw_item(&a, "g", &id).await.is_none());
        // release_all itself cut short: the next one completes.
        let other = a
            .lock("g", &format!("{id}-b"), &LockOptions::new())
            .await
            .unwrap();
        let _ = cut_short(env, *cut, a.release_all()).await;
        let all = env.within(ms(3000), a.release_all()).await;
        assert!(all.iter().all(|(_, r)| r.is_ok()), "{all:?}");
        assert!(matches!(
            other.status(),
            LockStatus::Lost(LossReason::Released)
        ));
    }
    settled(env, &a).await;
    assert_eq!(a.held_count(), 0);
}

/// Dropping a `Lock` releases it in the background; `abandon()` keeps crash semantics.
pub async fn dropping_a_lock_releases_it_and_abandoning_leaves_it<H: Host>(env: &Env<H>) {
    let (t, a) = env.fresh("droph").await;
    let b = env.client(&t);
    let opts = LockOptions::new().lease(ms(20_000));
    drop(a.lock("g", "dropped", &opts).await.unwrap());
    let start = env.now();
    let lock = env
        .within(ms(3000), b.lock("g", "dropped", &opts))
        .await
        .unwrap();
    assert!(
        env.since(start) < ms(2000),
        "handed over at once, not after 20 s"
    );
    lock.release().await.unwrap();
    settled(env, &a).await;

    let kept = a.lock("g", "abandoned", &opts).await.unwrap();
    let rvn = kept.record().rvn;
    kept.abandon();
    assert_eq!(a.active_count(), 0, "forgotten at once");
    env.sleep(ms(300)).await;
    let item = raw_item(&a, "g", "abandoned").await.expect("left in place");
    assert_eq!(
        item["recordVersionNumber"].as_s(),
        Some(rvn.as_str()),
        "not even renewed"
    );
}

/// The scoped helper: the body's value while held; stopped (dropped) when the lock is lost.
pub async fn with_lock_runs_the_body_while_held_and_stops_it_when_lost<H: Host>(env: &Env<H>) {
    let (_, a) = env.fresh("scoped").await;
    let opts = LockOptions::new().lease(ms(1500)).prolong_every(ms(200));
    let token = a
        .with_lock("g", "k", &opts, async |lock| lock.fencing_token())
        .await
        .unwrap();
    assert!(token.is_some());
    assert!(
        raw_item(&a, "g", "k").await.is_none(),
        "released after the body"
    );

    let a2 = a.clone();
    let start = env.now();
    let stopped = env
        .within(
            ms(3000),
            a.with_lock("g", "k", &opts, async |lock| {
                let mut events = lock.events();
                overwrite_holder(&a2, "g", "k", "thief").await;
                // Runs until stopped: the lock is lost at the next renewal.
                loop {
                    if let ddb_lock::LockEvent::Lost(_) = events.next().await {
                        env.sleep(ms(60_000)).await;
                    }
                }
            }),
        )
        .await;
    assert!(env.since(start) < ms(1000), "stopped at the next renewal");
    match stopped {
        Err(ddb_lock::WithLockError::Lost(LossReason::Stolen { by: Some(r) })) => {
            assert_eq!(r.owner, "thief")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        raw_item(&a, "g", "k").await.unwrap()["ownerName"].as_s(),
        Some("thief"),
        "the thief's item is untouched"
    );
}
