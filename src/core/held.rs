//! Keeping a lock: renewals, loss, release ([`Held`], driven by the
//! [`LockMachine`](super::LockMachine)).

use std::fmt;
use std::time::Duration;

use super::acquire::{Acquired, validity_left};
use super::record::{Layout, LockRecord};
use super::{Backoff, Outcome, Request, Response, Rng};
use crate::dynamodb::{self, transact_write_items::TransactItem};
use crate::options::LockOptions;
use crate::time::{Instant, Now, WallTime};

/// At most this many versions of unknown outcome are kept (DynamoDB's `IN` takes 100).
const MAX_UNCERTAIN: usize = 32;

/// Why a held lock is no longer held.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum LossReason {
    /// Another owner's version was found on the item.
    Stolen {
        /// The new holder, if its item could be read.
        by: Option<LockRecord>,
    },
    /// The item was deleted by someone else (or by TTL).
    Deleted,
    /// No renewal succeeded before the lease minus the safety margin ran out (or renewal
    /// was off), by the monotonic clock or by the wall clock since the last confirmed write
    /// (a process that was suspended). `last_error` is why renewals failed, if they did.
    Expired {
        /// The last renewal error.
        last_error: Option<dynamodb::Error>,
    },
    /// Released by us.
    Released,
}

impl fmt::Display for LossReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LossReason::Stolen { by } => {
                write!(f, "stolen by {}", super::acquire::holder_name(by.as_ref()))
            }
            LossReason::Deleted => f.write_str("the lock item was deleted by someone else"),
            LossReason::Expired { last_error: None } => f.write_str("the lease expired"),
            LossReason::Expired {
                last_error: Some(e),
            } => write!(f, "the lease expired; renewals failed: {e}"),
            LossReason::Released => f.write_str("released"),
        }
    }
}

/// How a release ended when it did not fail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReleaseOutcome {
    /// Our item was deleted (or marked released).
    Released,
    /// There was no item any more (deleted by TTL or someone else); nothing was changed.
    AlreadyGone,
}

/// Why a release failed.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ReleaseError {
    /// The lock is someone else's now; their item was not touched.
    NotOwner {
        /// The current holder, if its item could be read.
        holder: Option<LockRecord>,
    },
    /// The lock was already lost before the release was asked for (the client had reported
    /// it, or would have: its lease had run out). An expired lock's item is still deleted if
    /// it carries our version, so others need not wait.
    AlreadyLost(LossReason),
    /// The delete could not be confirmed before the lease ran out; the lock expires with it.
    Unconfirmed(dynamodb::Error),
    /// DynamoDB refused the delete.
    Dynamo(dynamodb::Error),
}

impl fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReleaseError::NotOwner { holder } => write!(
                f,
                "not released: the lock is held by {}",
                super::acquire::holder_name(holder.as_ref())
            ),
            ReleaseError::AlreadyLost(r) => write!(f, "not released: already lost ({r})"),
            ReleaseError::Unconfirmed(e) => {
                write!(f, "release not confirmed ({e}); the lease will expire")
            }
            ReleaseError::Dynamo(e) => write!(f, "release failed: {e}"),
        }
    }
}

impl std::error::Error for ReleaseError {}

/// A change of a held lock's state, in the order they happen.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum LockEvent {
    /// A renewal was confirmed.
    Renewed,
    /// A renewal failed (throttled, unreachable): the lock is still held, for now.
    RenewalFailing(dynamodb::Error),
    /// A renewal was confirmed after renewals had failed.
    Recovered,
    /// The lock is lost (final).
    Lost(LossReason),
}

/// What a part of a [`Held`] wants next.
#[derive(Debug, PartialEq)]
pub(crate) enum Want {
    /// Send this request.
    Send(Request),
    /// Nothing before this monotonic instant.
    Sleep(Instant),
    /// Nothing until an input (an answer, a command).
    Idle,
}

#[derive(Clone, Debug)]
struct Renewal {
    rvn: String,
    sent: Instant,
    wall: WallTime,
}

#[derive(Debug)]
struct Release {
    in_flight: bool,
    next_at: Instant,
    /// An attempt's outcome was unknown: a later "no item" may be our own delete.
    ambiguous: bool,
    /// Versions written by releases that keep the item (any of them may be current).
    marks: Vec<String>,
    /// The loss the client had reported (or would have) when the release was asked for.
    lost_before: Option<LossReason>,
    backoff: Backoff,
    result: Option<Result<ReleaseOutcome, ReleaseError>>,
}

/// A held lock: renewals, loss detection, release.
///
/// The holder counts its lease from *before sending* the write that made its record version
/// current, and stops counting the lock as held a safety margin before the lease ends, so a
/// waiter (who counts from *after receiving* that version) cannot take over while the holder
/// still believes it holds the lock, as long as the two monotonic clocks drift apart by less
/// than the margin over one lease. The wall clock since that write bounds it too: a process
/// suspended with its monotonic clock stopped wakes up knowing its lease ran out.
///
/// A renewal whose outcome is unknown (timeout, transport error, 5xx) is neither assumed
/// failed nor assumed applied: its new version joins the set of versions that may be current,
/// and the next renewal (or the release) is conditioned on `recordVersionNumber IN (that set)`.
/// The lease still counts from the last *confirmed* write. Each renewal's timeout is at most
/// half the validity left, so a hung renewal leaves time for another. Throttled renewals are
/// retried with backoff until the lease minus the margin runs out; only then is the lock
/// reported lost (`Expired`). A renewal refused because another owner's version is there
/// reports `Stolen`.
///
/// A release may go out while a renewal is in flight: it names that renewal's version too.
/// It is retried with backoff while the item could still block others (until the lease
/// runs out).
#[derive(Debug)]
pub(crate) struct Held {
    layout: Layout,
    record: LockRecord,
    lease_start: Instant,
    lease_start_wall: WallTime,
    margin: Duration,
    prolong_every: Option<Duration>,
    uncertain: Vec<String>,
    /// When the latest of our writes of unknown outcome was sent: if it applied, the item
    /// holds others off for a lease from then.
    uncertain_sent: Option<(Instant, WallTime)>,
    next_renew: Instant,
    renewing: Option<Renewal>,
    lost: Option<LossReason>,
    last_error: Option<dynamodb::Error>,
    /// The version the next renewal will write, drawn ahead so `still_held` can name it.
    next_rvn: String,
    keep_item: bool,
    release: Option<Release>,
    backoff: Backoff,
    rng: Rng,
    events: Vec<LockEvent>,
}

impl Held {
    /// The lock just acquired, with the options it was acquired with.
    pub(crate) fn new(
        layout: Layout,
        acquired: Acquired,
        opts: &LockOptions,
        mut rng: Rng,
    ) -> Self {
        let every = opts.renewal_period();
        Held {
            next_rvn: rng.uuid(),
            layout,
            next_renew: acquired.lease_start + every,
            lease_start: acquired.lease_start,
            lease_start_wall: acquired.lease_start_wall,
            record: acquired.record,
            margin: opts.margin(),
            prolong_every: opts.prolong.then_some(every),
            uncertain: Vec::new(),
            uncertain_sent: None,
            renewing: None,
            lost: None,
            last_error: None,
            keep_item: opts.keep_item_on_release,
            release: None,
            backoff: Backoff::new(
                Duration::from_millis(20),
                (every / 4).max(Duration::from_millis(20)),
            ),
            rng,
            events: Vec::new(),
        }
    }

    /// The item an unfinished acquisition may have left: versions `versions` (the newest
    /// last), its first write sent at `(sent, wall)`. Releasing it deletes (or marks
    /// released) whichever of them is current.
    pub(crate) fn leftover(
        layout: Layout,
        owner: String,
        versions: Vec<String>,
        sent: (Instant, WallTime),
        opts: &LockOptions,
        rng: Rng,
        now: Now,
    ) -> Self {
        let mut versions = versions;
        let rvn = versions.pop().unwrap_or_default();
        let acquired = Acquired {
            record: LockRecord {
                owner,
                rvn,
                lease: opts.lease,
                last_updated: sent.1,
                additional: opts.additional_attributes.clone(),
                fence: None,
            },
            lease_start: sent.0,
            lease_start_wall: sent.1,
        };
        let mut held = Held::new(layout, acquired, &opts.clone().prolong(false), rng);
        held.uncertain = versions;
        held.uncertain.truncate(MAX_UNCERTAIN);
        held.begin_release(now);
        // Not a lock anyone was told they held: nothing was lost before.
        if let Some(r) = &mut held.release {
            r.lost_before = None;
        }
        held.events.clear();
        held
    }

    /// Our record as last confirmed.
    pub(crate) fn record(&self) -> &LockRecord {
        &self.record
    }

    /// Conservative time left by both clocks; zero when lost.
    pub(crate) fn remaining(&self, now: Now) -> Duration {
        if self.lost.is_some() || self.release.is_some() {
            return Duration::ZERO;
        }
        validity_left(
            now,
            self.lease_start,
            self.lease_start_wall,
            self.record.lease.saturating_sub(self.margin),
        )
    }

    /// Why the lock is lost, if it is (`Expired` once its validity ran out by either clock).
    pub(crate) fn lost(&self, now: Now) -> Option<LossReason> {
        if let Some(r) = &self.lost {
            return Some(r.clone());
        }
        if matches!(&self.release, Some(r) if matches!(r.result, Some(Ok(_)))) {
            return Some(LossReason::Released);
        }
        self.time_lost(now)
    }

    fn time_lost(&self, now: Now) -> Option<LossReason> {
        let left = validity_left(
            now,
            self.lease_start,
            self.lease_start_wall,
            self.record.lease.saturating_sub(self.margin),
        );
        left.is_zero().then(|| LossReason::Expired {
            last_error: self.last_error.clone(),
        })
    }

    /// The last renewal error while the lock is still held: DynamoDB unreachable or
    /// throttled, which is not (yet) a loss.
    pub(crate) fn renewal_error(&self) -> Option<&dynamodb::Error> {
        self.last_error.as_ref()
    }

    /// Whether a release was asked for.
    pub(crate) fn releasing(&self) -> bool {
        self.release.is_some()
    }

    /// Events since the last call.
    pub(crate) fn take_events(&mut self) -> Vec<LockEvent> {
        std::mem::take(&mut self.events)
    }

    /// A transaction action that holds only while this lock is ours (any version that may
    /// be current). `None` when the lock is lost or being released.
    pub(crate) fn still_held(&self, now: Now) -> Option<TransactItem> {
        if self.lost(now).is_some() || self.release.is_some() {
            return None;
        }
        // A renewal may land while the caller's transaction is on its way: name the version
        // in flight and the one the next renewal will write, both ours.
        let mut versions = self.versions();
        versions.push(self.next_rvn.clone());
        Some(self.layout.still_held(&versions, &self.record.owner))
    }

    /// Every version of ours that may be current: the confirmed one, those of unknown
    /// outcome, the renewal in flight, and marks of releases that keep the item.
    fn versions(&self) -> Vec<String> {
        let mut v = Vec::with_capacity(2 + self.uncertain.len());
        v.push(self.record.rvn.clone());
        v.extend(self.uncertain.iter().cloned());
        if let Some(r) = &self.renewing {
            v.push(r.rvn.clone());
        }
        if let Some(r) = &self.release {
            v.extend(r.marks.iter().cloned());
        }
        v
    }

    fn lose(&mut self, reason: LossReason) {
        if self.lost.is_none() && self.release.is_none() {
            self.events.push(LockEvent::Lost(reason.clone()));
        }
        self.lost = Some(reason);
    }

    /// Renewals: what to do next. `Idle` once they are over (lost, releasing, off).
    pub(crate) fn poll_renew(&mut self, now: Now) -> Want {
        if self.lost.is_some() || self.release.is_some() {
            return Want::Idle;
        }
        if let Some(reason) = self.time_lost(now) {
            self.lose(reason);
            return Want::Idle;
        }
        // When the lock expires if nothing changes, on the monotonic clock (the wall-clock
        // bound mapped onto it as of now).
        let expiry = now.mono + self.remaining(now);
        if self.renewing.is_some() {
            return Want::Sleep(expiry);
        }
        let Some(every) = self.prolong_every else {
            return Want::Sleep(expiry);
        };
        if now.mono < self.next_renew {
            return Want::Sleep(self.next_renew.min(expiry));
        }
        let rvn = std::mem::replace(&mut self.next_rvn, self.rng.uuid());
        let request = self
            .layout
            .renew(&self.versions(), &self.record.owner, &rvn, now.wall);
        self.renewing = Some(Renewal {
            rvn,
            sent: now.mono,
            wall: now.wall,
        });
        // (Without an answer, the next renewal waits for this one's timeout.)
        self.next_renew = now.mono + every;
        Want::Send(Request::Update(request))
    }

    /// The timeout of a renewal sent at `now`: at most half the validity left, so that a
    /// hung renewal leaves time for another before the lock would expire.
    pub(crate) fn renewal_timeout(&self, now: Now, request_timeout: Duration) -> Duration {
        (self.remaining(now) / 2)
            .min(request_timeout)
            .max(Duration::from_millis(1))
    }

    /// Feeds the outcome of the renewal in flight.
    pub(crate) fn handle_renew(&mut self, now: Now, outcome: Outcome) {
        let Some(Renewal { rvn, sent, wall }) = self.renewing.take() else {
            return;
        };
        // A refusal that shows our own new version means the renewal did apply: a duplicate
        // of the request, refused after the first copy landed, was answered first.
        let applied = match &outcome {
            Ok(Response::Update(_)) => true,
            Err(dynamodb::Error::ConditionalCheckFailed { item: Some(item) }) => {
                LockRecord::from_item(item)
                    .is_ok_and(|r| r.rvn == rvn && r.owner == self.record.owner)
            }
            _ => false,
        };
        if applied {
            // Either way the item now carries `rvn`: a release must name it.
            self.record.rvn = rvn;
            self.record.last_updated = wall;
            self.uncertain.clear();
            self.uncertain_sent = None;
            if self.lost.is_some() || self.release.is_some() {
                return;
            }
            if let Some(reason) = self.time_lost(now) {
                // Too late: the lock already counted as lost (and may have been reported so).
                // Loss is final; the item expires with its lease.
                self.lose(reason);
                return;
            }
            self.lease_start = sent;
            self.lease_start_wall = wall;
            self.events.push(if self.last_error.take().is_some() {
                LockEvent::Recovered
            } else {
                LockEvent::Renewed
            });
            self.backoff.reset();
            self.next_renew = sent + self.prolong_every.unwrap_or(self.record.lease);
            return;
        }
        match outcome {
            Err(dynamodb::Error::ConditionalCheckFailed { item }) => {
                // While releasing, our own delete may have gone first: the release decides.
                if self.release.is_none() {
                    self.lose(loss_from(item));
                }
            }
            Err(e) => {
                // Even a throttled answer may have a twin that landed (a transport that
                // duplicates requests): keep every unconfirmed version as possibly current.
                self.add_uncertain(rvn, sent, wall);
                if self.lost.is_none() && self.release.is_none() {
                    if self.last_error.is_none() {
                        self.events.push(LockEvent::RenewalFailing(e.clone()));
                    }
                    self.last_error = Some(e);
                    self.next_renew = now.mono + self.backoff.next(&mut self.rng);
                }
            }
            Ok(other) => {
                self.add_uncertain(rvn, sent, wall);
                self.last_error = Some(dynamodb::Error::Malformed {
                    status: 200,
                    reason: format!("unexpected response kind {other:?}"),
                });
                self.next_renew = now.mono + self.backoff.next(&mut self.rng);
            }
        }
    }

    fn add_uncertain(&mut self, rvn: String, sent: Instant, wall: WallTime) {
        let (m, w) = self.uncertain_sent.unwrap_or((sent, wall));
        self.uncertain_sent = Some((m.max(sent), w.max(wall)));
        if !self.uncertain.contains(&rvn) {
            if self.uncertain.len() == MAX_UNCERTAIN {
                self.uncertain.remove(0);
            }
            self.uncertain.push(rvn);
        }
    }

    /// Starts releasing: renewals stop. A lock lost before (stolen, deleted) is not touched;
    /// an expired one is still deleted if our version is there, and reported `AlreadyLost`.
    pub(crate) fn begin_release(&mut self, now: Now) {
        if self.release.is_some() {
            return;
        }
        let lost_before = self.lost(now);
        let result = match &lost_before {
            None | Some(LossReason::Expired { .. }) => None,
            Some(reason) => Some(Err(ReleaseError::AlreadyLost(reason.clone()))),
        };
        self.release = Some(Release {
            in_flight: false,
            next_at: now.mono,
            ambiguous: false,
            marks: Vec::new(),
            lost_before,
            backoff: self.backoff.clone(),
            result,
        });
        if let Some(r) = &mut self.release {
            r.backoff.reset();
        }
    }

    /// The release's result, once there is one.
    pub(crate) fn release_result(&self) -> Option<&Result<ReleaseOutcome, ReleaseError>> {
        self.release.as_ref().and_then(|r| r.result.as_ref())
    }

    /// Release: what to do next (`Idle` when it has its result or none was asked for).
    pub(crate) fn poll_release(&mut self, now: Now) -> Want {
        let versions = self.versions();
        let owner = self.record.owner.clone();
        let Some(r) = &mut self.release else {
            return Want::Idle;
        };
        if r.result.is_some() || r.in_flight {
            return Want::Idle;
        }
        if now.mono < r.next_at {
            return Want::Sleep(r.next_at);
        }
        r.in_flight = true;
        Want::Send(if self.keep_item {
            let rvn = self.rng.uuid();
            // Its outcome may be unknown too: a retry must accept it as ours.
            r.marks.push(rvn.clone());
            Request::Update(
                self.layout
                    .release_keeping(&versions, &owner, &rvn, now.wall),
            )
        } else {
            Request::Delete(self.layout.release(&versions, &owner))
        })
    }

    /// Whether the item can no longer block others: the lease from the latest write of ours
    /// that may have applied (confirmed, of unknown outcome, or in flight) is over.
    fn lease_over(&self, now: Now) -> bool {
        let mut latest = (self.lease_start, self.lease_start_wall);
        for (mono, wall) in self
            .uncertain_sent
            .into_iter()
            .chain(self.renewing.as_ref().map(|r| (r.sent, r.wall)))
        {
            latest = (latest.0.max(mono), latest.1.max(wall));
        }
        validity_left(now, latest.0, latest.1, self.record.lease).is_zero()
    }

    /// Feeds the outcome of the release in flight.
    pub(crate) fn handle_release(&mut self, now: Now, outcome: Outcome) {
        let lease_over = self.lease_over(now);
        let owner = self.record.owner.clone();
        let Some(r) = &mut self.release else { return };
        if !std::mem::take(&mut r.in_flight) || r.result.is_some() {
            return;
        }
        let result = match outcome {
            Ok(Response::Delete(_) | Response::Update(_)) => Ok(ReleaseOutcome::Released),
            Err(dynamodb::Error::ConditionalCheckFailed { item: None }) => {
                if r.ambiguous {
                    // An earlier attempt of ours deleted it.
                    Ok(ReleaseOutcome::Released)
                } else {
                    Ok(ReleaseOutcome::AlreadyGone)
                }
            }
            Err(dynamodb::Error::ConditionalCheckFailed { item: Some(item) }) => {
                let record = LockRecord::from_item(&item).ok();
                match record {
                    // An earlier attempt of ours marked it released.
                    Some(rec) if rec.owner == owner && r.marks.contains(&rec.rvn) => {
                        Ok(ReleaseOutcome::Released)
                    }
                    holder => Err(ReleaseError::NotOwner { holder }),
                }
            }
            Err(e) if e.is_retryable() => {
                r.ambiguous |= e.is_ambiguous();
                // Retry while the item may still block others; then the lease frees it anyway.
                if !lease_over {
                    r.next_at = now.mono + r.backoff.next(&mut self.rng);
                    return;
                }
                Err(ReleaseError::Unconfirmed(e))
            }
            Err(e) => Err(ReleaseError::Dynamo(e)),
            Ok(other) => Err(ReleaseError::Dynamo(dynamodb::Error::Malformed {
                status: 200,
                reason: format!("unexpected response kind {other:?}"),
            })),
        };
        let result = match (&r.lost_before, result) {
            (Some(reason), _) => Err(ReleaseError::AlreadyLost(reason.clone())),
            (None, Err(ReleaseError::NotOwner { holder })) => {
                self.lost = Some(LossReason::Stolen { by: holder.clone() });
                Err(ReleaseError::NotOwner { holder })
            }
            (None, result) => result,
        };
        if let Some(r) = &mut self.release {
            r.result = Some(result);
        }
    }
}

fn loss_from(item: Option<dynamodb::Item>) -> LossReason {
    match item {
        None => LossReason::Deleted,
        Some(item) => LossReason::Stolen {
            by: LockRecord::from_item(&item).ok(),
        },
    }
}
