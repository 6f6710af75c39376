//! Taking a lock: [`Acquire`].

use std::fmt;
use std::time::Duration;

use super::record::{Layout, LockRecord, RecordError, fence_base};
use super::{Backoff, Outcome, Request, Response, Rng, Step};
use crate::dynamodb::{self, AttributeValue, Item};
use crate::options::{InvalidInput, LockOptions, attr};
use crate::time::{Instant, Now, WallTime};

/// What a waiter has seen of a holder: its record and since when (monotonic, receipt time)
/// this record version has been seen unchanged.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// The holder's record.
    pub record: LockRecord,
    /// When this version was first seen.
    pub since: Instant,
}

/// A lock just acquired.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Acquired {
    /// The record as written by us.
    pub(crate) record: LockRecord,
    /// Before the write that made the record current was first sent: the lease counts from
    /// here (monotonic clock)...
    pub(crate) lease_start: Instant,
    /// ...and from here by the wall clock.
    pub(crate) lease_start_wall: WallTime,
}

/// The lock is held by someone else (answer of a non-blocking attempt).
#[derive(Clone, Debug, PartialEq)]
pub struct Busy {
    /// Who holds it.
    pub holder: LockRecord,
    /// When a takeover could be attempted if the holder does not renew.
    pub retry_after: Duration,
    /// What was observed; pass it to the next attempt so the watch continues.
    pub observation: Observation,
}

/// Why a lock was not acquired.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum AcquireError {
    /// Invalid options, key or table settings; nothing was sent.
    InvalidInput(InvalidInput),
    /// More failed attempts than `max_retry_count` allowed.
    MaxRetries {
        /// Failed attempts made.
        attempts: u32,
        /// The last holder seen, if any.
        holder: Option<LockRecord>,
    },
    /// `acquire_timeout` ran out.
    Timeout {
        /// The last holder seen, if any.
        holder: Option<LockRecord>,
    },
    /// A non-blocking attempt found the lock held.
    Busy(Busy),
    /// The item at the lock's key is not a lock item.
    ForeignItem(RecordError),
    /// DynamoDB refused in a way retrying cannot fix (validation, access, missing table, ...).
    Dynamo(dynamodb::Error),
    /// A non-blocking attempt could not reach a decision: DynamoDB kept throttling or could
    /// not be reached for `attempts` requests in a row.
    Unavailable {
        /// Requests that failed.
        attempts: u32,
        /// Why the last one failed.
        last_error: dynamodb::Error,
    },
    /// The acquisition was abandoned (its future was dropped, or the client released it
    /// before it finished). Anything it may have written is released in the background.
    Cancelled,
}

/// `owner` of the holder, or `unknown` (for messages).
pub(crate) fn holder_name(holder: Option<&LockRecord>) -> &str {
    holder.map_or("an unknown holder", |h| h.owner.as_str())
}

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcquireError::InvalidInput(e) => e.fmt(f),
            AcquireError::MaxRetries { attempts, holder } => write!(
                f,
                "lock not acquired after {attempts} failed attempts (held by {})",
                holder_name(holder.as_ref())
            ),
            AcquireError::Timeout { holder } => write!(
                f,
                "lock not acquired before the timeout (held by {})",
                holder_name(holder.as_ref())
            ),
            AcquireError::Busy(b) => write!(
                f,
                "lock held by {}; retry in {:?}",
                b.holder.owner, b.retry_after
            ),
            AcquireError::ForeignItem(e) => write!(f, "not a lock item: {e}"),
            AcquireError::Dynamo(e) => write!(f, "DynamoDB: {e}"),
            AcquireError::Unavailable {
                attempts,
                last_error,
            } => write!(
                f,
                "lock state unknown: {attempts} requests failed in a row (last: {last_error})"
            ),
            AcquireError::Cancelled => f.write_str("the acquisition was cancelled"),
        }
    }
}

impl std::error::Error for AcquireError {}

impl From<InvalidInput> for AcquireError {
    fn from(e: InvalidInput) -> Self {
        AcquireError::InvalidInput(e)
    }
}

#[derive(Clone, Debug)]
enum Flight {
    Write { rvn: String },
    Read,
}

/// What one of our writes was meant to do.
#[derive(Clone, Debug)]
enum WriteKind {
    /// Create the item (its token is the writer's clock).
    Create,
    /// Take over an observed version (the token comes back incremented).
    Steal,
    /// Renew a version of ours whose lease was mostly spent before it was recognised: the
    /// token stays the one the item carries.
    Confirm { fence: Option<u64> },
}

/// One of our own writes, which may have been applied: version, monotonic and wall send time.
#[derive(Clone, Debug)]
struct Attempted {
    rvn: String,
    sent: Instant,
    wall: WallTime,
    kind: WriteKind,
}

/// Requests in a row that a non-blocking attempt may see fail (throttled, unreachable)
/// before it answers [`AcquireError::Unavailable`].
pub const TRY_ATTEMPTS: u32 = 3;

/// How an acquisition starts, besides its options.
#[derive(Clone, Debug, Default)]
pub struct Start {
    /// Make one attempt and answer [`AcquireError::Busy`] instead of waiting.
    pub try_only: bool,
    /// What an earlier attempt observed, so a watch goes on across attempts.
    pub prior: Option<Observation>,
    /// Versions this client wrote in earlier acquisitions of the key that did not finish
    /// (cancelled, timed out): an item carrying one of them is ours to take at once.
    pub own_versions: Vec<String>,
    /// Begin with a read instead of a write (the key was contended lately).
    pub read_first: bool,
}

/// Taking a lock.
///
/// The rules, in order:
/// 1. The first attempt is one conditional `PutItem` (create if absent) asking for the current
///    item back on failure (`ALL_OLD`): a free lock costs one write and no read.
/// 2. When the lock is held, the waiter learns the holder from that item and then *reads*
///    (strongly consistent `GetItem`, one read unit) every `poll_interval` (less up to a fifth at
///    random, so waiters do not stay in step); reads are a fifth of the price of failed writes.
///    A vanished item is retried with a create at once.
/// 3. A takeover (`UpdateItem` conditioned on the observed record version) happens only when
///    the same version has been seen for the holder's whole lease on this host's monotonic
///    clock, counted from the *receipt* of the first answer that showed it (the holder counts
///    its lease from before *sending*, so the waiter's count is the later one), or, with
///    `trust_local_time`, when `lastUpdatedTimeInMs + leaseDurationInMs + max_clock_skew` is
///    past by this host's wall clock. A released item (lease 0) and an item left by one of this
///    client's own unfinished acquisitions ([`Start::own_versions`]) are taken over at once.
/// 4. A write whose outcome is unknown (timeout, transport error, 5xx) is never assumed to have
///    failed and never blindly repeated: the next request is a consistent read, and an item
///    carrying one of our own record versions is recognised as ours. Its lease counts from
///    before that write was first sent; if less than half of it is left (the write landed
///    late), the version is renewed first and the lock is returned only once that renewal is
///    confirmed.
/// 5. Failed attempts count against `max_retry_count` (see
///    [`LockOptions::max_retry_count`](crate::LockOptions::max_retry_count)); throttling and
///    errors back off exponentially with jitter; `acquire_timeout` bounds the whole wait; a
///    non-blocking attempt gives up after [`TRY_ATTEMPTS`] failed requests in a row.
#[derive(Debug)]
pub(crate) struct Acquire {
    layout: Layout,
    owner: String,
    opts: LockOptions,
    try_only: bool,
    deadline: Option<Instant>,
    failures: u32,
    /// Failed requests in a row (non-blocking attempts give up after [`TRY_ATTEMPTS`]).
    transient: u32,
    obs: Option<Observation>,
    saw_holder: bool,
    round_end: Option<Instant>,
    mine: Vec<Attempted>,
    own: Vec<String>,
    /// Read before the next write: after an ambiguous write, or on request.
    reconcile: bool,
    /// A write of ours may have applied and no read has looked since.
    unknown: bool,
    /// A version of ours to renew before it is returned (its lease was mostly spent).
    confirm: Option<(String, Option<u64>)>,
    next_at: Instant,
    in_flight: Option<Flight>,
    backoff: Backoff,
    rng: Rng,
    done: Option<Result<Acquired, AcquireError>>,
}

impl Acquire {
    /// Starts acquiring the lock at `layout` for `owner`, at `now`.
    pub(crate) fn new(
        layout: Layout,
        owner: String,
        opts: LockOptions,
        start: Start,
        rng: Rng,
        now: Now,
    ) -> Self {
        let cap = opts
            .poll_interval
            .clamp(Duration::from_millis(50), Duration::from_secs(2));
        let deadline = opts.acquire_timeout.map(|t| now.mono + t);
        let mut acquire = Acquire {
            layout,
            owner,
            try_only: start.try_only,
            deadline,
            failures: 0,
            transient: 0,
            obs: None,
            saw_holder: false,
            round_end: None,
            mine: Vec::new(),
            own: start.own_versions,
            reconcile: start.read_first || start.prior.is_some(),
            unknown: false,
            confirm: None,
            next_at: now.mono,
            in_flight: None,
            backoff: Backoff::new(Duration::from_millis(20), cap),
            rng,
            done: None,
            opts,
        };
        if let Some(p) = start.prior {
            acquire.observe(p.record, p.since, now);
        }
        acquire
    }

    /// Whether another holder was seen during this acquisition (even if it released since).
    pub(crate) fn contended(&self) -> bool {
        self.failures > 0 || self.saw_holder
    }

    /// What this acquisition has observed (holder and since when), to continue the watch in
    /// a later one.
    pub(crate) fn observation(&self) -> Option<&Observation> {
        self.obs.as_ref()
    }

    /// The holder last seen, if any.
    fn holder(&self) -> Option<&LockRecord> {
        self.obs.as_ref().map(|o| &o.record)
    }

    /// Every version this acquisition wrote (some may have been applied), oldest first.
    pub(crate) fn versions_sent(&self) -> impl Iterator<Item = &str> {
        self.mine.iter().map(|a| a.rvn.as_str())
    }

    /// Versions of earlier unfinished acquisitions this one was told about.
    pub(crate) fn own_versions(&self) -> &[String] {
        &self.own
    }

    /// When the first write was sent (monotonic, wall), if any was.
    pub(crate) fn first_write(&self) -> Option<(Instant, WallTime)> {
        self.mine.first().map(|a| (a.sent, a.wall))
    }

    /// Whether a write of ours may have applied without any later read having looked: a write
    /// in flight, or one whose answer was ambiguous. Ending now leaves that write unreconciled.
    pub(crate) fn unreconciled(&self) -> bool {
        self.unknown || matches!(self.in_flight, Some(Flight::Write { .. }))
    }

    /// Whether a request is in flight.
    pub(crate) fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// What to do next. See [`Step`].
    pub(crate) fn poll(&mut self, now: Now) -> Step<Result<Acquired, AcquireError>> {
        if let Some(done) = &self.done {
            return Step::Done(done.clone());
        }
        if self.in_flight.is_some() {
            return Step::AwaitResponse;
        }
        if self.deadline.is_some_and(|d| now.mono >= d) {
            let holder = self.holder().cloned();
            return self.finish(Err(AcquireError::Timeout { holder }));
        }
        if now.mono < self.next_at {
            let wake = self.deadline.map_or(self.next_at, |d| d.min(self.next_at));
            return Step::Sleep(wake);
        }
        if self.reconcile {
            return self.send_read();
        }
        if let Some((rvn, fence)) = self.confirm.take() {
            let new_rvn = self.rng.uuid();
            let request =
                self.layout
                    .renew(std::slice::from_ref(&rvn), &self.owner, &new_rvn, now.wall);
            return self.send(
                now,
                new_rvn,
                WriteKind::Confirm { fence },
                Request::Update(request),
            );
        }
        let Some(obs) = &self.obs else {
            return self.send_write(now, None);
        };
        if now.mono >= self.steal_at(obs, now) {
            let observed = obs.record.rvn.clone();
            return self.send_write(now, Some(observed));
        }
        if self.try_only {
            let busy = self.busy(obs, now);
            return self.finish(Err(AcquireError::Busy(busy)));
        }
        if self.round_end.is_some_and(|end| now.mono >= end) {
            // A whole wait ended with the lock still held: one failed attempt.
            if let Some(done) = self.count_failure() {
                return done;
            }
            self.round_end = Some(self.next_round_end(now));
        }
        self.send_read()
    }

    /// Feeds the outcome of the request [`poll`](Self::poll) asked for.
    pub(crate) fn handle(&mut self, now: Now, outcome: Outcome) {
        let Some(flight) = self.in_flight.take() else {
            return;
        };
        if self.done.is_some() {
            return;
        }
        if matches!(&outcome, Err(e) if e.is_retryable()) {
            self.transient += 1;
        } else {
            self.transient = 0;
        }
        match (flight, outcome) {
            (Flight::Write { rvn }, Ok(response @ (Response::Put(_) | Response::Update(_)))) => {
                let Some(a) = self.mine.iter().find(|a| a.rvn == rvn).cloned() else {
                    return;
                };
                self.unknown = false;
                let fence = match (&a.kind, &response) {
                    (WriteKind::Create, _) => Some(fence_base(a.wall)),
                    (WriteKind::Confirm { fence }, _) => *fence,
                    // A takeover learns the incremented token.
                    (WriteKind::Steal, Response::Update(out)) => out
                        .attributes
                        .as_ref()
                        .and_then(|attrs| attrs.get(attr::FENCE))
                        .and_then(AttributeValue::as_u64),
                    (WriteKind::Steal, _) => None,
                };
                self.acquired(now, a, fence);
            }
            (Flight::Write { .. }, Err(dynamodb::Error::ConditionalCheckFailed { item })) => {
                match item {
                    Some(item) => self.on_item(now, &item, true),
                    None => {
                        // The item we meant to take over (or confirm) is gone: create at once.
                        self.obs = None;
                        self.round_end = None;
                        if self.count_failure().is_none() {
                            self.next_at = now.mono;
                        }
                    }
                }
            }
            (Flight::Read, Ok(Response::Get(out))) => {
                self.reconcile = false;
                // Whatever our ambiguous writes did, this read saw it (or they never landed).
                self.unknown = false;
                match out.item {
                    Some(item) => self.on_item(now, &item, false),
                    None => {
                        self.obs = None;
                        self.round_end = None;
                        self.next_at = now.mono;
                    }
                }
            }
            (flight, Err(e)) if e.is_retryable() => {
                // Throttled (not applied) or ambiguous (maybe applied). After an ambiguous
                // write the next request is a consistent read that recognises our version.
                if matches!(flight, Flight::Write { .. }) && e.is_ambiguous() {
                    self.reconcile = true;
                    self.unknown = true;
                }
                if self.try_only && self.transient >= TRY_ATTEMPTS {
                    self.done = Some(Err(AcquireError::Unavailable {
                        attempts: self.transient,
                        last_error: e,
                    }));
                } else if self.count_failure().is_none() {
                    self.next_at = now.mono + self.backoff.next(&mut self.rng);
                }
            }
            (_, Err(e)) => {
                self.done = Some(Err(AcquireError::Dynamo(e)));
            }
            (_, Ok(other)) => {
                self.done = Some(Err(AcquireError::Dynamo(dynamodb::Error::Malformed {
                    status: 200,
                    reason: format!("unexpected response kind {other:?}"),
                })));
            }
        }
    }

    /// Ends the acquisition (its caller is gone): anything in flight counts as unknown.
    pub(crate) fn cancel(&mut self) {
        if matches!(self.in_flight.take(), Some(Flight::Write { .. })) {
            self.unknown = true;
        }
        if self.done.is_none() {
            self.done = Some(Err(AcquireError::Cancelled));
        }
    }

    fn finish(
        &mut self,
        result: Result<Acquired, AcquireError>,
    ) -> Step<Result<Acquired, AcquireError>> {
        self.done = Some(result.clone());
        Step::Done(result)
    }

    fn count_failure(&mut self) -> Option<Step<Result<Acquired, AcquireError>>> {
        self.failures += 1;
        match self.opts.max_retry_count {
            // A non-blocking attempt is one attempt: it answers Busy (or Unavailable).
            Some(max) if self.failures > max && !self.try_only => {
                let holder = self.holder().cloned();
                Some(self.finish(Err(AcquireError::MaxRetries {
                    attempts: self.failures,
                    holder,
                })))
            }
            _ => None,
        }
    }

    fn send_read(&mut self) -> Step<Result<Acquired, AcquireError>> {
        self.in_flight = Some(Flight::Read);
        Step::Send(Request::Get(self.layout.get()))
    }

    fn send_write(
        &mut self,
        now: Now,
        observed: Option<String>,
    ) -> Step<Result<Acquired, AcquireError>> {
        let rvn = self.rng.uuid();
        let attrs: &Item = &self.opts.additional_attributes;
        let (kind, request) = match &observed {
            None => (
                WriteKind::Create,
                Request::Put(self.layout.create(
                    &self.owner,
                    &rvn,
                    self.opts.lease,
                    attrs,
                    now.wall,
                )),
            ),
            Some(observed) => (
                WriteKind::Steal,
                Request::Update(self.layout.steal(
                    observed,
                    &self.owner,
                    &rvn,
                    self.opts.lease,
                    attrs,
                    now.wall,
                )),
            ),
        };
        self.send(now, rvn, kind, request)
    }

    fn send(
        &mut self,
        now: Now,
        rvn: String,
        kind: WriteKind,
        request: Request,
    ) -> Step<Result<Acquired, AcquireError>> {
        self.mine.push(Attempted {
            rvn: rvn.clone(),
            sent: now.mono,
            wall: now.wall,
            kind,
        });
        self.in_flight = Some(Flight::Write { rvn });
        Step::Send(request)
    }

    fn on_item(&mut self, now: Now, item: &Item, after_write: bool) {
        let record = match LockRecord::from_item(item) {
            Ok(r) => r,
            Err(e) => {
                self.done = Some(Err(AcquireError::ForeignItem(e)));
                return;
            }
        };
        if record.owner == self.owner
            && let Some(a) = self.mine.iter().find(|a| a.rvn == record.rvn).cloned()
        {
            // One of our own earlier writes landed after all.
            let fence = record.fence;
            self.acquired(now, a, fence);
            return;
        }
        self.backoff.reset();
        // A released item (lease 0, kept for its fencing token), or one left by our own
        // unfinished acquisition, is free: taking it over is the next step, and the refused
        // write was no failed attempt.
        let free = self.is_free(&record);
        self.observe(record, now.mono, now);
        if after_write && !free && self.count_failure().is_some() {
            return;
        }
        if self.try_only
            && let Some(obs) = &self.obs
        {
            if now.mono < self.steal_at(obs, now) {
                self.done = Some(Err(AcquireError::Busy(self.busy(obs, now))));
            } else {
                // Watched long enough already: the next poll takes it over.
                self.next_at = now.mono;
            }
            return;
        }
        let pause = self.poll_pause();
        let mut next = now.mono + pause;
        if let Some(obs) = &self.obs {
            next = next.min(self.steal_at(obs, now));
        }
        if let Some(end) = self.round_end {
            next = next.min(end);
        }
        self.next_at = next;
    }

    /// A record nobody holds: released (lease 0), or left by one of our own unfinished
    /// acquisitions.
    fn is_free(&self, record: &LockRecord) -> bool {
        record.lease.is_zero() || (record.owner == self.owner && self.own.contains(&record.rvn))
    }

    /// The pause between two reads: `poll_interval` less up to a fifth, at random, so that
    /// waiters who collided once (all saw a release at the same moment) drift apart instead
    /// of colliding on every handoff.
    fn poll_pause(&mut self) -> Duration {
        let p = self.opts.poll_interval;
        let spread = u64::try_from((p / 5).as_nanos()).unwrap_or(u64::MAX);
        p - Duration::from_nanos(self.rng.below(spread))
    }

    fn observe(&mut self, record: LockRecord, seen: Instant, now: Now) {
        self.saw_holder |= !self.is_free(&record);
        match &mut self.obs {
            Some(o) if o.record.rvn == record.rvn => o.record = record,
            _ => {
                self.obs = Some(Observation {
                    record,
                    since: seen,
                });
                if self.round_end.is_none() {
                    self.round_end = Some(self.next_round_end(now));
                }
            }
        }
    }

    /// When the current wait ends if nothing changes: the holder's whole lease after we
    /// first saw its version, or `wait_duration` from now with `trust_local_time`.
    fn next_round_end(&self, now: Now) -> Instant {
        match (&self.obs, self.opts.trust_local_time) {
            (_, true) => now.mono + self.opts.wait_duration.unwrap_or(self.opts.poll_interval),
            (Some(o), false) => (o.since + o.record.lease).max(now.mono + Duration::from_millis(1)),
            (None, false) => now.mono,
        }
    }

    /// The earliest monotonic instant at which taking over `obs` is allowed.
    fn steal_at(&self, obs: &Observation, now: Now) -> Instant {
        if self.is_free(&obs.record) {
            now.mono
        } else if self.opts.trust_local_time {
            let skew = self.opts.max_clock_skew.unwrap_or_default();
            let expiry = obs.record.stored_expiry() + skew;
            if now.wall > expiry {
                now.mono
            } else {
                now.mono + Duration::from_millis(expiry.as_millis() - now.wall.as_millis() + 1)
            }
        } else {
            obs.since + obs.record.lease
        }
    }

    fn busy(&self, obs: &Observation, now: Now) -> Busy {
        Busy {
            retry_after: self.steal_at(obs, now) - now.mono,
            holder: obs.record.clone(),
            observation: obs.clone(),
        }
    }

    /// Our write `a` is current. Returned as held only with at least half its lease left
    /// (by both clocks, from before it was sent); otherwise it is renewed first.
    fn acquired(&mut self, now: Now, a: Attempted, fence: Option<u64>) {
        let left = validity_left(
            now,
            a.sent,
            a.wall,
            self.opts.lease.saturating_sub(self.opts.margin()),
        );
        if left < self.opts.lease / 2 {
            self.confirm = Some((a.rvn, fence));
            self.next_at = now.mono;
            return;
        }
        self.done = Some(Ok(Acquired {
            record: LockRecord {
                owner: self.owner.clone(),
                rvn: a.rvn,
                lease: self.opts.lease,
                last_updated: a.wall,
                additional: self.opts.additional_attributes.clone(),
                fence,
            },
            lease_start: a.sent,
            lease_start_wall: a.wall,
        }));
    }
}

/// Time left of a validity of `valid` counted from `(mono, wall)`, by both clocks: the
/// monotonic clock decides, and the wall clock bounds it (a suspended process's monotonic
/// clock stands still while its wall clock goes on).
pub(crate) fn validity_left(now: Now, mono: Instant, wall: WallTime, valid: Duration) -> Duration {
    let by_mono = (mono + valid) - now.mono;
    let by_wall = Duration::from_millis(
        (wall + valid)
            .as_millis()
            .saturating_sub(now.wall.as_millis()),
    );
    by_mono.min(by_wall)
}
