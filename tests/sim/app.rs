//! The applications: async tasks on the simulated host that use the shipped client's public
//! API as users do. Each locks one key over and over with `lock()` (timeouts, retry limits)
//! or a `try_lock` loop, works under the lock (fencing-token writes to the protected
//! resource, `write_if_held` transactions), and ends each hold by releasing, dropping or
//! abandoning the handle. Any call may be cut short: its future dropped before its first
//! poll, in flight, or after its request applied. At the end every client calls
//! `release_all`.
//!
//! What the world needs to see (holdings and beliefs, waiters, calls and their bounds,
//! resource writes, cuts) goes through [`AppShared`].

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use futures_util::future::{Either, select};

use ddb_lock::dynamodb::AttributeValue;
use ddb_lock::dynamodb::transact_write_items::{TransactItem, TransactTarget};
use ddb_lock::host::{Clock, Timer};
use ddb_lock::{
    AcquireError, GuardedWriteError, Lock, LockClient, LockOptions, LockStatus, ReleaseError,
    TryLock,
};

use super::host::{SimHost, SlotRef};
use super::rng::SimRng;
use super::scenario::{Cuts, WORK_BUDGET};

pub type SimLock = Lock<SimHost>;

/// The data table `write_if_held` writes to (one item per lock key).
pub const RESOURCE_TABLE: &str = "resource";
/// Its attribute naming the record version of the writer's acquisition.
pub const RESOURCE_BY: &str = "writtenBy";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A lock an application holds, as the world sees it.
pub struct Holding {
    pub lock: Weak<SimLock>,
    /// In its critical section: believes it holds the lock while `status()` says held.
    pub in_cs: bool,
}

/// What kind of call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    Lock,
    TryLock,
    Release,
    ReleaseAll,
    WriteIfHeld,
}

/// A call in progress.
pub struct Call {
    pub client: usize,
    pub kind: CallKind,
    /// True start (ns).
    pub start: u64,
    /// A bound on its duration on the caller's clock, if it has one.
    pub bound: Option<Duration>,
}

/// Something the world should know or check.
pub enum Note {
    /// `lock()`/`try_lock()` returned a lock with this record version and token.
    Acquired {
        client: usize,
        key: usize,
        rvn: String,
        fence: Option<u64>,
    },
    /// A call ended (the world checks its bound).
    CallEnded { call: u64, cut: bool },
    /// An acquisition call was cut short (dropped).
    AcquireCut { client: usize, key: usize },
    /// A lock() started (for the "a dropped acquisition never blocks its client" check).
    LockStarted {
        client: usize,
        key: usize,
        call: u64,
    },
    /// A lock() gave up (timeout or retry limit).
    GaveUp { client: usize, key: usize },
    /// `try_lock` answered busy.
    Busy,
    /// A lock was lost while held (seen by the application).
    Lost {
        client: usize,
        key: usize,
        why: &'static str,
    },
    /// How a hold ended.
    HoldEnded {
        client: usize,
        key: usize,
        how: &'static str,
    },
    /// A release's answer.
    Released { how: &'static str },
    /// A lock was abandoned (its item stays): record version.
    Abandoned { key: usize, rvn: String },
    /// A guarded write's answer.
    Guarded { ok: bool },
    /// The client answered something no caller should ever see.
    Unexpected(String),
}

/// A write to the protected resource (not DynamoDB): it lands after a delay.
pub struct ResOut {
    pub client: usize,
    pub key: usize,
    pub token: u64,
    /// The writer's record version when it checked the lock (its acquisition).
    pub rvn: String,
    /// A pause of the writer's process right after its check, before the write leaves.
    pub pause: u64,
    pub ack: SlotRef,
}

/// State the applications share with the world.
#[derive(Default)]
pub struct AppShared {
    pub holdings: BTreeMap<(usize, usize), Holding>,
    /// Patient waiters: (client, key) wanting the lock now.
    pub waiting: BTreeMap<(usize, usize), bool>,
    pub calls: BTreeMap<u64, Call>,
    next_call: u64,
    pub notes: Vec<Note>,
    pub res_out: Vec<ResOut>,
    /// Acquisition calls in progress, per (client, key): their call ids.
    pub acquiring: BTreeMap<(usize, usize), u64>,
}

pub type AppRef = Arc<Mutex<AppShared>>;

/// One application task's context.
pub struct App {
    pub client: usize,
    pub key: usize,
    pub group: String,
    pub id: String,
    pub lock_client: LockClient<SimHost>,
    pub host: SimHost,
    pub shared: AppRef,
    pub opts: LockOptions,
    /// The options' poll interval.
    pub poll: Duration,
    pub try_loop: bool,
    /// A patient waiter (neither a timeout nor a retry limit): liveness is checked for it.
    pub patient: bool,
    pub cuts: Cuts,
    pub rng: SimRng,
    pub idle_max: u64,
    pub hold_max: u64,
    pub guarded_share: f64,
    pub check_pause: f64,
    pub pause_max: u64,
    /// Bounds of calls on the caller's clock.
    pub bounds: Bounds,
}

/// Call bounds (see `world.rs` for how they are derived).
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub lock_with_timeout: Option<Duration>,
    pub try_lock: Duration,
    pub release: Duration,
    pub write_if_held: Duration,
}

/// Runs `fut` to its end, or drops it after `cut` (`Some(0)`: before its first poll).
async fn cut_short<T>(host: &SimHost, cut: Option<u64>, fut: impl Future<Output = T>) -> Option<T> {
    match cut {
        None => Some(fut.await),
        Some(0) => None,
        Some(ns) => {
            let deadline = host.now().mono + Duration::from_nanos(ns);
            let fut = pin!(fut);
            let timer = pin!(host.sleep_until(deadline));
            match select(fut, timer).await {
                Either::Left((v, _)) => Some(v),
                Either::Right(_) => None,
            }
        }
    }
}

impl App {
    fn now_ns(&self) -> u64 {
        self.host.now().mono.as_nanos()
    }

    async fn sleep(&self, d: Duration) {
        self.host.sleep_until(self.host.now().mono + d).await;
    }

    fn note(&self, n: Note) {
        lock(&self.shared).notes.push(n);
    }

    fn cut(&mut self, p: f64) -> Option<u64> {
        if !self.rng.chance(p) {
            return None;
        }
        // A third before the first poll; the rest anywhere up to a few round trips.
        if self.rng.chance(0.3) {
            Some(0)
        } else {
            Some(self.rng.range(1, self.cuts.max_delay))
        }
    }

    fn begin_call(&self, kind: CallKind, bound: Option<Duration>, t: u64) -> u64 {
        let mut s = lock(&self.shared);
        s.next_call += 1;
        let id = s.next_call;
        s.calls.insert(
            id,
            Call {
                client: self.client,
                kind,
                start: t,
                bound,
            },
        );
        id
    }

    fn end_call(&self, call: u64, cut: bool) {
        lock(&self.shared).notes.push(Note::CallEnded { call, cut });
    }

    fn set_waiting(&self, on: bool) {
        let mut s = lock(&self.shared);
        if on && self.patient {
            s.waiting.insert((self.client, self.key), true);
        } else {
            s.waiting.remove(&(self.client, self.key));
        }
    }

    /// The application's loop: idle, acquire, hold, end the hold; forever (the world drops
    /// the task at shutdown, wherever it is).
    pub async fn run(mut self, true_now: impl Fn() -> u64) {
        loop {
            let idle = self.rng.range(0, self.idle_max);
            self.sleep(Duration::from_nanos(idle)).await;
            let Some(lock) = self.acquire(&true_now).await else {
                continue;
            };
            self.hold(lock, &true_now).await;
        }
    }

    async fn acquire(&mut self, true_now: &impl Fn() -> u64) -> Option<SimLock> {
        self.set_waiting(true);
        let got = if self.try_loop {
            self.try_until_acquired(true_now).await
        } else {
            self.lock_once(true_now).await
        };
        self.set_waiting(false);
        got
    }

    async fn lock_once(&mut self, true_now: &impl Fn() -> u64) -> Option<SimLock> {
        let cut = self.cut(self.cuts.acquire);
        let call = self.begin_call(CallKind::Lock, self.bounds.lock_with_timeout, true_now());
        {
            let mut s = lock(&self.shared);
            s.acquiring.insert((self.client, self.key), call);
            s.notes.push(Note::LockStarted {
                client: self.client,
                key: self.key,
                call,
            });
        }
        let client = self.lock_client.clone();
        let result = cut_short(
            &self.host,
            cut,
            client.lock(&self.group, &self.id, &self.opts),
        )
        .await;
        lock(&self.shared)
            .acquiring
            .remove(&(self.client, self.key));
        self.end_call(call, result.is_none());
        match result {
            None => {
                self.note(Note::AcquireCut {
                    client: self.client,
                    key: self.key,
                });
                None
            }
            Some(Ok(l)) => Some(l),
            Some(Err(AcquireError::Timeout { .. } | AcquireError::MaxRetries { .. })) => {
                self.note(Note::GaveUp {
                    client: self.client,
                    key: self.key,
                });
                None
            }
            Some(Err(e)) => {
                self.note(Note::Unexpected(format!("lock() failed: {e:?}")));
                None
            }
        }
    }

    async fn try_until_acquired(&mut self, true_now: &impl Fn() -> u64) -> Option<SimLock> {
        loop {
            let cut = self.cut(self.cuts.acquire);
            let call = self.begin_call(CallKind::TryLock, Some(self.bounds.try_lock), true_now());
            lock(&self.shared)
                .acquiring
                .insert((self.client, self.key), call);
            let client = self.lock_client.clone();
            let result = cut_short(
                &self.host,
                cut,
                client.try_lock(&self.group, &self.id, &self.opts),
            )
            .await;
            lock(&self.shared)
                .acquiring
                .remove(&(self.client, self.key));
            self.end_call(call, result.is_none());
            let again = match result {
                None => {
                    self.note(Note::AcquireCut {
                        client: self.client,
                        key: self.key,
                    });
                    self.poll
                }
                Some(Ok(TryLock::Acquired(l))) => return Some(l),
                Some(Ok(TryLock::Held(busy))) => {
                    self.note(Note::Busy);
                    // Come back when a takeover could be tried, or after a poll interval to
                    // notice a release.
                    busy.retry_after.min(self.poll)
                }
                Some(Err(AcquireError::Unavailable { .. } | AcquireError::Timeout { .. })) => {
                    self.poll
                }
                Some(Err(e)) => {
                    self.note(Note::Unexpected(format!("try_lock() failed: {e:?}")));
                    return None;
                }
            };
            self.sleep(again.max(Duration::from_millis(1))).await;
        }
    }

    async fn hold(&mut self, lock_handle: SimLock, true_now: &impl Fn() -> u64) {
        // A lock is returned held, with at least half its lease left (a write recognised late
        // is renewed first).
        let half = self.opts.lease_duration() / 2;
        match lock_handle.status() {
            LockStatus::Held { remaining, .. } if remaining >= half => {}
            other => self.note(Note::Unexpected(format!(
                "c{} got a lock of k{} with status {other:?} (less than half its lease left)",
                self.client, self.key
            ))),
        }
        let record = lock_handle.record();
        self.note(Note::Acquired {
            client: self.client,
            key: self.key,
            rvn: record.rvn.clone(),
            fence: lock_handle.fencing_token(),
        });
        let held = Arc::new(lock_handle);
        lock(&self.shared).holdings.insert(
            (self.client, self.key),
            Holding {
                lock: Arc::downgrade(&held),
                in_cs: true,
            },
        );
        let hold = self.rng.range(0, self.hold_max);
        let until = self.now_ns() + hold;
        let work_every = Duration::from_millis(self.rng.range(50, 300));
        let mut lost = false;
        loop {
            if let LockStatus::Lost(reason) = held.status() {
                self.note(Note::Lost {
                    client: self.client,
                    key: self.key,
                    why: match reason {
                        ddb_lock::LossReason::Stolen { .. } => "stolen",
                        ddb_lock::LossReason::Deleted => "deleted",
                        ddb_lock::LossReason::Expired { .. } => "expired",
                        _ => "other",
                    },
                });
                lost = true;
                break;
            }
            if self.now_ns() >= until {
                break;
            }
            if held.remaining() >= WORK_BUDGET {
                if self.rng.chance(self.guarded_share) {
                    self.guarded_write(&held, true_now).await;
                } else if let Some(token) = held.fencing_token() {
                    self.token_write(&held, token).await;
                } else {
                    self.note(Note::Unexpected(format!(
                        "c{} holds {:?} without a fencing token",
                        self.client,
                        held.record()
                    )));
                }
            }
            let left = Duration::from_nanos(until.saturating_sub(self.now_ns()));
            self.sleep(work_every.min(left).max(Duration::from_millis(1)))
                .await;
        }
        // Out of the critical section before anything else.
        if let Some(h) = lock(&self.shared)
            .holdings
            .get_mut(&(self.client, self.key))
        {
            h.in_cs = false;
        }
        let how = if lost && self.rng.chance(0.5) {
            "drop-after-loss"
        } else if self.rng.chance(self.cuts.abandon) {
            "abandon"
        } else if self.rng.chance(self.cuts.drop_handle) {
            "drop"
        } else {
            "release"
        };
        match how {
            "abandon" => {
                if let Ok(l) = Arc::try_unwrap(held) {
                    self.note(Note::Abandoned {
                        key: self.key,
                        rvn: l.record().rvn,
                    });
                    l.abandon();
                }
            }
            "release" => self.release(&held, true_now).await,
            _ => drop(held),
        }
        lock(&self.shared).holdings.remove(&(self.client, self.key));
        self.note(Note::HoldEnded {
            client: self.client,
            key: self.key,
            how,
        });
    }

    async fn release(&mut self, held: &Arc<SimLock>, true_now: &impl Fn() -> u64) {
        let cut = self.cut(self.cuts.release);
        let call = self.begin_call(CallKind::Release, Some(self.bounds.release), true_now());
        let first = cut_short(&self.host, cut, held.release()).await;
        self.end_call(call, first.is_none());
        let result = match first {
            Some(r) => r,
            // Cut short: call again half of the time (it must complete), else just drop.
            None if self.rng.chance(0.5) => {
                let call =
                    self.begin_call(CallKind::Release, Some(self.bounds.release), true_now());
                let r = held.release().await;
                self.end_call(call, false);
                r
            }
            None => return,
        };
        let how = match &result {
            Ok(ddb_lock::ReleaseOutcome::Released) => "released",
            Ok(ddb_lock::ReleaseOutcome::AlreadyGone) => "gone",
            Err(ReleaseError::NotOwner { .. }) => "not-owner",
            Err(ReleaseError::AlreadyLost(_)) => "already-lost",
            Err(ReleaseError::Unconfirmed(_)) => "unconfirmed",
            Err(e) => {
                self.note(Note::Unexpected(format!("release failed: {e:?}")));
                "error"
            }
        };
        self.note(Note::Released { how });
    }

    async fn token_write(&mut self, held: &Arc<SimLock>, token: u64) {
        let pause = if self.rng.chance(self.check_pause) {
            self.rng.range(1, self.pause_max)
        } else {
            0
        };
        let ack = SlotRef::default();
        lock(&self.shared).res_out.push(ResOut {
            client: self.client,
            key: self.key,
            token,
            rvn: held.record().rvn,
            pause,
            ack: ack.clone(),
        });
        Ack(ack).await;
    }

    async fn guarded_write(&mut self, held: &Arc<SimLock>, true_now: &impl Fn() -> u64) {
        let put = TransactItem::Put(TransactTarget {
            table_name: RESOURCE_TABLE.into(),
            item: [
                ("pk".to_owned(), AttributeValue::s(&self.id)),
                ("sk".to_owned(), AttributeValue::s(&self.group)),
                (RESOURCE_BY.to_owned(), AttributeValue::s(held.record().rvn)),
            ]
            .into(),
            ..Default::default()
        });
        let cut = self.cut(self.cuts.guarded);
        let call = self.begin_call(
            CallKind::WriteIfHeld,
            Some(self.bounds.write_if_held),
            true_now(),
        );
        let result = cut_short(&self.host, cut, held.write_if_held(vec![put])).await;
        self.end_call(call, result.is_none());
        match result {
            None => {}
            Some(Ok(())) => self.note(Note::Guarded { ok: true }),
            Some(Err(
                GuardedWriteError::NotHeld { .. }
                | GuardedWriteError::Dynamo(_)
                | GuardedWriteError::Canceled { .. },
            )) => self.note(Note::Guarded { ok: false }),
            Some(Err(e)) => self.note(Note::Unexpected(format!("write_if_held: {e:?}"))),
        }
    }
}

/// Waits for the world's acknowledgement of a resource write.
struct Ack(SlotRef);

impl Future for Ack {
    type Output = ();
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        let mut s = lock(&self.0);
        if s.take_reply().is_some() {
            return std::task::Poll::Ready(());
        }
        s.set_waker(cx.waker().clone());
        std::task::Poll::Pending
    }
}

/// The shutdown task of one client: `release_all`, perhaps cut short once and called again.
pub async fn shutdown(
    client: LockClient<SimHost>,
    host: SimHost,
    shared: AppRef,
    cut: Option<u64>,
    bound: Duration,
    true_now: impl Fn() -> u64,
) {
    let c = host.client();
    let begin = |shared: &AppRef| {
        let mut s = lock(shared);
        s.next_call += 1;
        let id = s.next_call;
        s.calls.insert(
            id,
            Call {
                client: c,
                kind: CallKind::ReleaseAll,
                start: true_now(),
                bound: Some(bound),
            },
        );
        id
    };
    let call = begin(&shared);
    let first = cut_short(&host, cut, client.release_all()).await;
    lock(&shared).notes.push(Note::CallEnded {
        call,
        cut: first.is_none(),
    });
    if first.is_none() {
        let call = begin(&shared);
        let _ = client.release_all().await;
        lock(&shared)
            .notes
            .push(Note::CallEnded { call, cut: false });
    }
}
