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
pub struct Acquired {
    /// The record as written by us.
    pub record: LockRecord,
    /// Before the write that made the record current was first sent: the lease counts from
    /// here.
    pub lease_start: Instant,
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
}

impl fmt::Display for AcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcquireError::InvalidInput(e) => e.fmt(f),
            AcquireError::MaxRetries { attempts, holder } => write!(
                f,
                "lock not acquired after {attempts} failed attempts (held by {:?})",
                holder.as_ref().map(|h| &h.owner)
            ),
            AcquireError::Timeout { holder } => write!(
                f,
                "lock not acquired before the timeout (held by {:?})",
                holder.as_ref().map(|h| &h.owner)
            ),
            AcquireError::Busy(b) => write!(
                f,
                "lock held by {}; retry in {:?}",
                b.holder.owner, b.retry_after
            ),
            AcquireError::ForeignItem(e) => write!(f, "not a lock item: {e}"),
            AcquireError::Dynamo(e) => write!(f, "DynamoDB: {e}"),
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

/// Our own writes that may have been applied: version, monotonic and wall send time.
#[derive(Clone, Debug)]
struct Attempted {
    rvn: String,
    sent: Instant,
    wall: WallTime,
}

/// The acquisition state machine.
///
/// Taking a lock.
///
/// The rules, in order:
/// 1. The first attempt is one conditional `PutItem` (create if absent) asking for the current
///    item back on failure (`ALL_OLD`): a free lock costs one write and no read.
/// 2. When the lock is held, the waiter learns the holder from that item and then *reads*
///    (strongly consistent `GetItem`, one read unit) every `poll_interval` (less up to a fifth at
///    random, so waiters do not stay in step); reads are a fifth
///    of the price of failed writes. A vanished item is retried with a create at once.
/// 3. A takeover (`UpdateItem` conditioned on the observed record version) happens only when
///    the same version has been seen for the holder's whole lease on this host's monotonic
///    clock, counted from the *receipt* of the first answer that showed it (the holder counts
///    its lease from before *sending*, so the waiter's count is the later one), or, with
///    `trust_local_time`, when `lastUpdatedTimeInMs + leaseDurationInMs + max_clock_skew` is
///    past by this host's wall clock.
/// 4. A write whose outcome is unknown (timeout, transport error, 5xx) is never assumed to have
///    failed and never blindly repeated: the next request is a consistent read, and an item
///    carrying one of our own record versions is recognised as ours. Its lease counts from
///    before that write was first sent.
/// 5. Failed attempts count against `max_retry_count` (see
///    [`LockOptions::max_retry_count`](crate::LockOptions::max_retry_count)); throttling and
///    errors back off exponentially with jitter; `acquire_timeout` bounds the whole wait.
#[derive(Debug)]
pub struct Acquire {
    layout: Layout,
    owner: String,
    opts: LockOptions,
    try_only: bool,
    deadline: Option<Instant>,
    failures: u32,
    obs: Option<Observation>,
    saw_holder: bool,
    round_end: Option<Instant>,
    mine: Vec<Attempted>,
    reconcile: bool,
    next_at: Instant,
    in_flight: Option<Flight>,
    backoff: Backoff,
    rng: Rng,
    done: Option<Result<Acquired, AcquireError>>,
}

impl Acquire {
    /// Starts acquiring the lock at `layout` for `owner`, at `now`. `try_only`: make one
    /// attempt and answer [`AcquireError::Busy`] instead of waiting. `prior`: what an earlier
    /// attempt observed, so a watch can go on across non-blocking attempts. `read_first`:
    /// begin with a read instead of a write (the key was contended lately).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        layout: Layout,
        owner: String,
        opts: LockOptions,
        try_only: bool,
        prior: Option<Observation>,
        read_first: bool,
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
            try_only,
            deadline,
            failures: 0,
            obs: None,
            saw_holder: false,
            round_end: None,
            mine: Vec::new(),
            reconcile: read_first,
            next_at: now.mono,
            in_flight: None,
            backoff: Backoff::new(Duration::from_millis(20), cap),
            rng,
            done: None,
            opts,
        };
        if let Some(p) = prior {
            acquire.observe(p.record, p.since, now);
        }
        acquire
    }

    /// Failed attempts so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Whether another holder was seen during this acquisition (even if it released since).
    pub fn contended(&self) -> bool {
        self.failures > 0 || self.saw_holder
    }

    /// What this acquisition has observed (holder and since when), to continue the watch in
    /// a later one.
    pub fn observation(&self) -> Option<&Observation> {
        self.obs.as_ref()
    }

    /// The holder last seen, if any.
    pub fn holder(&self) -> Option<&LockRecord> {
        self.obs.as_ref().map(|o| &o.record)
    }

    /// What to do next. See [`Step`].
    pub fn poll(&mut self, now: Now) -> Step<Result<Acquired, AcquireError>> {
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
    pub fn handle(&mut self, now: Now, outcome: Outcome) {
        let Some(flight) = self.in_flight.take() else {
            return;
        };
        match (flight, outcome) {
            (Flight::Write { rvn }, Ok(response @ (Response::Put(_) | Response::Update(_)))) => {
                let Some(a) = self.mine.iter().find(|a| a.rvn == rvn).cloned() else {
                    return;
                };
                // A create wrote its token; a takeover learns the incremented one.
                let fence = match &response {
                    Response::Update(out) => out
                        .attributes
                        .as_ref()
                        .and_then(|attrs| attrs.get(attr::FENCE))
                        .and_then(AttributeValue::as_u64),
                    _ => Some(fence_base(a.wall)),
                };
                self.acquired(a, fence);
            }
            (Flight::Write { .. }, Err(dynamodb::Error::ConditionalCheckFailed { item })) => {
                match item {
                    Some(item) => self.on_item(now, &item, true),
                    None => {
                        // The item we meant to take over is gone: create at once.
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
                }
                if self.count_failure().is_none() {
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
            Some(max) if self.failures > max => {
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
        let request = match &observed {
            None => Request::Put(self.layout.create(
                &self.owner,
                &rvn,
                self.opts.lease,
                attrs,
                now.wall,
            )),
            Some(observed) => Request::Update(self.layout.steal(
                observed,
                &self.owner,
                &rvn,
                self.opts.lease,
                attrs,
                now.wall,
            )),
        };
        self.mine.push(Attempted {
            rvn: rvn.clone(),
            sent: now.mono,
            wall: now.wall,
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
            self.acquired(a, fence);
            return;
        }
        self.backoff.reset();
        // A released item (lease 0, kept for its fencing token) is free: taking it over is
        // the next step, and the refused create was no failed attempt.
        let free = record.lease.is_zero();
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

    /// The pause between two reads: `poll_interval` less up to a fifth, at random, so that
    /// waiters who collided once (all saw a release at the same moment) drift apart instead
    /// of colliding on every handoff.
    fn poll_pause(&mut self) -> Duration {
        let p = self.opts.poll_interval;
        let spread = u64::try_from((p / 5).as_nanos()).unwrap_or(u64::MAX);
        p - Duration::from_nanos(self.rng.below(spread))
    }

    fn observe(&mut self, record: LockRecord, seen: Instant, now: Now) {
        self.saw_holder |= !record.lease.is_zero();
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
        if obs.record.lease.is_zero() {
            // Released by its holder: free now.
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

    fn acquired(&mut self, a: Attempted, fence: Option<u64>) {
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
        }));
    }
}
