//! The lock core: synchronous state machines that do no I/O and read no clock.
//!
//! Each machine is driven the same way: call `poll(now)`; it answers with a request to send,
//! a deadline to sleep until, or its result. Feed every response back with `handle(now, ..)`.
//!
//! ```text
//!            poll(now)                         handle(now, response)
//!   host ───────────────▶ Acquire / Held ◀──────────────────────── host
//!            ◀─ Send(Request) | Sleep(deadline) | Done(result)
//! ```
//!
//! [`Acquire`] takes a lock: one conditional write when it is free, cheap reads while another
//! holder is alive, a takeover only by the rules in its docs. [`Held`] keeps a lock: renewals,
//! loss detection, release.

mod acquire;
mod held;
mod record;
mod rng;

use std::time::Duration;

pub use acquire::{Acquire, AcquireError, Acquired, Busy, Observation};
pub use held::{Held, HeldStep, LossReason, ReleaseError, ReleaseOutcome, ReleaseStep};
pub use record::{Layout, LockKey, LockRecord, RecordError, fence_base};
pub use rng::Rng;

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

/// What a machine wants next.
#[derive(Debug, PartialEq)]
#[must_use]
pub enum Step<T> {
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
