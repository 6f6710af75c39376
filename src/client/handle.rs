//! The public handles: [`Lock`], [`TryLock`], [`LockStatus`], [`Events`], and their errors.

use std::fmt;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::select;

use super::LockClient;
use super::driver::{Shared, ensure_background};
use crate::core::{Busy, LockEvent, LockKey, LockRecord, LossReason, Phase, Status, holder_name};
use crate::dynamodb::{self, transact_write_items::TransactItem};
use crate::host::Host;
use crate::options::InvalidInput;
use crate::time::Now;

/// The answer of [`LockClient::try_lock`].
pub enum TryLock<H: Host> {
    /// The lock is ours.
    Acquired(Lock<H>),
    /// Someone else holds it: who, and when to come back.
    Held(Box<Busy>),
}

/// Why [`Lock::write_if_held`] wrote nothing.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum GuardedWriteError {
    /// The lock is not ours (any more): nothing was written.
    NotHeld {
        /// The current holder, when DynamoDB returned its item.
        holder: Option<LockRecord>,
    },
    /// One of the caller's actions failed its condition (or conflicted); nothing was written.
    Canceled {
        /// One reason per action, the lock check first.
        reasons: Vec<dynamodb::CancellationReason>,
        /// DynamoDB's message.
        message: String,
    },
    /// Invalid actions; nothing was sent.
    InvalidInput(InvalidInput),
    /// DynamoDB refused or could not be reached (the outcome may be unknown for transport
    /// errors and 5xx).
    Dynamo(dynamodb::Error),
}

impl fmt::Display for GuardedWriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardedWriteError::NotHeld { holder: None } => {
                f.write_str("the lock is not held; nothing written")
            }
            GuardedWriteError::NotHeld { holder } => write!(
                f,
                "the lock is held by {}; nothing written",
                holder_name(holder.as_ref())
            ),
            GuardedWriteError::Canceled { message, .. } => {
                write!(f, "transaction cancelled: {message}")
            }
            GuardedWriteError::InvalidInput(e) => e.fmt(f),
            GuardedWriteError::Dynamo(e) => write!(f, "DynamoDB: {e}"),
        }
    }
}

impl std::error::Error for GuardedWriteError {}

/// Why [`LockClient::with_lock`] returned no value.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum WithLockError {
    /// The lock was not acquired.
    Acquire(crate::AcquireError),
    /// The lock was lost before the body finished (the body was stopped), or the release
    /// after it found the lock taken.
    Lost(LossReason),
}

impl fmt::Display for WithLockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WithLockError::Acquire(e) => e.fmt(f),
            WithLockError::Lost(r) => write!(f, "lock lost while the body ran: {r}"),
        }
    }
}

impl std::error::Error for WithLockError {}

/// Whether a lock is still held.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum LockStatus {
    /// Held for at least `remaining` (conservative: counted from before the last confirmed
    /// write was sent, minus the safety margin, by the monotonic clock and the wall clock).
    Held {
        /// Time left.
        remaining: Duration,
        /// Set while renewals fail (DynamoDB unreachable or throttled): not a loss yet.
        renewal_error: Option<dynamodb::Error>,
    },
    /// A release is under way: the lock no longer counts as held.
    Releasing,
    /// Lost, and why (`Released` after a release).
    Lost(LossReason),
}

/// A held lock. Renewed in the background while prolonging is on; release it with
/// [`release`](Self::release) or [`LockClient::release_all`].
///
/// Dropping a `Lock` releases it in the background (best effort, a task spawned through the
/// host: the item is deleted if it still carries our version, retried while the lease could
/// block others). [`abandon`](Self::abandon) instead leaves the item to expire with its lease,
/// as if this process had crashed.
pub struct Lock<H: Host> {
    shared: Arc<Shared>,
    client: LockClient<H>,
}

impl<H: Host> fmt::Debug for Lock<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("key", &self.shared.key)
            .field("record", &self.record())
            .finish()
    }
}

impl<H: Host> Drop for Lock<H> {
    fn drop(&mut self) {
        let now = self.client.host().now();
        let phase = self.shared.command(|m| {
            if m.phase() == Phase::Held {
                m.release(now);
            }
            m.phase()
        });
        if phase == Phase::Ended {
            self.client.forget(&self.shared);
        } else {
            ensure_background(&self.client, &self.shared);
        }
    }
}

impl<H: Host> Lock<H> {
    pub(crate) fn new(shared: Arc<Shared>, client: LockClient<H>) -> Self {
        Lock { shared, client }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    fn now(&self) -> Now {
        self.client.host().now()
    }

    /// The lock's group and id.
    pub fn key(&self) -> &LockKey {
        &self.shared.key
    }

    /// Our record as last confirmed (owner, current record version, lease, ...).
    pub fn record(&self) -> LockRecord {
        let m = self.shared.machine();
        m.record()
            .cloned()
            .expect("a Lock exists only for an acquired machine")
    }

    /// This acquisition's fencing token: strictly greater than every earlier acquisition's
    /// token of the same key (see [`fence_base`](crate::core::fence_base) for the mechanism and
    /// the conditions it relies on). Pass it to the resource you protect and have it reject
    /// tokens lower than the highest it has seen. `None` only if the item was written by a
    /// client that keeps no token and its answer was lost (never for our own writes).
    pub fn fencing_token(&self) -> Option<u64> {
        self.shared.machine().record().and_then(|r| r.fence)
    }

    /// Stops renewing and forgets the lock without releasing it: the item stays in DynamoDB
    /// and expires with its lease, as if this process had crashed.
    pub fn abandon(self) {
        let now = self.now();
        self.shared.command(|m| m.abandon(now));
        // (Drop sees the machine ended and forgets it.)
    }

    /// Applies `actions` (puts, updates, deletes, checks on any tables) in one DynamoDB
    /// transaction that also checks this lock is still ours: all happen only if the lock item
    /// still carries our owner and one of our versions. A transaction cancelled by a
    /// conflicting one (`TransactionConflict`) is retried twice, with a fresh check.
    ///
    /// Cancellation: dropped before it returns, the transaction may or may not have been
    /// applied (it is all or nothing); the lock is not affected.
    ///
    /// ```no_run
    /// # async fn f(lock: ddb_lock::Lock<ddb_lock::rt::TokioHost>) -> Result<(), Box<dyn std::error::Error>> {
    /// use ddb_lock::dynamodb::{AttributeValue, transact_write_items::{TransactItem, TransactTarget}};
    /// let put = TransactItem::Put(TransactTarget {
    ///     table_name: "reports".into(),
    ///     item: [("id".to_owned(), AttributeValue::s("nightly")),
    ///            ("state".to_owned(), AttributeValue::s("done"))].into(),
    ///     ..Default::default()
    /// });
    /// lock.write_if_held(vec![put]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn write_if_held(&self, actions: Vec<TransactItem>) -> Result<(), GuardedWriteError> {
        if actions.is_empty() || actions.len() > 99 {
            return Err(GuardedWriteError::InvalidInput(InvalidInput::new(
                "actions",
                "must be 1 to 99 actions (DynamoDB allows 100 with the lock check)",
            )));
        }
        let host = self.client.host();
        let mut pause = Duration::from_millis(20);
        let mut tries = 0;
        loop {
            tries += 1;
            let check = self.shared.machine().still_held(host.now());
            let Some(check) = check else {
                return Err(GuardedWriteError::NotHeld { holder: None });
            };
            let mut transact_items = Vec::with_capacity(actions.len() + 1);
            transact_items.push(check);
            transact_items.extend(actions.iter().cloned());
            let op = dynamodb::TransactWriteItems {
                transact_items,
                client_request_token: None,
                return_consumed_capacity: Some("TOTAL"),
            };
            let err = match self.client.call(&op).await {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let conflict = match &err {
                dynamodb::Error::TransactionConflict { .. } => true,
                dynamodb::Error::TransactionCanceled { reasons, .. } => {
                    let code =
                        |r: &dynamodb::CancellationReason| r.code.clone().unwrap_or_default();
                    reasons.iter().any(|r| code(r) == "TransactionConflict")
                        && !reasons.iter().any(|r| code(r) == "ConditionalCheckFailed")
                }
                _ => false,
            };
            if conflict && tries < 3 {
                host.sleep_until(host.now().mono + pause).await;
                pause *= 2;
                continue;
            }
            return Err(match err {
                dynamodb::Error::TransactionCanceled { reasons, message } => {
                    let lock_failed = reasons
                        .first()
                        .and_then(|r| r.code.as_deref())
                        .is_some_and(|c| c == "ConditionalCheckFailed");
                    if lock_failed {
                        let holder = reasons[0]
                            .item
                            .as_ref()
                            .and_then(|i| LockRecord::from_item(i).ok());
                        GuardedWriteError::NotHeld { holder }
                    } else {
                        GuardedWriteError::Canceled { reasons, message }
                    }
                }
                e => GuardedWriteError::Dynamo(e),
            });
        }
    }

    /// Whether the lock is still ours by the conservative clock (see [`status`](Self::status)).
    pub fn is_held(&self) -> bool {
        matches!(self.status(), LockStatus::Held { .. })
    }

    /// Held (with time left and any renewal trouble), being released, or lost (with the
    /// reason).
    pub fn status(&self) -> LockStatus {
        let now = self.now();
        match self.shared.machine().status(now) {
            Status::Held {
                remaining,
                renewal_error,
            } => LockStatus::Held {
                remaining,
                renewal_error,
            },
            Status::Releasing => LockStatus::Releasing,
            Status::Lost(reason) => LockStatus::Lost(reason),
            Status::Acquiring | Status::Ended => LockStatus::Lost(LossReason::Released),
        }
    }

    /// Time left before the lock stops counting as held; zero when lost.
    pub fn remaining(&self) -> Duration {
        match self.status() {
            LockStatus::Held { remaining, .. } => remaining,
            _ => Duration::ZERO,
        }
    }

    /// Completes when the lock is lost, with the reason (stolen, deleted, expired, released).
    /// It waits at most until the lock's validity ends, as often as renewals extend it.
    ///
    /// Cancellation: nothing is left behind.
    ///
    /// ```no_run
    /// # async fn f(lock: ddb_lock::Lock<ddb_lock::rt::TokioHost>) {
    /// let reason = lock.lost().await;
    /// eprintln!("lock lost: {reason}");
    /// # }
    /// ```
    pub async fn lost(&self) -> LossReason {
        loop {
            match self.wait_change(Duration::ZERO).await {
                LockStatus::Lost(reason) => return reason,
                LockStatus::Releasing => {}
                LockStatus::Held { .. } => {}
            }
        }
    }

    /// Completes `warning` before the lock would stop counting as held (e.g. while renewals
    /// fail), or when it is lost: returns the time left then (zero if lost).
    ///
    /// Cancellation: nothing is left behind.
    pub async fn expiring(&self, warning: Duration) -> Duration {
        loop {
            match self.wait_change(warning).await {
                LockStatus::Held { remaining, .. } if remaining <= warning => return remaining,
                LockStatus::Held { .. } | LockStatus::Releasing => {}
                LockStatus::Lost(_) => return Duration::ZERO,
            }
        }
    }

    /// Waits for a change of the machine or until `warning` before the validity ends,
    /// whichever comes first; returns the status then. Observes only: never sends.
    async fn wait_change(&self, warning: Duration) -> LockStatus {
        let host = self.client.host();
        let changed = self.shared.signal.changed();
        let now = self.now();
        let until = self.shared.machine().valid_until(now);
        let status = self.status();
        let Some(until) = until else {
            if matches!(status, LockStatus::Releasing) {
                // The release names its own deadlines: wake on its result, or poll again
                // after a short bounded pause.
                let pause = pin!(host.sleep_until(now.mono + Duration::from_millis(50)));
                select(pause, changed).await;
                return self.status();
            }
            return status;
        };
        if let LockStatus::Held { remaining, .. } = &status
            && *remaining <= warning
        {
            return status;
        }
        let sleep = pin!(host.sleep_until(until.saturating_sub(warning)));
        select(sleep, changed).await;
        self.status()
    }

    /// The lock's status changes from now on, as they happen: renewed, renewal failing,
    /// recovered, lost.
    ///
    /// ```no_run
    /// # async fn f(lock: ddb_lock::Lock<ddb_lock::rt::TokioHost>) {
    /// let mut events = lock.events();
    /// loop {
    ///     match events.next().await {
    ///         ddb_lock::LockEvent::Lost(reason) => { eprintln!("lost: {reason}"); break; }
    ///         other => eprintln!("{other:?}"),
    ///     }
    /// }
    /// # }
    /// ```
    pub fn events(&self) -> Events<'_, H> {
        Events {
            lock: self,
            seen: self.shared.machine().event_seq(),
        }
    }

    /// Releases the lock: deletes its item (or, with `keep_item_on_release`, marks it
    /// released) if it still carries one of our versions. Retried with backoff while the
    /// item could still block others, so it may take up to the lease when DynamoDB fails;
    /// a release asked for after the lock was lost answers
    /// [`AlreadyLost`](crate::ReleaseError::AlreadyLost). Calling it again returns the same
    /// result.
    ///
    /// Cancellation: dropped before it returns, the release goes on in the background; a
    /// later call completes with its result.
    pub async fn release(&self) -> Result<crate::ReleaseOutcome, crate::ReleaseError> {
        self.client.release_shared(&self.shared).await
    }
}

/// A lock's status changes, from [`Lock::events`].
pub struct Events<'a, H: Host> {
    lock: &'a Lock<H>,
    seen: u64,
}

impl<H: Host> Events<'_, H> {
    /// The next change. A watcher that falls more than a few events behind skips the oldest;
    /// once the lock is lost, every call answers `Lost` at once. Waits at most until the
    /// lock's validity ends, as often as renewals extend it.
    ///
    /// Cancellation: nothing is left behind; the next call continues where this one was.
    pub async fn next(&mut self) -> LockEvent {
        loop {
            {
                let m = self.lock.shared.machine();
                if let Some((n, e)) = m.events_after(self.seen).next() {
                    self.seen = *n;
                    return e.clone();
                }
            }
            if let LockStatus::Lost(reason) = self.lock.status() {
                return LockEvent::Lost(reason);
            }
            self.lock.wait_change(Duration::ZERO).await;
        }
    }
}
