//! Keeping a lock: [`Held`].

use std::fmt;
use std::time::Duration;

use super::acquire::Acquired;
use super::record::{Layout, LockRecord};
use super::{Backoff, Outcome, Request, Response, Rng, Step};
use crate::dynamodb;
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
    /// was off). `last_error` is why renewals failed, if they did.
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
                write!(f, "stolen by {:?}", by.as_ref().map(|r| r.owner.as_str()))
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
    /// Our item was deleted.
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
    /// The lock was already lost (or released) before.
    AlreadyLost(LossReason),
    /// The delete could not be confirmed; the lock will expire with its lease.
    Unconfirmed(dynamodb::Error),
    /// DynamoDB refused the delete.
    Dynamo(dynamodb::Error),
}

impl fmt::Display for ReleaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReleaseError::NotOwner { holder } => write!(
                f,
                "not released: the lock is held by {:?}",
                holder.as_ref().map(|r| r.owner.as_str())
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

/// What the renewal side of a [`Held`] wants next.
pub type HeldStep = Step<LossReason>;
/// What the release side of a [`Held`] wants next.
pub type ReleaseStep = Step<Result<ReleaseOutcome, ReleaseError>>;

#[derive(Clone, Debug)]
enum Flight {
    Renew {
        rvn: String,
        sent: Instant,
        wall: WallTime,
    },
    Release,
}

/// A held lock's state machine.
///
/// Keeping a lock: renewals, loss, release.
///
/// The holder counts its lease from *before sending* the write that made its record version
/// current, and stops counting the lock as held a safety margin before the lease ends, so a
/// waiter (who counts from *after receiving* that version) cannot take over while the holder
/// still believes it holds the lock, as long as the two monotonic clocks drift apart by less
/// than the margin over one lease.
///
/// A renewal whose outcome is unknown (timeout, transport error, 5xx) is neither assumed
/// failed nor assumed applied: its new version joins the set of versions that may be current,
/// and the next renewal (or the release) is conditioned on `recordVersionNumber IN (that set)`.
/// The lease still counts from the last *confirmed* write. Throttled renewals are retried with
/// backoff until the lease minus the margin runs out; only then is the lock reported lost
/// (`Expired`). A renewal refused because another owner's version is there reports `Stolen`.
#[derive(Debug)]
pub struct Held {
    layout: Layout,
    record: LockRecord,
    lease_start: Instant,
    margin: Duration,
    prolong_every: Option<Duration>,
    uncertain: Vec<String>,
    next_renew: Instant,
    in_flight: Option<Flight>,
    lost: Option<LossReason>,
    last_error: Option<dynamodb::Error>,
    releasing: bool,
    /// The version the next renewal will write, drawn ahead so `still_held` can name it.
    next_rvn: String,
    keep_item: bool,
    abandoned: bool,
    release_ambiguous: bool,
    release_attempts: u32,
    release_next: Instant,
    release_result: Option<Result<ReleaseOutcome, ReleaseError>>,
    backoff: Backoff,
    rng: Rng,
}

impl Held {
    /// The lock just acquired, with the options it was acquired with.
    pub fn new(layout: Layout, acquired: Acquired, opts: &LockOptions, mut rng: Rng) -> Self {
        let prolong_every = opts.prolong.then_some(opts.prolong_every);
        Held {
            next_rvn: rng.uuid(),
            layout,
            next_renew: acquired.lease_start + opts.prolong_every,
            lease_start: acquired.lease_start,
            record: acquired.record,
            margin: opts.margin(),
            prolong_every,
            uncertain: Vec::new(),
            in_flight: None,
            lost: None,
            last_error: None,
            releasing: false,
            keep_item: opts.keep_item_on_release,
            abandoned: false,
            release_ambiguous: false,
            release_attempts: 0,
            release_next: Instant::ZERO,
            release_result: None,
            backoff: Backoff::new(
                Duration::from_millis(20),
                (opts.prolong_every / 4).max(Duration::from_millis(20)),
            ),
            rng,
        }
    }

    /// Our record as last confirmed.
    pub fn record(&self) -> &LockRecord {
        &self.record
    }

    /// The layout (table and key).
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Until when the lock counts as held: the last confirmed write's send time plus the
    /// lease, minus the safety margin.
    pub fn valid_until(&self) -> Instant {
        (self.lease_start + self.record.lease).saturating_sub(self.margin)
    }

    /// Why the lock is lost, if it is (`Expired` once `now` passes [`valid_until`](Self::valid_until)).
    pub fn lost(&self, now: Instant) -> Option<LossReason> {
        if let Some(r) = &self.lost {
            return Some(r.clone());
        }
        (now >= self.valid_until()).then(|| LossReason::Expired {
            last_error: self.last_error.clone(),
        })
    }

    /// Conservative time left: zero when lost.
    pub fn remaining(&self, now: Instant) -> Duration {
        if self.lost(now).is_some() {
            Duration::ZERO
        } else {
            self.valid_until() - now
        }
    }

    /// The last renewal error while the lock is still held: DynamoDB unreachable or
    /// throttled, which is not (yet) a loss.
    pub fn renewal_error(&self) -> Option<&dynamodb::Error> {
        self.last_error.as_ref()
    }

    /// A transaction action that holds only while this lock is ours (any version that may
    /// be current). `None` when the lock is known lost or released.
    pub fn still_held(
        &self,
        now: Instant,
    ) -> Option<crate::dynamodb::transact_write_items::TransactItem> {
        if self.lost(now).is_some() || self.releasing {
            return None;
        }
        // A renewal may land while the caller's transaction is on its way: name the version
        // in flight and the one the next renewal will write, both ours.
        let mut versions = self.versions();
        if let Some(Flight::Renew { rvn, .. }) = &self.in_flight {
            versions.push(rvn.clone());
        }
        versions.push(self.next_rvn.clone());
        Some(self.layout.still_held(&versions, &self.record.owner))
    }

    /// Whether a request of this lock is in flight.
    pub fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    fn versions(&self) -> Vec<String> {
        let mut v = Vec::with_capacity(1 + self.uncertain.len());
        v.push(self.record.rvn.clone());
        v.extend(self.uncertain.iter().cloned());
        v
    }

    /// Stops renewing without releasing (the handle was dropped): the item stays and
    /// expires with its lease.
    pub fn abandon(&mut self) {
        self.abandoned = true;
    }

    /// Whether a release has begun.
    pub fn releasing(&self) -> bool {
        self.releasing
    }

    /// Renewal: what to do next. `Done` when renewals are over (lost, released, abandoned).
    pub fn poll_renew(&mut self, now: Now) -> HeldStep {
        if self.releasing {
            return Step::Done(LossReason::Released);
        }
        if self.abandoned && self.in_flight.is_none() {
            return Step::Done(LossReason::Expired { last_error: None });
        }
        if let Some(reason) = self.lost(now.mono) {
            self.lost = Some(reason.clone());
            return Step::Done(reason);
        }
        if self.in_flight.is_some() {
            return Step::AwaitResponse;
        }
        let Some(_) = self.prolong_every else {
            return Step::Sleep(self.valid_until());
        };
        if now.mono < self.next_renew {
            return Step::Sleep(self.next_renew.min(self.valid_until()));
        }
        let rvn = std::mem::replace(&mut self.next_rvn, self.rng.uuid());
        let request = self
            .layout
            .renew(&self.versions(), &self.record.owner, &rvn, now.wall);
        self.in_flight = Some(Flight::Renew {
            rvn,
            sent: now.mono,
            wall: now.wall,
        });
        Step::Send(Request::Update(request))
    }

    /// Feeds the outcome of a request this machine asked for (renewal or release).
    pub fn handle(&mut self, now: Now, outcome: Outcome) {
        match self.in_flight.take() {
            Some(Flight::Renew { rvn, sent, wall }) => {
                self.handle_renew(now, rvn, sent, wall, outcome)
            }
            Some(Flight::Release) => self.handle_release(now, outcome),
            None => {}
        }
    }

    fn handle_renew(
        &mut self,
        now: Now,
        rvn: String,
        sent: Instant,
        wall: WallTime,
        outcome: Outcome,
    ) {
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
            if now.mono >= self.valid_until() {
                // Too late: the lock already counted as lost (and may have been reported so).
                // Loss is final; the item expires with its lease.
                self.lost = Some(LossReason::Expired {
                    last_error: self.last_error.clone(),
                });
                return;
            }
            self.lease_start = sent;
            self.last_error = None;
            self.backoff.reset();
            self.next_renew = sent + self.prolong_every.unwrap_or(self.record.lease);
            return;
        }
        match outcome {
            Err(dynamodb::Error::ConditionalCheckFailed { item }) => {
                self.lost = Some(self.loss_from(item));
            }
            Err(e) => {
                // Even a throttled answer may have a twin that landed (a transport that
                // duplicates requests): keep every unconfirmed version as possibly current.
                if !self.uncertain.contains(&rvn) {
                    if self.uncertain.len() == MAX_UNCERTAIN {
                        self.uncertain.remove(0);
                    }
                    self.uncertain.push(rvn);
                }
                self.last_error = Some(e);
                self.next_renew = now.mono + self.backoff.next(&mut self.rng);
            }
            Ok(other) => {
                self.last_error = Some(dynamodb::Error::Malformed {
                    status: 200,
                    reason: format!("unexpected response kind {other:?}"),
                });
                self.next_renew = now.mono + self.backoff.next(&mut self.rng);
            }
        }
    }

    fn loss_from(&self, item: Option<dynamodb::Item>) -> LossReason {
        match item {
            None => LossReason::Deleted,
            Some(item) => LossReason::Stolen {
                by: LockRecord::from_item(&item).ok(),
            },
        }
    }

    /// Starts releasing: renewals stop.
    pub fn begin_release(&mut self) {
        self.releasing = true;
    }

    /// Release: what to do next.
    pub fn poll_release(&mut self, now: Now) -> ReleaseStep {
        self.releasing = true;
        if let Some(r) = &self.release_result {
            return Step::Done(r.clone());
        }
        if self.in_flight.is_some() {
            return Step::AwaitResponse;
        }
        match &self.lost {
            None | Some(LossReason::Expired { .. }) => {}
            Some(reason) => {
                let r = Err(ReleaseError::AlreadyLost(reason.clone()));
                self.release_result = Some(r.clone());
                return Step::Done(r);
            }
        }
        if now.mono < self.release_next {
            return Step::Sleep(self.release_next);
        }
        self.release_attempts += 1;
        self.in_flight = Some(Flight::Release);
        let versions = self.versions();
        Step::Send(if self.keep_item {
            let rvn = self.rng.uuid();
            // Its outcome may be unknown too: a retry must accept it as ours.
            self.uncertain.push(rvn.clone());
            Request::Update(self.layout.release_keeping(
                &versions,
                &self.record.owner,
                &rvn,
                now.wall,
            ))
        } else {
            Request::Delete(self.layout.release(&versions, &self.record.owner))
        })
    }

    fn handle_release(&mut self, now: Now, outcome: Outcome) {
        let result = match outcome {
            Ok(Response::Delete(_) | Response::Update(_)) => Ok(ReleaseOutcome::Released),
            Err(dynamodb::Error::ConditionalCheckFailed { item: None }) => {
                if self.release_ambiguous {
                    // An earlier attempt of ours deleted it.
                    Ok(ReleaseOutcome::Released)
                } else {
                    Ok(ReleaseOutcome::AlreadyGone)
                }
            }
            Err(dynamodb::Error::ConditionalCheckFailed { item: Some(item) }) => {
                let reason = self.loss_from(Some(item));
                let holder = match &reason {
                    LossReason::Stolen { by } => by.clone(),
                    _ => None,
                };
                self.lost = Some(reason);
                Err(ReleaseError::NotOwner { holder })
            }
            Err(e) if e.is_retryable() => {
                self.release_ambiguous |= e.is_ambiguous();
                // Retry while the item may still block others; then the lease frees it anyway.
                let give_up =
                    now.mono >= self.lease_start + self.record.lease || self.release_attempts >= 8;
                if !give_up {
                    self.release_next = now.mono + self.backoff.next(&mut self.rng);
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
        if result.is_ok() {
            self.lost = Some(LossReason::Released);
        }
        self.release_result = Some(result);
    }
}
