//! One lock from its first request to its end: [`LockMachine`].

use std::collections::VecDeque;
use std::time::Duration;

use super::acquire::{Acquire, AcquireError, Observation, Start};
use super::held::{Held, LockEvent, ReleaseError, ReleaseOutcome, Want};
use super::record::{Layout, LockRecord};
use super::{Outcome, Request, Rng, Step};
use crate::dynamodb::{self, TransportError, transact_write_items::TransactItem};
use crate::options::LockOptions;
use crate::time::{Instant, Now};

/// Names one request of one machine. Feed the request's outcome back with this id.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub(crate) u64);

/// What a [`LockMachine`] wants next.
#[derive(Debug, PartialEq)]
#[must_use]
pub enum Output {
    /// Send `request`; feed its outcome to [`LockMachine::handle`] with `id`. Without an
    /// outcome by `deadline`, the machine counts it as unknown (it may have applied) and any
    /// later answer is ignored: the host's timeout should be this deadline.
    Send {
        /// The request's id.
        id: RequestId,
        /// What to send.
        request: Request,
        /// When it times out.
        deadline: Instant,
    },
    /// Nothing to send before this monotonic instant: poll again then, or after any input.
    Wait(Instant),
    /// The lock entered another phase (the acquisition ended: held, or releasing what it
    /// may have left, or ended). Poll again; a caller waiting for the acquisition has it.
    PhaseChanged(Phase),
    /// Nothing to do until an input (a command, an answer). No request is in flight.
    Idle,
    /// The machine is finished: nothing will ever be sent again.
    Ended,
}

/// Where a lock is in its life.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Taking the lock.
    Acquiring,
    /// Held (or lost while its handle lives): renewals, loss detection.
    Held,
    /// Releasing: deleting (or marking released) our item. Also what an acquisition that did
    /// not finish does with whatever it may have written.
    Releasing,
    /// Finished.
    Ended,
}

/// A lock's state as its holder sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// Not acquired yet.
    Acquiring,
    /// Held for at least `remaining` (conservative: counted from before the last confirmed
    /// write was sent, minus the safety margin, by both clocks).
    Held {
        /// Time left.
        remaining: Duration,
        /// Set while renewals fail (DynamoDB unreachable or throttled): not a loss yet.
        renewal_error: Option<dynamodb::Error>,
    },
    /// Lost, and why (`Released` once a release succeeded).
    Lost(super::LossReason),
    /// A release is under way (the lock no longer counts as held).
    Releasing,
    /// The acquisition did not succeed, or the machine was abandoned.
    Ended,
}

/// The answer of [`LockMachine::handle`] when the outcome was taken.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Handled {
    /// The outcome was used.
    Used,
    /// The machine had already stopped waiting for it (timed out, cancelled): ignored.
    Late,
}

/// An outcome for a request that is not in flight: never sent, or answered before. A bug
/// in the driver; the machine ignores it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct NotInFlight(pub RequestId);

impl std::fmt::Display for NotInFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "an answer for request {:?}, which is not in flight",
            self.0
        )
    }
}

impl std::error::Error for NotInFlight {}

/// Late answers remembered as late (older ids count as not in flight).
const MAX_EXPIRED: usize = 64;
/// Events kept for watchers that fall behind.
const MAX_EVENTS: usize = 16;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Part {
    Acquire,
    Renew,
    Release,
}

#[derive(Debug)]
struct Flight {
    id: RequestId,
    part: Part,
    deadline: Instant,
}

#[derive(Debug)]
enum State {
    Acquiring(Box<Acquire>),
    Held(Box<Held>),
    Ended,
}

/// One lock, from its first request to its end: acquiring, held, releasing, ended.
///
/// ```text
///            ┌──────────── give up / cancel (nothing may have applied) ─────────────┐
///            │                                                                      ▼
///   new ─▶ Acquiring ──acquired──▶ Held ──release()──▶ Releasing ──result──▶    Ended
///            │                      │  ▲ renew / lost       ▲                       ▲
///            │                      └──┘                    │                       │
///            └── give up / cancel with a write that may ────┘       abandon() ──────┘
///                have applied: release it
/// ```
///
/// It does no I/O and reads no clock. Drive it like this (the crate's async client does
/// exactly this, from any number of tasks sharing the machine):
///
/// ```
/// # use ddb_lock::core::{LockMachine, Output, Request, Outcome};
/// # use ddb_lock::time::Now;
/// # fn now() -> Now { Now::new(ddb_lock::time::Instant::ZERO, ddb_lock::time::WallTime::UNIX_EPOCH) }
/// # fn send(_: Request) -> Outcome { Err(ddb_lock::dynamodb::Error::Transport(ddb_lock::dynamodb::TransportError::timeout())) }
/// # fn sleep_until(_: ddb_lock::time::Instant) {}
/// # fn wait_for_input() {}
/// fn run(machine: &mut LockMachine) {
///     loop {
///         match machine.poll(now()) {
///             Output::Send { id, request, deadline: _ } => {
///                 let outcome = send(request); // bounded by the deadline
///                 let _ = machine.handle(now(), id, outcome);
///             }
///             Output::Wait(deadline) => sleep_until(deadline), // or an earlier input
///             Output::PhaseChanged(_) => {} // e.g. acquired: tell whoever waits for it
///             Output::Idle => wait_for_input(),
///             Output::Ended => return,
///         }
///     }
/// }
/// ```
///
/// Inputs besides answers: [`release`](Self::release) (also cancels an acquisition: what it
/// may have written is released), [`abandon`](Self::abandon), and a request whose sender
/// gave up, fed back as an unknown outcome (see [`handle`](Self::handle)).
#[derive(Debug)]
pub struct LockMachine {
    layout: Layout,
    owner: String,
    opts: LockOptions,
    request_timeout: Duration,
    state: State,
    acquisition: Option<Result<LockRecord, AcquireError>>,
    /// What the acquisition learnt, kept for the client's memory of the key.
    observation: Option<Observation>,
    contended: bool,
    versions_sent: Vec<String>,
    /// A cleanup of what an unfinished acquisition may have left (not a lock of anyone's).
    leftover: bool,
    abandoned: bool,
    release_result: Option<Result<ReleaseOutcome, ReleaseError>>,
    in_flight: Vec<Flight>,
    expired: VecDeque<RequestId>,
    next_id: u64,
    events: VecDeque<(u64, LockEvent)>,
    event_seq: u64,
    rng: Rng,
}

impl LockMachine {
    /// A machine that starts acquiring the lock at `layout` for `owner` at `now`. `options`
    /// must be valid ([`LockOptions::validate`]); `request_timeout` bounds every request
    /// (renewals also by half the validity left).
    pub fn new(
        layout: Layout,
        owner: String,
        options: LockOptions,
        start: Start,
        request_timeout: Duration,
        mut rng: Rng,
        now: Now,
    ) -> Self {
        let acquire_rng = Rng::seeded(rng.next_u64());
        let acquire = Acquire::new(
            layout.clone(),
            owner.clone(),
            options.clone(),
            start,
            acquire_rng,
            now,
        );
        LockMachine {
            layout,
            owner,
            opts: options,
            request_timeout: request_timeout.max(Duration::from_millis(1)),
            state: State::Acquiring(Box::new(acquire)),
            acquisition: None,
            observation: None,
            contended: false,
            versions_sent: Vec::new(),
            leftover: false,
            abandoned: false,
            release_result: None,
            in_flight: Vec::new(),
            expired: VecDeque::new(),
            next_id: 0,
            events: VecDeque::new(),
            event_seq: 0,
            rng,
        }
    }

    // --- getters ----------------------------------------------------------------------

    /// The lock's table layout and key.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The lock's options.
    pub fn options(&self) -> &LockOptions {
        &self.opts
    }

    /// Where the lock is in its life.
    pub fn phase(&self) -> Phase {
        match &self.state {
            State::Acquiring(_) => Phase::Acquiring,
            State::Held(h) if h.releasing() => Phase::Releasing,
            State::Held(_) => Phase::Held,
            State::Ended => Phase::Ended,
        }
    }

    /// How the acquisition ended, once it has: our record, or why not.
    pub fn acquisition(&self) -> Option<&Result<LockRecord, AcquireError>> {
        self.acquisition.as_ref()
    }

    /// How the release ended, once it has (also for a machine cleaning up after an
    /// acquisition that did not finish).
    pub fn release_outcome(&self) -> Option<&Result<ReleaseOutcome, ReleaseError>> {
        match &self.state {
            State::Held(h) => h.release_result(),
            _ => self.release_result.as_ref(),
        }
    }

    /// Whether this machine only cleans up after an acquisition that did not finish.
    pub fn is_leftover(&self) -> bool {
        self.leftover
    }

    /// The lock's state at `now`.
    pub fn status(&self, now: Now) -> Status {
        match &self.state {
            State::Acquiring(_) => Status::Acquiring,
            State::Held(_) if self.leftover => Status::Ended,
            State::Held(h) => match h.lost(now) {
                Some(reason) => Status::Lost(reason),
                None if h.releasing() => Status::Releasing,
                None => Status::Held {
                    remaining: h.remaining(now),
                    renewal_error: h.renewal_error().cloned(),
                },
            },
            State::Ended if self.leftover || self.abandoned => Status::Ended,
            State::Ended => match &self.release_result {
                Some(Err(ReleaseError::NotOwner { holder })) => {
                    Status::Lost(super::LossReason::Stolen { by: holder.clone() })
                }
                Some(Err(ReleaseError::AlreadyLost(reason))) => Status::Lost(reason.clone()),
                // Released, or unconfirmed: either way no longer ours.
                Some(_) => Status::Lost(super::LossReason::Released),
                None => Status::Ended,
            },
        }
    }

    /// Our record as last confirmed, once acquired.
    pub fn record(&self) -> Option<&LockRecord> {
        match &self.state {
            State::Held(h) if !self.leftover => Some(h.record()),
            _ => self.acquisition.as_ref().and_then(|a| a.as_ref().ok()),
        }
    }

    /// Until when (monotonic) the lock counts as held if nothing changes; `None` unless held.
    pub fn valid_until(&self, now: Now) -> Option<Instant> {
        match self.status(now) {
            Status::Held { remaining, .. } => Some(now.mono + remaining),
            _ => None,
        }
    }

    /// A transaction action that holds only while the lock is ours; `None` unless held.
    pub fn still_held(&self, now: Now) -> Option<TransactItem> {
        match &self.state {
            State::Held(h) if !self.leftover => h.still_held(now),
            _ => None,
        }
    }

    /// What the acquisition observed of another holder (to continue the watch later).
    pub fn observation(&self) -> Option<&Observation> {
        match &self.state {
            State::Acquiring(a) => a.observation(),
            _ => self.observation.as_ref(),
        }
    }

    /// Whether the acquisition met another holder.
    pub fn contended(&self) -> bool {
        match &self.state {
            State::Acquiring(a) => a.contended(),
            _ => self.contended,
        }
    }

    /// The versions the acquisition wrote: any of them may be on the item unless the
    /// acquisition succeeded.
    pub fn versions_sent(&self) -> Vec<String> {
        match &self.state {
            State::Acquiring(a) => a.versions_sent().map(str::to_owned).collect(),
            _ => self.versions_sent.clone(),
        }
    }

    /// Events after sequence number `after` (0 for all kept), with their numbers. A watcher
    /// that falls more than a few events behind misses the oldest; `Lost` is always the last.
    pub fn events_after(&self, after: u64) -> impl Iterator<Item = &(u64, LockEvent)> {
        self.events.iter().filter(move |(n, _)| *n > after)
    }

    /// The sequence number of the newest event (0 before any).
    pub fn event_seq(&self) -> u64 {
        self.event_seq
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    // --- commands ---------------------------------------------------------------------

    /// Releases the lock; on an acquisition that has not finished, cancels it (its result is
    /// [`AcquireError::Cancelled`]) and releases whatever it may have written.
    pub fn release(&mut self, now: Now) {
        match &mut self.state {
            State::Acquiring(a) => {
                a.cancel();
                self.drop_flights(Part::Acquire);
                self.finish_acquire(now);
            }
            State::Held(h) => h.begin_release(now),
            State::Ended => {}
        }
        self.drain_events();
    }

    /// Stops everything without releasing: the item stays and expires with its lease, as if
    /// this process had crashed. Answers still in flight are ignored.
    pub fn abandon(&mut self, now: Now) {
        match &mut self.state {
            State::Acquiring(_) => self.release(now),
            State::Held(h) if !h.releasing() => {
                self.abandoned = true;
                self.state = State::Ended;
            }
            _ => {}
        }
    }

    /// Whether the lock was abandoned.
    pub fn abandoned(&self) -> bool {
        self.abandoned
    }

    // --- inputs -----------------------------------------------------------------------

    /// Feeds the outcome of request `id`. A sender that gives up on a request (its future
    /// was dropped) feeds a transport error: the outcome is unknown and may have applied.
    pub fn handle(
        &mut self,
        now: Now,
        id: RequestId,
        outcome: Outcome,
    ) -> Result<Handled, NotInFlight> {
        let Some(i) = self.in_flight.iter().position(|f| f.id == id) else {
            return match self.expired.iter().position(|e| *e == id) {
                Some(i) => {
                    self.expired.remove(i);
                    Ok(Handled::Late)
                }
                None => Err(NotInFlight(id)),
            };
        };
        let flight = self.in_flight.remove(i);
        self.route(now, flight.part, outcome);
        Ok(Handled::Used)
    }

    fn route(&mut self, now: Now, part: Part, outcome: Outcome) {
        match (&mut self.state, part) {
            (State::Acquiring(a), Part::Acquire) => a.handle(now, outcome),
            (State::Held(h), Part::Renew) => h.handle_renew(now, outcome),
            (State::Held(h), Part::Release) => h.handle_release(now, outcome),
            // The machine moved on (abandoned, ended): nothing waits for this answer.
            _ => {}
        }
        self.drain_events();
    }

    /// Expires requests whose deadline passed: their outcome is unknown.
    fn expire(&mut self, now: Now) {
        while let Some(i) = self.in_flight.iter().position(|f| f.deadline <= now.mono) {
            let flight = self.in_flight.remove(i);
            self.remember_expired(flight.id);
            self.route(
                now,
                flight.part,
                Err(dynamodb::Error::Transport(TransportError::timeout())),
            );
        }
    }

    fn remember_expired(&mut self, id: RequestId) {
        if self.expired.len() == MAX_EXPIRED {
            self.expired.pop_front();
        }
        self.expired.push_back(id);
    }

    fn drop_flights(&mut self, part: Part) {
        let (gone, kept): (Vec<_>, Vec<_>) = self.in_flight.drain(..).partition(|f| f.part == part);
        self.in_flight = kept;
        for f in gone {
            self.remember_expired(f.id);
        }
    }

    fn drain_events(&mut self) {
        if let State::Held(h) = &mut self.state {
            for e in h.take_events() {
                self.event_seq += 1;
                if self.events.len() == MAX_EVENTS {
                    // Keep the newest; a slow watcher skips ahead.
                    self.events.pop_front();
                }
                self.events.push_back((self.event_seq, e));
            }
        }
    }

    // --- the run loop -----------------------------------------------------------------

    /// What to do next. Call it again after every input and at every deadline it names; it
    /// never names a deadline that is not after `now`.
    pub fn poll(&mut self, now: Now) -> Output {
        self.expire(now);
        loop {
            let out = match &mut self.state {
                State::Ended => return Output::Ended,
                State::Acquiring(a) => {
                    if a.in_flight() {
                        return self.wait(None);
                    }
                    match a.poll(now) {
                        Step::Send(request) => {
                            return self.send(now, Part::Acquire, request, self.request_timeout);
                        }
                        Step::Sleep(d) => return self.wait(Some(d)),
                        Step::AwaitResponse => return self.wait(None),
                        Step::Done(_) => {
                            self.finish_acquire(now);
                            return Output::PhaseChanged(self.phase());
                        }
                    }
                }
                State::Held(h) => {
                    let release = h.poll_release(now);
                    if let Want::Send(request) = release {
                        return self.send(now, Part::Release, request, self.request_timeout);
                    }
                    if let Some(result) = h.release_result() {
                        self.release_result = Some(result.clone());
                        self.state = State::Ended;
                        continue;
                    }
                    let renew = h.poll_renew(now);
                    self.drain_events();
                    match renew {
                        Want::Send(request) => {
                            let timeout = match &self.state {
                                State::Held(h) => h.renewal_timeout(now, self.request_timeout),
                                _ => self.request_timeout,
                            };
                            return self.send(now, Part::Renew, request, timeout);
                        }
                        other => (release, other),
                    }
                }
            };
            let deadline = match out {
                (Want::Sleep(a), Want::Sleep(b)) => Some(a.min(b)),
                (Want::Sleep(a), _) | (_, Want::Sleep(a)) => Some(a),
                _ => None,
            };
            return self.wait(deadline);
        }
    }

    /// Waits for `deadline` or the earliest in-flight deadline; idle when there is neither.
    fn wait(&self, deadline: Option<Instant>) -> Output {
        let flights = self.in_flight.iter().map(|f| f.deadline).min();
        match (deadline, flights) {
            (Some(a), Some(b)) => Output::Wait(a.min(b)),
            (Some(a), None) | (None, Some(a)) => Output::Wait(a),
            (None, None) => Output::Idle,
        }
    }

    fn send(&mut self, now: Now, part: Part, request: Request, timeout: Duration) -> Output {
        self.next_id += 1;
        let id = RequestId(self.next_id);
        let deadline = now.mono + timeout.max(Duration::from_nanos(1));
        self.in_flight.push(Flight { id, part, deadline });
        Output::Send {
            id,
            request,
            deadline,
        }
    }

    /// The acquisition ended: held, or ended; or, if a write of ours may have applied
    /// unseen, releasing whatever it left.
    fn finish_acquire(&mut self, now: Now) {
        let State::Acquiring(a) = &mut self.state else {
            return;
        };
        let Step::Done(result) = a.poll(now) else {
            return;
        };
        self.observation = a.observation().cloned();
        self.contended = a.contended();
        self.versions_sent = a.versions_sent().map(str::to_owned).collect();
        let unreconciled = a.unreconciled();
        let first_write = a.first_write();
        // A cleanup also deletes an item an earlier unfinished acquisition of ours left.
        let cleanup: Vec<String> = a
            .own_versions()
            .iter()
            .cloned()
            .chain(self.versions_sent.iter().cloned())
            .collect();
        let rng = Rng::seeded(self.rng.next_u64());
        match result {
            Ok(acquired) => {
                self.acquisition = Some(Ok(acquired.record.clone()));
                self.state = State::Held(Box::new(Held::new(
                    self.layout.clone(),
                    acquired,
                    &self.opts,
                    rng,
                )));
            }
            Err(e) => {
                self.acquisition = Some(Err(e));
                match first_write {
                    Some(sent) if unreconciled => {
                        self.leftover = true;
                        self.state = State::Held(Box::new(Held::leftover(
                            self.layout.clone(),
                            self.owner.clone(),
                            cleanup,
                            sent,
                            &self.opts,
                            rng,
                            now,
                        )));
                    }
                    _ => self.state = State::Ended,
                }
            }
        }
    }
}
