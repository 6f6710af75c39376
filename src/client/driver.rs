//! The driver: runs a lock's [`LockMachine`] through the host.
//!
//! Every lock's machine sits behind a mutex in a [`Shared`], with a [`Signal`] that wakes
//! waiters when it changes. Whoever needs progress drives it: the caller of `lock()` during
//! the acquisition, the caller of `release()`, and a background task (spawned through the
//! host) for renewals and for releases nobody waits for. Driving is one loop
//! ([`drive`]): poll the machine; send what it asks for, feeding the outcome back; otherwise
//! wait until its next deadline or a change, whichever comes first. Nothing waits without a
//! bound: every wait ends at a deadline the machine named (an in-flight request's deadline
//! among them, after which the machine stops waiting for that answer), so no call depends on
//! another task to finish.
//!
//! Cancellation: a request whose future is dropped is fed back as an unknown outcome
//! ([`InFlight`]'s drop); an acquisition dropped before it finished is cancelled and whatever
//! it may have written is released in the background ([`AcquireGuard`]); a release dropped
//! before its result leaves the background task to finish it ([`ReleaseGuard`]).

use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::future::select;

use super::LockClient;
use crate::core::{LockKey, LockMachine, Output, Phase, Request, RequestId};
use crate::dynamodb::{self, TransportError};
use crate::host::Host;
use crate::signal::Signal;
use crate::time::Instant;

/// One lock's machine, shared by its handle, its drivers and the client's registry.
pub(crate) struct Shared {
    pub(crate) serial: u64,
    pub(crate) key: LockKey,
    machine: Mutex<LockMachine>,
    pub(crate) signal: Signal,
    /// A background driver is running (or spawned).
    driving: AtomicBool,
}

impl Shared {
    pub(crate) fn new(serial: u64, key: LockKey, machine: LockMachine) -> Self {
        Shared {
            serial,
            key,
            machine: Mutex::new(machine),
            signal: Signal::default(),
            driving: AtomicBool::new(false),
        }
    }

    pub(crate) fn machine(&self) -> MutexGuard<'_, LockMachine> {
        self.machine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the machine, then wakes whoever waits on it.
    pub(crate) fn command<T>(&self, f: impl FnOnce(&mut LockMachine) -> T) -> T {
        let t = f(&mut self.machine());
        self.signal.notify();
        t
    }
}

/// Drives `shared`'s machine until `stop` answers. `stop` sees the machine (under its lock)
/// before each poll with `None`, and after a poll that sent nothing with that poll's output;
/// it must answer when the output is `Idle` or `Ended` (else `drive` returns `None`).
pub(crate) async fn drive<H: Host, T>(
    client: &LockClient<H>,
    shared: &Shared,
    mut stop: impl FnMut(&LockMachine, Option<&Output>) -> Option<T>,
) -> Option<T> {
    let host = client.host();
    loop {
        let changed = shared.signal.changed();
        let now = host.now();
        let out = {
            let mut m = shared.machine();
            if let Some(t) = stop(&m, None) {
                return Some(t);
            }
            let out = m.poll(now);
            if matches!(out, Output::Ended) {
                client.forget(shared);
            }
            if !matches!(out, Output::Send { .. })
                && let Some(t) = stop(&m, Some(&out))
            {
                return Some(t);
            }
            out
        };
        match out {
            Output::Send {
                id,
                request,
                deadline,
            } => send(client, shared, id, request, deadline).await,
            Output::Wait(deadline) => {
                let sleep = pin!(host.sleep_until(deadline));
                select(sleep, changed).await;
            }
            Output::PhaseChanged(_) => {}
            Output::Idle | Output::Ended => return None,
        }
    }
}

/// Sends one request of `shared`'s machine, bounded by its deadline, and feeds the outcome
/// back. Dropped before the answer, it feeds "outcome unknown" instead.
async fn send<H: Host>(
    client: &LockClient<H>,
    shared: &Shared,
    id: RequestId,
    request: Request,
    deadline: Instant,
) {
    let mut pending = InFlight {
        client,
        shared,
        id,
        armed: true,
    };
    let outcome = client.execute(request, deadline).await;
    pending.armed = false;
    pending.feed(outcome);
}

/// A request of a machine on its way. Dropped while armed (its future was dropped), it tells
/// the machine the outcome is unknown: the request may have been applied.
struct InFlight<'a, H: Host> {
    client: &'a LockClient<H>,
    shared: &'a Shared,
    id: RequestId,
    armed: bool,
}

impl<H: Host> InFlight<'_, H> {
    fn feed(&self, outcome: crate::core::Outcome) {
        let now = self.client.host().now();
        let handled = self.shared.command(|m| m.handle(now, self.id, outcome));
        if handled.is_err() {
            self.client.inner.counters.unexpected_response();
        }
    }
}

impl<H: Host> Drop for InFlight<'_, H> {
    fn drop(&mut self) {
        if self.armed {
            self.feed(Err(dynamodb::Error::Transport(TransportError::new(
                "request cancelled (its future was dropped); it may have been applied",
            ))));
        }
    }
}

/// Starts a background driver for `shared` unless one runs: it drives the machine until
/// there is nothing to do (idle or ended).
pub(crate) fn ensure_background<H: Host>(client: &LockClient<H>, shared: &Arc<Shared>) {
    if shared.driving.swap(true, Ordering::AcqRel) {
        return;
    }
    // Made before the task, so that a host that drops the task unpolled (shutting down)
    // still clears the flag, and the next command may start another driver.
    let mut running = Running(shared.clone(), true);
    let client = client.clone();
    client.host().clone().spawn(async move {
        let shared = running.0.clone();
        // Stop only while holding the machine's lock, seeing it idle: a command applied
        // after that finds `driving` false and starts another driver.
        drive(&client, &shared, |_, out| {
            matches!(out, Some(Output::Idle | Output::Ended))
                .then(|| shared.driving.store(false, Ordering::Release))
        })
        .await;
        running.disarm();
    });
}

/// Clears `driving` when a background driver is dropped before it finished.
struct Running(Arc<Shared>, bool);

impl Running {
    fn disarm(&mut self) {
        self.1 = false;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.1 {
            self.0.driving.store(false, Ordering::Release);
        }
    }
}

/// Held by `lock()` while it acquires. Dropped before the acquisition finished, it cancels
/// it: whatever it may have written is released in the background, and the client remembers
/// the versions it sent so its next `lock()` of the key recognises them.
pub(crate) struct AcquireGuard<'a, H: Host> {
    pub(crate) client: &'a LockClient<H>,
    pub(crate) shared: &'a Arc<Shared>,
    pub(crate) armed: bool,
}

impl<H: Host> Drop for AcquireGuard<'_, H> {
    fn drop(&mut self) {
        if self.armed {
            let now = self.client.host().now();
            self.shared.command(|m| m.release(now));
            self.client.acquisition_over(self.shared);
        }
    }
}

/// Held by `release()` while it waits. Dropped before the result, the release goes on in
/// the background.
pub(crate) struct ReleaseGuard<'a, H: Host> {
    pub(crate) client: &'a LockClient<H>,
    pub(crate) shared: &'a Arc<Shared>,
}

impl<H: Host> Drop for ReleaseGuard<'_, H> {
    fn drop(&mut self) {
        let phase = self.shared.machine().phase();
        match phase {
            Phase::Ended => self.client.forget(self.shared),
            _ => ensure_background(self.client, self.shared),
        }
    }
}
