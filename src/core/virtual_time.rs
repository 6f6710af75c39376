//! The core in virtual time: no I/O, no clock, every step checked.

use std::time::Duration;

use super::*;
use crate::dynamodb::{
    AttributeValue, Error, Item, TransportError, delete_item::DeleteItemOutput,
    get_item::GetItemOutput, put_item::PutItemOutput, update_item::UpdateItemOutput,
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

fn timeout() -> Error {
    Error::Transport(TransportError::timeout())
}

fn server_error() -> Error {
    Error::Server {
        status: 500,
        code: "InternalServerError".into(),
        message: "x".into(),
    }
}

fn throttled() -> Error {
    Error::Throttled {
        code: "ThrottlingException".into(),
        message: "slow down".into(),
    }
}

fn refused(item: Option<Item>) -> Outcome {
    Err(Error::ConditionalCheckFailed { item })
}

fn read(item: Option<Item>) -> Outcome {
    Ok(Response::Get(GetItemOutput {
        item,
        ..Default::default()
    }))
}

fn put_ok() -> Outcome {
    Ok(Response::Put(PutItemOutput::default()))
}

fn update_ok() -> Outcome {
    Ok(Response::Update(UpdateItemOutput::default()))
}

/// The record version a write sends.
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

/// The versions a holder's write is conditioned on (`:v0`, `:v1`, ...).
fn named_versions(req: &Request) -> Vec<String> {
    let values = match req {
        Request::Update(u) => &u.expression_attribute_values,
        Request::Delete(d) => &d.expression_attribute_values,
        other => panic!("not a holder's write: {other:?}"),
    };
    (0..)
        .map_while(|i| values.get(&format!(":v{i}")).and_then(AttributeValue::as_s))
        .map(str::to_owned)
        .collect()
}

/// A machine and its virtual clock, checking every poll.
struct Sim {
    m: LockMachine,
    now: Now,
}

impl Sim {
    fn new(opts: LockOptions, start_with: Start) -> Sim {
        let now = start();
        Sim {
            m: LockMachine::new(
                layout(),
                "me".into(),
                opts,
                start_with,
                ms(2000),
                Rng::seeded(7),
                now,
            ),
            now,
        }
    }

    fn lock(opts: LockOptions) -> Sim {
        Sim::new(opts, Start::default())
    }

    fn poll(&mut self) -> Output {
        let out = self.m.poll(self.now);
        if let Output::Wait(t) = &out {
            assert!(*t > self.now.mono, "Wait({t:?}) at {:?}", self.now.mono);
        }
        out
    }

    /// The next request, after waiting as long as the machine asks.
    fn next(&mut self) -> (RequestId, Request, Instant) {
        for _ in 0..100 {
            match self.poll() {
                Output::Send {
                    id,
                    request,
                    deadline,
                } => return (id, request, deadline),
                Output::Wait(t) => self.now = self.now.advance(t - self.now.mono),
                Output::PhaseChanged(_) => {}
                other => panic!("expected a request, got {other:?}"),
            }
        }
        panic!("no request in 100 waits")
    }

    fn answer(&mut self, id: RequestId, outcome: Outcome) {
        assert_eq!(self.m.handle(self.now, id, outcome), Ok(Handled::Used));
    }

    fn advance(&mut self, d: Duration) {
        self.now = self.now.advance(d);
    }

    /// Acquires a free lock with one put.
    fn acquired(opts: LockOptions) -> (Sim, String) {
        let mut s = Sim::lock(opts);
        let (id, put, _) = s.next();
        let rvn = sent_rvn(&put);
        s.advance(ms(3));
        s.answer(id, put_ok());
        let _ = s.poll();
        assert!(
            matches!(s.m.acquisition(), Some(Ok(_))),
            "{:?}",
            s.m.acquisition()
        );
        (s, rvn)
    }
}

#[test]
fn a_free_lock_is_one_put() {
    let mut s = Sim::lock(LockOptions::new());
    let t0 = s.now;
    let (id, put, deadline) = s.next();
    assert!(
        matches!(put, Request::Put(_)),
        "first request must be a put"
    );
    assert_eq!(deadline, t0.mono + ms(2000), "the request timeout");
    // In flight: wait for it (its deadline), never send again.
    assert_eq!(s.poll(), Output::Wait(deadline));
    s.advance(ms(3));
    s.answer(id, put_ok());
    let _ = s.poll();
    let record = s.m.acquisition().unwrap().as_ref().unwrap();
    assert_eq!(record.rvn, sent_rvn(&put));
    assert_eq!(s.m.phase(), Phase::Held);
    match s.m.status(s.now) {
        // The lease counts from the send: 20 s - 2 s margin - 3 ms.
        Status::Held { remaining, .. } => assert_eq!(remaining, ms(18_000 - 3)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_ambiguous_put_is_reconciled_by_a_read_and_recognised() {
    let mut s = Sim::lock(LockOptions::new());
    let (id, put, _) = s.next();
    let rvn = sent_rvn(&put);
    s.advance(ms(2000));
    s.answer(id, Err(timeout()));
    // Backoff, then a consistent read, never a blind second put.
    let (id, get, _) = s.next();
    let Request::Get(get) = get else {
        panic!("expected a reconciling read, got {get:?}")
    };
    assert!(get.consistent_read);
    s.answer(id, read(Some(item("me", &rvn, 20_000))));
    let _ = s.poll();
    assert_eq!(s.m.acquisition().unwrap().as_ref().unwrap().rvn, rvn);
}

#[test]
fn a_waiter_reads_and_takes_over_only_after_a_whole_lease() {
    let opts = LockOptions::new().lease(ms(1000)).poll_interval(ms(100));
    let mut s = Sim::lock(opts);
    let t0 = s.now;
    let (id, _, _) = s.next();
    s.answer(id, refused(Some(item("other", "v1", 1000))));
    let mut reads = 0;
    loop {
        let (id, req, _) = s.next();
        match req {
            Request::Get(_) => {
                reads += 1;
                assert!(
                    s.now.mono < t0.mono + ms(1000),
                    "reads only within the lease"
                );
                s.answer(id, read(Some(item("other", "v1", 1000))));
            }
            Request::Update(u) => {
                assert!(s.now.mono >= t0.mono + ms(1000), "takeover after the lease");
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
        "{reads} reads in a lease of polls"
    );
}

#[test]
fn a_renewing_holder_resets_the_watch_and_counts_retries() {
    let opts = LockOptions::new()
        .lease(ms(1000))
        .poll_interval(ms(100))
        .max_retry_count(2);
    let mut s = Sim::lock(opts);
    let (id, _, _) = s.next();
    // One failed attempt (the refused create).
    s.answer(id, refused(Some(item("other", "v0", 1000))));
    let mut version = 0;
    loop {
        match s.poll() {
            Output::Send { id, request, .. } => {
                assert!(matches!(request, Request::Get(_)), "never a takeover");
                // The holder renews every 300 ms: a new version, never watched for a lease.
                version = (s.now.mono - start().mono).as_millis() / 300;
                s.answer(id, read(Some(item("other", &format!("v{version}"), 1000))));
            }
            Output::Wait(t) => s.now = s.now.advance(t - s.now.mono),
            _ => break,
        }
        if s.m.acquisition().is_some() {
            break;
        }
    }
    // Lease-long waits with the lock still held count as failed attempts, so the retry
    // limit ends it, naming the holder last seen.
    match s.m.acquisition() {
        Some(Err(AcquireError::MaxRetries {
            attempts: 3,
            holder,
        })) => {
            assert_eq!(holder.as_ref().unwrap().rvn, format!("v{version}"))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.m.phase(), Phase::Ended);
}

#[test]
fn an_unknown_renewal_keeps_both_versions_and_a_refusal_is_stolen() {
    let opts = LockOptions::new().lease(ms(1000)).prolong_every(ms(300));
    let (mut s, v1) = Sim::acquired(opts);
    let (id, renew, _) = s.next();
    assert_eq!(named_versions(&renew), std::slice::from_ref(&v1));
    let v2 = sent_rvn(&renew);
    s.answer(id, Err(timeout()));
    let (id, renew, _) = s.next();
    assert_eq!(named_versions(&renew), [v1, v2], "both may be current");
    s.answer(id, refused(Some(item("other", "x", 1000))));
    let _ = s.poll();
    match s.m.status(s.now) {
        Status::Lost(LossReason::Stolen { by: Some(by) }) => assert_eq!(by.owner, "other"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn renewals_failing_past_the_lease_report_expiry_with_the_error() {
    let opts = LockOptions::new().lease(ms(1000)).prolong_every(ms(300));
    let (mut s, _) = Sim::acquired(opts);
    let mut seen = 0;
    loop {
        match s.poll() {
            Output::Send { id, .. } => {
                s.advance(ms(5));
                s.answer(id, Err(throttled()));
                if let Status::Held { renewal_error, .. } = s.m.status(s.now) {
                    assert!(renewal_error.is_some(), "trouble is reported, not loss");
                }
            }
            Output::Wait(t) => s.now = s.now.advance(t - s.now.mono),
            Output::PhaseChanged(_) => panic!("acquired already"),
            Output::Idle => break,
            Output::Ended => panic!("a lost lock's machine waits for its handle"),
        }
        seen += 1;
        assert!(seen < 1000);
    }
    // Lost at lease - margin (900 ms after the first send), not later.
    assert!(
        s.now.mono <= start().mono + ms(900) + ms(10),
        "{:?}",
        s.now.mono
    );
    match s.m.status(s.now) {
        Status::Lost(LossReason::Expired {
            last_error: Some(Error::Throttled { .. }),
        }) => {}
        other => panic!("{other:?}"),
    }
    let events: Vec<_> = s.m.events_after(0).map(|(_, e)| e.clone()).collect();
    assert!(matches!(
        events[0],
        LockEvent::RenewalFailing(Error::Throttled { .. })
    ));
    assert!(matches!(
        events.last(),
        Some(LockEvent::Lost(LossReason::Expired { .. }))
    ));
    assert_eq!(
        events.len(),
        2,
        "one failing event, then the loss: {events:?}"
    );
}

#[test]
fn events_tell_renewed_failing_recovered() {
    let opts = LockOptions::new().lease(ms(1000)).prolong_every(ms(300));
    let (mut s, _) = Sim::acquired(opts);
    for outcome in [update_ok(), Err(throttled()), Err(timeout()), update_ok()] {
        let (id, _, _) = s.next();
        s.answer(id, outcome);
    }
    let events: Vec<_> = s.m.events_after(0).map(|(_, e)| e.clone()).collect();
    assert!(
        matches!(
            events.as_slice(),
            [
                LockEvent::Renewed,
                LockEvent::RenewalFailing(Error::Throttled { .. }),
                LockEvent::Recovered
            ]
        ),
        "{events:?}"
    );
}

#[test]
fn release_after_an_unknown_renewal_accepts_either_version() {
    let opts = LockOptions::new().lease(ms(1000)).prolong_every(ms(300));
    let (mut s, v1) = Sim::acquired(opts);
    let (id, renew, _) = s.next();
    let v2 = sent_rvn(&renew);
    s.answer(id, Err(server_error()));
    s.m.release(s.now);
    let (id, del, _) = s.next();
    assert!(matches!(del, Request::Delete(_)));
    assert_eq!(named_versions(&del), [v1, v2]);
    s.answer(id, Ok(Response::Delete(DeleteItemOutput::default())));
    assert_eq!(s.poll(), Output::Ended);
    assert_eq!(s.m.release_outcome(), Some(&Ok(ReleaseOutcome::Released)));
    assert_eq!(s.m.status(s.now), Status::Lost(LossReason::Released));
}

/// Defect 1 (core side): a release is an input, not a second poller sharing one slot with
/// renewal: it goes out while a renewal is in flight, naming that renewal's version.
#[test]
fn a_release_goes_out_beside_a_renewal_in_flight_and_names_it() {
    let opts = LockOptions::new().lease(ms(1000)).prolong_every(ms(300));
    let (mut s, v1) = Sim::acquired(opts);
    let (renew_id, renew, _) = s.next();
    let v2 = sent_rvn(&renew);
    s.m.release(s.now);
    let Output::Send {
        id: del_id,
        request: del,
        ..
    } = s.poll()
    else {
        panic!("the release must not wait for the renewal")
    };
    assert_eq!(named_versions(&del), [v1, v2]);
    assert_eq!(s.m.in_flight(), 2);
    // The renewal lands first, then the delete, which names its version: released.
    s.answer(renew_id, update_ok());
    s.answer(del_id, Ok(Response::Delete(DeleteItemOutput::default())));
    assert_eq!(s.poll(), Output::Ended);
    assert_eq!(s.m.release_outcome(), Some(&Ok(ReleaseOutcome::Released)));
}

/// Requests carry ids: an answer for a request not in flight is refused as a bug; one the
/// machine stopped waiting for (its deadline passed) is late and ignored.
#[test]
fn answers_are_matched_by_id() {
    let mut s = Sim::lock(LockOptions::new());
    let (id, _, deadline) = s.next();
    assert_eq!(
        s.m.handle(s.now, RequestId(999), put_ok()),
        Err(NotInFlight(RequestId(999)))
    );
    // Nobody answered by the deadline: unknown outcome, the machine moves on by itself.
    s.now = s.now.advance(deadline - s.now.mono);
    let (read_id, req, _) = s.next();
    assert!(
        matches!(req, Request::Get(_)),
        "reconcile after the unknown write"
    );
    assert_eq!(s.m.handle(s.now, id, put_ok()), Ok(Handled::Late));
    assert_eq!(
        s.m.handle(s.now, id, put_ok()),
        Err(NotInFlight(id)),
        "answered twice"
    );
    s.answer(read_id, read(None));
}

/// Defect 2: an acquisition that gives up (timeout, retry limit) with a write of its own
/// unreconciled does not just end: what it may have left is released, naming every version
/// it sent, and the versions stay known to the client.
#[test]
fn giving_up_with_an_unreconciled_write_releases_what_it_may_have_left() {
    let opts = LockOptions::new().acquire_timeout(ms(1500));
    let mut s = Sim::lock(opts);
    let (id, put, _) = s.next();
    let rvn = sent_rvn(&put);
    s.advance(ms(1600));
    s.answer(id, Err(timeout()));
    let (del_id, del, _) = s.next();
    assert_eq!(
        s.m.acquisition(),
        Some(&Err(AcquireError::Timeout { holder: None }))
    );
    assert!(s.m.is_leftover());
    assert!(matches!(del, Request::Delete(_)), "{del:?}");
    assert_eq!(named_versions(&del), std::slice::from_ref(&rvn));
    assert_eq!(s.m.versions_sent(), [rvn]);
    s.answer(del_id, Ok(Response::Delete(DeleteItemOutput::default())));
    assert_eq!(s.poll(), Output::Ended);
}

/// Defect 1 (core side): a cancelled acquisition with its write in flight releases in the
/// background; one that sent nothing just ends.
#[test]
fn a_cancelled_acquisition_releases_only_what_may_have_applied() {
    let mut s = Sim::lock(LockOptions::new());
    s.m.release(s.now);
    assert_eq!(s.m.acquisition(), Some(&Err(AcquireError::Cancelled)));
    assert_eq!(s.poll(), Output::Ended);

    let mut s = Sim::lock(LockOptions::new());
    let (id, put, _) = s.next();
    s.m.release(s.now);
    let (_, del, _) = s.next();
    assert_eq!(named_versions(&del), [sent_rvn(&put)]);
    assert_eq!(s.m.handle(s.now, id, put_ok()), Ok(Handled::Late));
}

/// The client's next lock() of the key knows the versions of an unfinished acquisition:
/// an item carrying one is taken at once, not watched for a lease.
#[test]
fn an_item_left_by_our_own_unfinished_acquisition_is_taken_at_once() {
    let start_with = Start {
        own_versions: vec!["left".into()],
        ..Default::default()
    };
    let mut s = Sim::new(LockOptions::new(), start_with);
    let (id, _, _) = s.next();
    s.answer(id, refused(Some(item("me", "left", 20_000))));
    let (id, steal, _) = s.next();
    let Request::Update(u) = &steal else {
        panic!("{steal:?}")
    };
    assert_eq!(
        u.expression_attribute_values[":observed"].as_s(),
        Some("left")
    );
    assert_eq!(s.now.mono, start().mono, "at once");
    s.answer(id, update_ok());
    let _ = s.poll();
    assert!(matches!(s.m.acquisition(), Some(Ok(_))));
}

/// Defect 3: a reconciled write that landed late (half its lease gone) is renewed before
/// the lock is returned; `lock()` never returns a lock whose lease ran out.
#[test]
fn a_late_reconciled_write_is_renewed_before_the_lock_is_returned() {
    let opts = LockOptions::new().lease(ms(4000));
    let mut s = Sim::lock(opts);
    let (id, put, _) = s.next();
    let rvn = sent_rvn(&put);
    s.advance(ms(2000));
    s.answer(id, Err(timeout()));
    let (id, get, _) = s.next();
    assert!(matches!(get, Request::Get(_)));
    s.answer(id, read(Some(item("me", &rvn, 4000))));
    let (id, confirm, _) = s.next();
    assert!(
        s.m.acquisition().is_none(),
        "not returned with 1.6 s of 4 s left"
    );
    assert_eq!(named_versions(&confirm), [rvn]);
    let confirm_sent = s.now;
    s.advance(ms(2));
    s.answer(id, update_ok());
    let _ = s.poll();
    assert_eq!(
        s.m.acquisition().unwrap().as_ref().unwrap().rvn,
        sent_rvn(&confirm)
    );
    match s.m.status(s.now) {
        Status::Held { remaining, .. } => {
            assert_eq!(remaining, ms(3600) - (s.now.mono - confirm_sent.mono))
        }
        other => panic!("{other:?}"),
    }
}

/// Defect 5: a suspended process's monotonic clock stands still; the wall clock since the
/// last confirmed write still ends the lock.
#[test]
fn a_suspended_holder_wakes_up_knowing_its_lease_ran_out() {
    let (mut s, _) = Sim::acquired(LockOptions::new().lease(ms(1000)).prolong(false));
    // 10 s of suspend: the monotonic clock does not move, the wall clock does.
    s.now = Now::new(s.now.mono + ms(1), s.now.wall + ms(10_000));
    assert!(matches!(
        s.m.status(s.now),
        Status::Lost(LossReason::Expired { .. })
    ));
    assert!(s.m.still_held(s.now).is_none());
    assert_eq!(s.poll(), Output::Idle);
}

/// Defect 6: a non-blocking attempt does not retry without end while DynamoDB throttles.
#[test]
fn try_lock_gives_up_after_a_few_failed_requests() {
    let start_with = Start {
        try_only: true,
        ..Default::default()
    };
    let mut s = Sim::new(LockOptions::new(), start_with);
    let mut sent = 0;
    while s.m.acquisition().is_none() {
        assert!(sent < 20, "still retrying after {sent} failed requests");
        let (id, _, _) = s.next();
        sent += 1;
        s.answer(id, Err(throttled()));
        let _ = s.poll();
    }
    assert_eq!(sent, TRY_ATTEMPTS);
    assert!(matches!(
        s.m.acquisition(),
        Some(Err(AcquireError::Unavailable {
            attempts: 3,
            last_error: Error::Throttled { .. }
        }))
    ));
}

/// Defect 8: a conflicting transaction is retried, not final.
#[test]
fn a_transaction_conflict_is_retried() {
    let mut s = Sim::lock(LockOptions::new());
    let (id, _, _) = s.next();
    s.answer(
        id,
        Err(Error::TransactionConflict {
            message: "ongoing".into(),
        }),
    );
    let (id, req, _) = s.next();
    assert!(
        matches!(req, Request::Put(_)),
        "not applied: write again, no read needed"
    );
    s.answer(id, put_ok());
    let _ = s.poll();
    assert!(matches!(s.m.acquisition(), Some(Ok(_))));
}

/// Defect 9: a renewal's timeout is at most half the validity left, so a hung renewal
/// leaves time for another.
#[test]
fn a_renewal_times_out_within_half_the_validity_left() {
    let opts = LockOptions::new().lease(ms(3000)).prolong_every(ms(1000));
    let (mut s, _) = Sim::acquired(opts);
    let (_, _, deadline) = s.next();
    // Sent at 1 s: 2.7 s - 1 s = 1.7 s left, so at most 850 ms (not the 2 s request timeout).
    assert_eq!(deadline - s.now.mono, ms(1700) / 2);
    // Nobody answers: the machine gives up on it and renews again in time.
    s.now = s.now.advance(deadline - s.now.mono);
    let (id, renew, _) = s.next();
    assert!(s.now.mono < start().mono + ms(2700));
    assert_eq!(named_versions(&renew).len(), 2);
    s.answer(id, update_ok());
    assert!(matches!(s.m.status(s.now), Status::Held { .. }));
}

/// Defect 10: a release answered 500 keeps trying with backoff while the lease could still
/// block others, then reports it unconfirmed.
#[test]
fn a_failing_release_is_retried_until_the_lease_is_over() {
    let opts = LockOptions::new().lease(ms(5000)).prolong(false);
    let (mut s, _) = Sim::acquired(opts);
    s.m.release(s.now);
    let mut attempts = 0;
    while s.m.release_outcome().is_none() {
        match s.poll() {
            Output::Send { id, .. } => {
                attempts += 1;
                s.answer(id, Err(server_error()));
            }
            Output::Wait(t) => s.now = s.now.advance(t - s.now.mono),
            other => panic!("{other:?}"),
        }
    }
    assert!(attempts > 8, "{attempts} attempts");
    assert!(
        s.now.mono >= start().mono + ms(5000),
        "kept trying for the whole lease"
    );
    assert!(matches!(
        s.m.release_outcome(),
        Some(Err(ReleaseError::Unconfirmed(Error::Server { .. })))
    ));
}

/// Defect 11: a release after the lock expired says so, though it still deletes our item.
#[test]
fn a_release_after_expiry_answers_already_lost() {
    let opts = LockOptions::new().lease(ms(1000)).prolong(false);
    let (mut s, rvn) = Sim::acquired(opts);
    s.advance(ms(950));
    assert!(matches!(
        s.m.status(s.now),
        Status::Lost(LossReason::Expired { .. })
    ));
    s.m.release(s.now);
    let (id, del, _) = s.next();
    assert_eq!(named_versions(&del), [rvn]);
    s.answer(id, Ok(Response::Delete(DeleteItemOutput::default())));
    assert!(matches!(
        s.m.release_outcome(),
        Some(Err(ReleaseError::AlreadyLost(LossReason::Expired { .. })))
    ));
}

#[test]
fn a_try_after_a_read_takes_over_a_lock_watched_for_a_lease() {
    let opts = LockOptions::new().lease(ms(1000));
    let t0 = start();
    let start_with = Start {
        try_only: true,
        prior: Some(Observation {
            record: LockRecord::from_item(&item("other", "v1", 1000)).unwrap(),
            since: t0.mono,
        }),
        ..Default::default()
    };
    let mut s = Sim::new(opts, start_with);
    s.advance(ms(1000));
    let (id, get, _) = s.next();
    assert!(matches!(get, Request::Get(_)), "look before answering");
    s.answer(id, read(Some(item("other", "v1", 1000))));
    let (_, steal, _) = s.next();
    assert!(
        matches!(steal, Request::Update(_)),
        "watched for a lease: take over"
    );
}

#[test]
fn an_acquisition_that_waited_counts_as_contended_even_when_the_item_vanished() {
    let mut s = Sim::lock(LockOptions::new().poll_interval(ms(100)));
    let (id, _, _) = s.next();
    s.answer(id, refused(Some(item("other", "v1", 20_000))));
    let (id, _, _) = s.next();
    s.answer(id, read(None));
    let (id, put, _) = s.next();
    assert!(matches!(put, Request::Put(_)));
    s.answer(id, put_ok());
    let _ = s.poll();
    assert!(matches!(s.m.acquisition(), Some(Ok(_))));
    assert!(s.m.contended());
}

#[test]
fn a_refusal_showing_our_new_version_means_the_renewal_applied() {
    let opts = LockOptions::new().lease(ms(1000)).prolong_every(ms(300));
    let (mut s, _) = Sim::acquired(opts);
    let (id, renew, _) = s.next();
    let v2 = sent_rvn(&renew);
    s.answer(id, refused(Some(item("me", &v2, 1000))));
    assert!(matches!(s.m.status(s.now), Status::Held { .. }));
    assert_eq!(s.m.record().unwrap().rvn, v2);
}

#[test]
fn a_renewal_answered_after_the_lease_ran_out_does_not_revive_the_lock() {
    let opts = LockOptions::new().lease(ms(1000)).prolong_every(ms(300));
    let (mut s, _) = Sim::acquired(opts);
    let (id, _, deadline) = s.next();
    // The answer comes just before the (capped) deadline but after nothing else; then the
    // lease runs out before another renewal is confirmed.
    s.now = s.now.advance(deadline - s.now.mono - ms(1));
    s.answer(id, Err(timeout()));
    s.advance(ms(1000));
    assert!(matches!(
        s.m.status(s.now),
        Status::Lost(LossReason::Expired { .. })
    ));
    let _ = s.poll();
    // A renewal that was in flight cannot be answered now: nothing is.
    assert_eq!(s.m.in_flight(), 0);
    assert!(matches!(s.m.status(s.now), Status::Lost(_)));
}

/// Option checks that belong to the core's arithmetic (defects 4 and 12).
#[test]
fn options_that_would_expire_every_lock_are_refused() {
    let field = |o: LockOptions| o.validate().unwrap_err().field;
    // Margin + period >= lease: expired before the first renewal.
    assert_eq!(
        field(
            LockOptions::new()
                .lease(ms(1000))
                .prolong_every(ms(450))
                .safety_margin(ms(600))
        ),
        "prolong_every"
    );
    // A lease of 10 s or less works without setting the period: it is derived.
    for lease in [100, 1000, 4000, 10_000] {
        let o = LockOptions::new().lease(ms(lease));
        assert!(o.validate().is_ok(), "{lease}");
        assert_eq!(o.renewal_period(), ms(lease / 4));
    }
    assert_eq!(LockOptions::new().renewal_period(), ms(5000));
    // A TTL DynamoDB may act on while the lock lives.
    let ttl = |secs| {
        TableOptions::new()
            .ttl_key("exp")
            .ttl(Duration::from_secs(secs))
    };
    let o = LockOptions::new().lease(ms(20_000));
    assert_eq!(o.validate_for(&ttl(21)).unwrap_err().field, "ttl");
    assert!(o.validate_for(&ttl(22)).is_ok());
    assert!(
        o.validate_for(&TableOptions::new().ttl(Duration::from_secs(1)))
            .is_ok()
    );
}

/// A release keeps trying while a renewal of unknown outcome, sent after the last confirmed
/// one, could still hold the item: until *its* lease is over.
#[test]
fn a_release_retries_while_an_unconfirmed_renewal_could_hold_the_item() {
    let opts = LockOptions::new().lease(ms(1000)).prolong_every(ms(300));
    let (mut s, _) = Sim::acquired(opts);
    // The first renewal (at 300 ms) gets no answer: its version may be current from then.
    let (_, _, deadline) = s.next();
    let renewal_sent = s.now.mono;
    s.now = s.now.advance(deadline - s.now.mono);
    assert_eq!(s.poll(), s.poll(), "timed out by the machine");
    s.m.release(s.now);
    let mut last = s.now;
    while s.m.release_outcome().is_none() {
        match s.poll() {
            Output::Send {
                id,
                request: Request::Delete(_),
                ..
            } => {
                last = s.now;
                s.answer(id, Err(throttled()));
            }
            Output::Send { id, .. } => s.answer(id, Err(throttled())),
            Output::Wait(t) => s.now = s.now.advance(t - s.now.mono),
            other => panic!("{other:?}"),
        }
    }
    assert!(
        last.mono >= renewal_sent + ms(950),
        "gave up {:?} after the unconfirmed renewal, before its lease could be over",
        last.mono - renewal_sent
    );
}
