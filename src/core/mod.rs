//! The lock core: a synchronous state machine per lock that does no I/O and reads no clock.
//!
//! A [`LockMachine`] owns one lock from its first request to its end. Call `poll(now)`; it
//! answers with a request to send (with an id and a deadline), a deadline to wait for, or
//! that it is idle or ended. Feed every outcome back with `handle(now, id, outcome)`, and
//! commands (`release`, `abandon`) as they come:
//!
//! ```text
//!            poll(now)                               handle(now, id, outcome)
//!   host ──────────────▶       LockMachine       ◀──────────────────────── host
//!        ◀─ Send{id, request, deadline} | Wait(deadline) | Idle | Ended
//!                        ▲ release(now) / abandon(now)
//! ```
//!
//! Taking a lock costs one conditional write when it is free, cheap reads while another
//! holder is alive, and a takeover only by the rules of [`Start`]'s acquisition (see
//! `acquire.rs`); keeping it, renewals and loss detection; releasing it, one conditional
//! delete.

mod acquire;
mod held;
mod machine;
mod record;
mod rng;

use std::time::Duration;

pub use acquire::{AcquireError, Busy, Observation, Start, TRY_ATTEMPTS};
pub use held::{LockEvent, LossReason, ReleaseError, ReleaseOutcome};
pub use machine::{Handled, LockMachine, NotInFlight, Output, Phase, RequestId, Status};
pub use record::{Layout, LockKey, LockRecord, RecordError, fence_base};
pub use rng::Rng;

pub(crate) use acquire::holder_name;

#[cfg(test)]
mod virtual_time;

use crate::dynamodb::{
    self, DeleteItem, GetItem, PutItem, UpdateItem, delete_item::DeleteItemOutput,
    get_item::GetItemOutput, put_item::PutItemOutput, update_item::UpdateItemOutput,
};
use crate::time::Instant;

/// A request the core wants sent.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    /// `PutItem` (create a free lock).
    Put(PutItem),
    /// `UpdateItem` (take over, renew).
    Update(UpdateItem),
    /// `GetItem` (watch a held lock, reconcile an ambiguous write).
    Get(GetItem),
    /// `DeleteItem` (release).
    Delete(DeleteItem),
}

/// The answer to a [`Request`], of the same kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    /// `PutItem`'s answer.
    Put(PutItemOutput),
    /// `UpdateItem`'s answer.
    Update(UpdateItemOutput),
    /// `GetItem`'s answer.
    Get(GetItemOutput),
    /// `DeleteItem`'s answer.
    Delete(DeleteItemOutput),
}

/// What the acquisition wants next.
#[derive(Debug, PartialEq)]
#[must_use]
pub(crate) enum Step<T> {
    /// Send this request, then call `handle` with its outcome.
    Send(Request),
    /// Nothing to do before this monotonic deadline; call `poll` again then.
    Sleep(Instant),
    /// A request is in flight: call `handle` with its outcome first.
    AwaitResponse,
    /// Finished.
    Done(T),
}

/// The outcome of a request as the core sees it.
pub type Outcome = Result<Response, dynamodb::Error>;

/// Capped exponential backoff with full jitter, for throttling, 5xx and transport errors.
#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    failures: u32,
    base: Duration,
    cap: Duration,
}

impl Backoff {
    pub(crate) fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            failures: 0,
            base,
            cap: cap.max(base),
        }
    }

    /// The pause before the next retry: uniform in `[d/2, d]`, `d = min(cap, base * 2^n)`.
    /// Never zero, so a failing request never spins.
    pub(crate) fn next(&mut self, rng: &mut Rng) -> Duration {
        let exp = self.base.saturating_mul(1u32 << self.failures.min(16));
        self.failures = self.failures.saturating_add(1);
        let d = exp.min(self.cap).max(Duration::from_millis(1));
        let half = d / 2;
        let nanos = u64::try_from((d - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rng.below(nanos.saturating_add(1)))
    }

    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_never_zero() {
        let mut rng = Rng::seeded(3);
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(200));
        let pauses: Vec<_> = (0..10).map(|_| b.next(&mut rng)).collect();
        assert!(pauses[0] >= Duration::from_millis(5) && pauses[0] <= Duration::from_millis(10));
        assert!(
            pauses
                .iter()
                .all(|p| *p <= Duration::from_millis(200) && !p.is_zero())
        );
        assert!(pauses[9] >= Duration::from_millis(100));
        b.reset();
        assert!(b.next(&mut rng) <= Duration::from_millis(10));
        let mut z = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert!(!z.next(&mut rng).is_zero());
    }
}
