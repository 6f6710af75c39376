//! The simulated host the shipped `LockClient` runs on: per-client clocks over the world's
//! true time, timers, a transport into the simulated network, seeded entropy, and spawning
//! onto the world's single-threaded executor.
//!
//! Everything is driven by the world (`world.rs`): it owns the true time, pops timers and
//! network events in order, and polls the tasks this executor holds. Nothing here reads a
//! real clock or uses a thread.

use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use ddb_lock::core::Rng;
use ddb_lock::dynamodb::{HttpRequest, HttpResponse, TransportError};
use ddb_lock::host::{Clock, Entropy, Spawn, Timer, Transport};
use ddb_lock::time::{Instant, Now};

use super::clock::Clock as SimClock;

pub type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A reply slot for one HTTP request: the first reply wins.
#[derive(Default)]
pub struct Slot {
    reply: Option<Result<HttpResponse, TransportError>>,
    delivered: bool,
    waker: Option<Waker>,
}

pub type SlotRef = Arc<Mutex<Slot>>;

impl Slot {
    /// The reply, once delivered (taken once).
    pub fn take_reply(&mut self) -> Option<Result<HttpResponse, TransportError>> {
        self.reply.take()
    }

    /// Who to wake when a reply comes.
    pub fn set_waker(&mut self, waker: Waker) {
        self.waker = Some(waker);
    }
}

/// Delivers `reply` unless one was delivered before; wakes the waiting request.
pub fn deliver(slot: &SlotRef, reply: Result<HttpResponse, TransportError>) -> bool {
    let waker = {
        let mut s = lock(slot);
        if s.delivered {
            return false;
        }
        s.delivered = true;
        s.reply = Some(reply);
        s.waker.take()
    };
    if let Some(w) = waker {
        w.wake();
    }
    true
}

/// A request a client sent, waiting for the world to carry it.
pub struct Outgoing {
    pub client: usize,
    pub request: HttpRequest,
    pub slot: SlotRef,
}

struct TimerEntry {
    at: u64,
    seq: u64,
    waker: Waker,
}

impl PartialEq for TimerEntry {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for TimerEntry {}
impl PartialOrd for TimerEntry {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for TimerEntry {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// The state hosts share with the world.
#[derive(Default)]
pub struct Kernel {
    /// True time, ns since the run began.
    pub t: u64,
    seq: u64,
    timers: BinaryHeap<TimerEntry>,
    pub outbox: Vec<Outgoing>,
    pub spawned: Vec<(usize, Task)>,
    /// After the run: spawned tasks are dropped, requests fail at once.
    pub shutdown: bool,
}

impl Kernel {
    /// When the next timer fires.
    pub fn next_timer(&self) -> Option<u64> {
        self.timers.peek().map(|e| e.at)
    }

    /// Pops the timers due at `t` (in order).
    pub fn due_timers(&mut self, t: u64) -> Vec<Waker> {
        let mut out = Vec::new();
        while self.timers.peek().is_some_and(|e| e.at <= t) {
            out.push(self.timers.pop().unwrap().waker);
        }
        out
    }
}

pub type KernelRef = Arc<Mutex<Kernel>>;

/// One client's host.
#[derive(Clone)]
pub struct SimHost {
    kernel: KernelRef,
    client: usize,
    clock: Arc<SimClock>,
    rng: Arc<Mutex<Rng>>,
}

impl SimHost {
    pub fn new(kernel: KernelRef, client: usize, clock: SimClock, seed: u64) -> Self {
        SimHost {
            kernel,
            client,
            clock: Arc::new(clock),
            rng: Arc::new(Mutex::new(Rng::seeded(seed))),
        }
    }

    pub fn client(&self) -> usize {
        self.client
    }
}

impl Clock for SimHost {
    fn now(&self) -> Now {
        let t = lock(&self.kernel).t;
        self.clock.now(t)
    }
}

/// A timer on a client's monotonic clock.
pub struct SimSleep {
    kernel: KernelRef,
    clock: Arc<SimClock>,
    deadline: Instant,
}

impl Future for SimSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut k = lock(&self.kernel);
        if self.clock.mono(k.t) >= self.deadline {
            return Poll::Ready(());
        }
        let at = self.clock.true_time_of(self.deadline, k.t);
        k.seq += 1;
        let seq = k.seq;
        k.timers.push(TimerEntry {
            at,
            seq,
            waker: cx.waker().clone(),
        });
        Poll::Pending
    }
}

impl Timer for SimHost {
    type Sleep = SimSleep;
    fn sleep_until(&self, deadline: Instant) -> SimSleep {
        SimSleep {
            kernel: self.kernel.clone(),
            clock: self.clock.clone(),
            deadline,
        }
    }
}

/// A request's pending answer.
pub struct SimResponse {
    slot: Option<SlotRef>,
}

impl Future for SimResponse {
    type Output = Result<HttpResponse, TransportError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(slot) = &self.slot else {
            return Poll::Ready(Err(TransportError::new("host shut down")));
        };
        let mut s = lock(slot);
        if let Some(r) = s.reply.take() {
            drop(s);
            self.slot = None;
            return Poll::Ready(r);
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Transport for SimHost {
    type Response = SimResponse;
    fn send(&self, request: HttpRequest) -> SimResponse {
        let mut k = lock(&self.kernel);
        if k.shutdown {
            return SimResponse { slot: None };
        }
        let slot = SlotRef::default();
        k.outbox.push(Outgoing {
            client: self.client,
            request,
            slot: slot.clone(),
        });
        SimResponse { slot: Some(slot) }
    }
}

impl Entropy for SimHost {
    fn fill(&self, buf: &mut [u8]) {
        let mut rng = lock(&self.rng);
        for chunk in buf.chunks_mut(8) {
            let b = rng.next_u64().to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
    }
}

impl Spawn for SimHost {
    fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut k = lock(&self.kernel);
        if !k.shutdown {
            k.spawned.push((self.client, Box::pin(task)));
        }
    }
}

// --- the executor -----------------------------------------------------------------------

struct TaskWaker {
    id: u64,
    queued: AtomicBool,
    ready: Arc<Mutex<VecDeque<u64>>>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            lock(&self.ready).push_back(self.id);
        }
    }
}

struct Entry {
    client: usize,
    task: Task,
    waker: Arc<TaskWaker>,
}

/// A seeded single-threaded executor: tasks run in the order they were woken.
#[derive(Default)]
pub struct Executor {
    tasks: BTreeMap<u64, Entry>,
    ready: Arc<Mutex<VecDeque<u64>>>,
    next: u64,
    /// Tasks of paused clients woken meanwhile, per client.
    deferred: BTreeMap<usize, Vec<u64>>,
    /// Tasks of dead clients: never polled again, dropped only after the run.
    graveyard: Vec<Task>,
}

impl Executor {
    pub fn spawn(&mut self, client: usize, task: Task) -> u64 {
        self.next += 1;
        let id = self.next;
        let waker = Arc::new(TaskWaker {
            id,
            queued: AtomicBool::new(false),
            ready: self.ready.clone(),
        });
        waker.wake_by_ref();
        self.tasks.insert(
            id,
            Entry {
                client,
                task,
                waker,
            },
        );
        id
    }

    /// The next task to poll, if any is ready (tasks of paused clients are set aside).
    pub fn next_ready(&mut self, paused: impl Fn(usize) -> bool) -> Option<u64> {
        loop {
            let id = lock(&self.ready).pop_front()?;
            let Some(e) = self.tasks.get(&id) else {
                continue;
            };
            e.waker.queued.store(false, Ordering::Release);
            if paused(e.client) {
                self.deferred.entry(e.client).or_default().push(id);
                continue;
            }
            return Some(id);
        }
    }

    /// Polls task `id`; returns its client, and whether it finished.
    pub fn poll(&mut self, id: u64) -> Option<(usize, bool)> {
        let e = self.tasks.get_mut(&id)?;
        let waker = Waker::from(e.waker.clone());
        let mut cx = Context::from_waker(&waker);
        let done = e.task.as_mut().poll(&mut cx).is_ready();
        let client = e.client;
        if done {
            self.tasks.remove(&id);
        }
        Some((client, done))
    }

    /// A paused client resumes: its woken tasks run again.
    pub fn resume(&mut self, client: usize) {
        for id in self.deferred.remove(&client).unwrap_or_default() {
            if let Some(e) = self.tasks.get(&id) {
                e.waker.wake_by_ref();
            }
        }
    }

    /// A client dies: its tasks stop, without running any destructor now (a crashed process
    /// releases nothing).
    pub fn kill(&mut self, client: usize) {
        let ids: Vec<u64> = self
            .tasks
            .iter()
            .filter(|(_, e)| e.client == client)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(e) = self.tasks.remove(&id) {
                self.graveyard.push(e.task);
            }
        }
        self.deferred.remove(&client);
    }

    /// Drops the tasks of `client` now (running their destructors, as a cancelled future's).
    pub fn cancel_client_tasks(&mut self, client: usize, keep: impl Fn(u64) -> bool) -> usize {
        let ids: Vec<u64> = self
            .tasks
            .iter()
            .filter(|(id, e)| e.client == client && !keep(**id))
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            self.tasks.remove(id);
        }
        ids.len()
    }

    /// Ends the run: every task is dropped (the dead ones too).
    pub fn teardown(&mut self) {
        self.tasks.clear();
        self.graveyard.clear();
    }
}
