//! The core in virtual time: no I/O, no clock, every step checked.

use std::time::Duration;

use super::*;
use crate::dynamodb::{
    AttributeValue, Error, Item, TransportError, get_item::GetItemOutput, put_item::PutItemOutput,
};
use crate::options::{LockOptions, TableOptions};
use crate::time::{Now, WallTime};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn start() -> Now {
    Now::new(
        Instant::from_millis(1_000),
        WallTime::from_millis(1_700_000_000_000),
    )
}

fn layout() -> Layout {
    Layout::new(
        TableOptions::new(),
        LockKey {
            group: "g".into(),
            id: "i".into(),
        },
    )
}

fn item(owner: &str, rvn: &str, lease_ms: u64) -> Item {
    let mut i = layout().key_item();
    i.insert("ownerName".into(), AttributeValue::s(owner));
    i.insert("recordVersionNumber".into(), AttributeValue::s(rvn));
    i.insert("leaseDurationInMs".into(), AttributeValue::n(lease_ms));
    i.insert(
        "lastUpdatedTimeInMs".into(),
        AttributeValue::n(1_700_000_000_000),
    );
    i
}

fn acquire(opts: LockOptions, now: Now) -> Acquire {
    Acquire::new(
        layout(),
        "me".into(),
        opts,
        false,
        None,
        false,
        Rng::seeded(7),
        now,
    )
}

fn sent_rvn(req: &Request) -> String {
    let item = match req {
        Request::Put(p) => &p.item,
        Request::Update(u) => &u.expression_attribute_values,
        other => panic!("not a write: {other:?}"),
    };
    item.get("recordVersionNumber")
        .or_else(|| item.get(":rvn"))
        .and_then(AttributeValue::as_s)
        .unwrap()
        .to_owned()
}

fn timeout() -> Error {
    Error::Transport(TransportError::timeout())
}

#[test]
fn a_free_lock_is_one_put() {
    let now = start();
    let mut a = acquire(LockOptions::new(), now);
    let Step::Send(req @ Request::Put(_)) = a.poll(now) else {
        panic!("first request must be a put")
    };
    assert_eq!(a.poll(now), Step::AwaitResponse);
    a.handle(
        now.advance(ms(3)),
        Ok(Response::Put(PutItemOutput::default())),
    );
    match a.poll(now.advance(ms(3))) {
        Step::Done(Ok(acq)) => {
            assert_eq!(acq.lease_start, now.mono, "lease counts from the send");
            assert_eq!(acq.record.rvn, sent_rvn(&req));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_ambiguous_put_is_reconciled_by_a_read_and_recognised() {
    let now = start();
    let mut a = acquire(LockOptions::new(), now);
    let Step::Send(put) = a.poll(now) else {
        panic!()
    };
    let rvn = sent_rvn(&put);
    let later = now.advance(ms(2000));
    a.handle(later, Err(timeout()));
    // Backoff, then a consistent read, never a blind second put.
    let Step::Sleep(t) = a.poll(later) else {
        panic!()
    };
    assert!(t > later.mono);
    let after = Now::new(t, later.wall);
    let Step::Send(Request::Get(get)) = a.poll(after) else {
        panic!("expected a reconciling read")
    };
    assert!(get.consistent_read);
    a.handle(
        after,
        Ok(Response::Get(GetItemOutput {
            item: Some(item("me", &rvn, 20_000)),
            ..Default::default()
        })),
    );
    match a.poll(after) {
        Step::Done(Ok(acq)) => {
            assert_eq!(acq.record.rvn, rvn);
            assert_eq!(
                acq.lease_start, now.mono,
                "lease from the first send, not the read"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_waiter_reads_and_takes_over_only_after_a_whole_lease() {
    let now = start();
    let opts = LockOptions::new()
        .lease(ms(1000))
        .prolong(false)
        .poll_interval(ms(100));
    let mut a = acquire(opts, now);
    let Step::Send(Request::Put(_)) = a.poll(now) else {
        panic!()
    };
    let seen = now.advance(ms(5));
    a.handle(
        seen,
        Err(Error::ConditionalCheckFailed {
            item: Some(item("other", "v1", 1000)),
        }),
    );
    let mut t = seen;
    let mut reads = 0;
    loop {
        match a.poll(t) {
            Step::Sleep(until) => {
                assert!(until > t.mono, "sleep must move forward");
                t = Now::new(until, t.wall);
            }
            Step::Send(Request::Get(_)) => {
                reads += 1;
                a.handle(
                    t,
                    Ok(Response::Get(GetItemOutput {
                        item: Some(item("other", "v1", 1000)),
                        ..Default::default()
                    })),
                );
            }
            Step::Send(Request::Update(u)) => {
                assert!(t.mono >= seen.mono + ms(1000), "took over early at {t:?}");
                assert_eq!(
                    u.expression_attribute_values[":observed"].as_s(),
                    Some("v1")
                );
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(
        (8..=13).contains(&reads),
        "{reads} reads in a 1 s lease at 80-100 ms"
    );
}

#[test]
fn a_renewing_holder_resets_the_watch_and_counts_retries() {
    let now = start();
    let opts = LockOptions::new()
        .lease(ms(1000))
        .prolong(false)
        .poll_interval(ms(100))
        .max_retry_count(1);
    let mut a = acquire(opts, now);
    let Step::Send(_) = a.poll(now) else { panic!() };
    a.handle(
        now,
        Err(Error::ConditionalCheckFailed {
            item: Some(item("other", "v0", 1000)),
        }),
    );
    let mut t = now;
    let mut version = 0;
    let result = loop {
        match a.poll(t) {
            Step::Sleep(until) => t = Now::new(until, t.wall),
            Step::Send(Request::Get(_)) => {
                version += 1; // the holder renews between every two reads
                a.handle(
                    t,
                    Ok(Response::Get(GetItemOutput {
                        item: Some(item("other", &format!("v{version}"), 1000)),
                        ..Default::default()
                    })),
                );
            }
            Step::Done(r) => break r,
            other => panic!("never a takeover of a live holder: {other:?}"),
        }
    };
    match result {
        Err(AcquireError::MaxRetries {
            attempts: 2,
            holder: Some(h),
        }) => assert_eq!(h.owner, "other"),
        other => panic!("{other:?}"),
    }
    assert!(t.mono >= now.mono + ms(1000));
}

fn held(opts: &LockOptions, now: Now) -> Held {
    let acquired = Acquired {
        record: LockRecord {
            owner: "me".into(),
            rvn: "r0".into(),
            lease: opts.lease,
            last_updated: now.wall,
            additional: Item::new(),
            fence: Some(1),
        },
        lease_start: now.mono,
    };
    Held::new(layout(), acquired, opts, Rng::seeded(9))
}

#[test]
fn an_unknown_renewal_keeps_both_versions_and_a_refusal_is_stolen() {
    let now = start();
    let opts = LockOptions::new().lease(ms(1000)).prolong_every(ms(300));
    let mut h = held(&opts, now);
    assert_eq!(h.poll_renew(now), Step::Sleep(now.mono + ms(300)));
    let t1 = now.advance(ms(300));
    let Step::Send(Request::Update(r1)) = h.poll_renew(t1) else {
        panic!()
    };
    let v1 = r1.expression_attribute_values[":rvn"]
        .as_s()
        .unwrap()
        .to_owned();
    h.handle(t1.advance(ms(50)), Err(timeout()));
    assert!(h.renewal_error().is_some());
    assert!(h.lost(t1.mono + ms(50)).is_none(), "trouble is not loss");
    let Step::Sleep(t2) = h.poll_renew(t1.advance(ms(50))) else {
        panic!()
    };
    let t2 = Now::new(t2, t1.wall);
    let Step::Send(Request::Update(r2)) = h.poll_renew(t2) else {
        panic!()
    };
    assert_eq!(
        r2.condition_expression.as_deref(),
        Some("attribute_exists(#pk) AND #rvn IN (:v0, :v1) AND #owner = :me")
    );
    assert_eq!(r2.expression_attribute_values[":v0"].as_s(), Some("r0"));
    assert_eq!(
        r2.expression_attribute_values[":v1"].as_s(),
        Some(v1.as_str())
    );
    h.handle(
        t2,
        Err(Error::ConditionalCheckFailed {
            item: Some(item("thief", "x", 1000)),
        }),
    );
    match h.poll_renew(t2) {
        Step::Done(LossReason::Stolen { by: Some(r) }) => assert_eq!(r.owner, "thief"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn renewals_failing_past_the_lease_report_expiry_with_the_error() {
    let now = start();
    let opts = LockOptions::new().lease(ms(1000)).prolong_every(ms(300));
    let mut h = held(&opts, now);
    let mut t = now;
    let mut sent = 0;
    let reason = loop {
        match h.poll_renew(t) {
            Step::Sleep(until) => {
                assert!(until > t.mono);
                t = Now::new(until, t.wall);
            }
            Step::Send(_) => {
                sent += 1;
                h.handle(
                    t,
                    Err(Error::Throttled {
                        code: "ThrottlingException".into(),
                        message: String::new(),
                    }),
                );
            }
            Step::Done(r) => break r,
            Step::AwaitResponse => panic!(),
        }
    };
    assert!(
        matches!(
            reason,
            LossReason::Expired {
                last_error: Some(Error::Throttled { .. })
            }
        ),
        "{reason:?}"
    );
    assert_eq!(
        t.mono,
        now.mono + ms(900),
        "lease minus the 10% margin, from the send"
    );
    assert!((4..=40).contains(&sent), "backed off, no storm: {sent}");
}

#[test]
fn release_after_an_unknown_renewal_accepts_either_version() {
    let now = start();
    let opts = LockOptions::new().lease(ms(1000)).prolong_every(ms(300));
    let mut h = held(&opts, now);
    let t = now.advance(ms(300));
    let Step::Send(_) = h.poll_renew(t) else {
        panic!()
    };
    h.handle(
        t,
        Err(Error::Server {
            status: 500,
            code: "InternalServerError".into(),
            message: String::new(),
        }),
    );
    h.begin_release();
    let Step::Send(Request::Delete(d)) = h.poll_release(t) else {
        panic!()
    };
    assert!(d.condition_expression.unwrap().contains("IN (:v0, :v1)"));
    h.handle(t, Err(Error::ConditionalCheckFailed { item: None }));
    assert_eq!(
        h.poll_release(t),
        Step::Done(Ok(ReleaseOutcome::AlreadyGone))
    );
}

#[test]
fn a_try_after_a_read_takes_over_a_lock_watched_for_a_lease() {
    let now = start();
    let opts = LockOptions::new().lease(ms(800)).prolong(false);
    let prior = Observation {
        record: LockRecord::from_item(&item("other", "v1", 800)).unwrap(),
        since: now.mono,
    };
    let later = now.advance(ms(800));
    // Even when asked to read first, a try that finds the same version after a whole
    // lease takes it over instead of answering Busy.
    let mut a = Acquire::new(
        layout(),
        "me".into(),
        opts,
        true,
        Some(prior),
        true,
        Rng::seeded(1),
        later,
    );
    let Step::Send(Request::Get(_)) = a.poll(later) else {
        panic!()
    };
    a.handle(
        later,
        Ok(Response::Get(GetItemOutput {
            item: Some(item("other", "v1", 800)),
            ..Default::default()
        })),
    );
    let Step::Send(Request::Update(u)) = a.poll(later) else {
        panic!("expected a takeover")
    };
    assert_eq!(
        u.expression_attribute_values[":observed"].as_s(),
        Some("v1")
    );
}

#[test]
fn an_acquisition_that_waited_counts_as_contended_even_when_the_item_vanished() {
    let now = start();
    let opts = LockOptions::new().poll_interval(ms(100));
    let mut a = Acquire::new(
        layout(),
        "me".into(),
        opts,
        false,
        None,
        true,
        Rng::seeded(2),
        now,
    );
    let Step::Send(Request::Get(_)) = a.poll(now) else {
        panic!("read first")
    };
    a.handle(
        now,
        Ok(Response::Get(GetItemOutput {
            item: Some(item("other", "v", 20_000)),
            ..Default::default()
        })),
    );
    let Step::Sleep(t) = a.poll(now) else {
        panic!()
    };
    let t = Now::new(t, now.wall);
    let Step::Send(Request::Get(_)) = a.poll(t) else {
        panic!()
    };
    a.handle(t, Ok(Response::Get(GetItemOutput::default())));
    let Step::Send(Request::Put(_)) = a.poll(t) else {
        panic!()
    };
    a.handle(t, Ok(Response::Put(PutItemOutput::default())));
    assert!(matches!(a.poll(t), Step::Done(Ok(_))));
    assert_eq!(a.failures(), 0);
    assert!(
        a.contended(),
        "the next acquisition of this key should read first"
    );
}

#[test]
fn a_refusal_showing_our_new_version_means_the_renewal_applied() {
    let now = start();
    let opts = LockOptions::new().lease(ms(1000)).prolong_every(ms(300));
    let mut h = held(&opts, now);
    let t = now.advance(ms(300));
    let Step::Send(Request::Update(r)) = h.poll_renew(t) else {
        panic!()
    };
    let v1 = r.expression_attribute_values[":rvn"]
        .as_s()
        .unwrap()
        .to_owned();
    // A duplicate of the request landed first; this copy is refused, showing our own version.
    h.handle(
        t,
        Err(Error::ConditionalCheckFailed {
            item: Some(item("me", &v1, 1000)),
        }),
    );
    assert!(h.lost(t.mono).is_none(), "not stolen: it is our own write");
    assert_eq!(h.record().rvn, v1);
    assert_eq!(h.valid_until(), t.mono + ms(900));
}

#[test]
fn a_renewal_answered_after_the_lease_ran_out_does_not_revive_the_lock() {
    let now = start();
    let opts = LockOptions::new().lease(ms(1000)).prolong_every(ms(300));
    let mut h = held(&opts, now);
    let t = now.advance(ms(850));
    h.handle(t, Err(timeout())); // nothing in flight: ignored
    let Step::Send(Request::Update(_)) = h.poll_renew(now.advance(ms(300))) else {
        panic!()
    };
    let late = now.advance(ms(950)); // past valid_until (900 ms)
    assert!(h.lost(late.mono).is_some());
    h.handle(late, Ok(Response::Update(UpdateItemOutput::default())));
    assert!(
        matches!(h.lost(late.mono), Some(LossReason::Expired { .. })),
        "loss is final"
    );
    assert!(matches!(
        h.poll_renew(late),
        Step::Done(LossReason::Expired { .. })
    ));
}
