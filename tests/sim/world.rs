//! The discrete-event world: true time in ns, one event queue, one seeded generator, the
//! simulated table, the network, the clients, the protected resource, and the invariant
//! checks.
//!
//! The clients are the shipped `LockClient`s on simulated hosts (`host.rs`): their calls,
//! `Lock` handles and background tasks run on the world's single-threaded executor, and
//! their requests leave as signed HTTP through the simulated transport. The applications
//! (`app.rs`) use the public API and cut calls short at random points. Nothing of the client
//! is re-implemented here.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ddb_lock::core::{LockKey, LockRecord, Request};
use ddb_lock::dynamodb::transact_write_items::TransactItem;
use ddb_lock::dynamodb::{AttributeValue, Error, HttpResponse, Item, TransportError};
use ddb_lock::{ClientConfig, Credentials, LockClient, LockStatus};

use super::app::{
    self, App, AppRef, AppShared, Bounds, CallKind, Note, RESOURCE_BY, RESOURCE_TABLE,
};
use super::clock::{EPOCH_NS, server_wall};
use super::db::{Db, Effect, OWNER, RVN, Regression};
use super::host::{Executor, Kernel, KernelRef, Outgoing, SimHost, SlotRef, deliver};
use super::rng::SimRng;
use super::scenario::{
    CALM_DELAY, CHAOS_DELAY, LONG_DELAY, MS, OUTAGE_LEN, RES_DELAY, SEC, Scenario,
};
use super::stats::Stats;
use super::trace::{Tr, Trace};
use super::wire::{self, WireOk, WireOp};

/// No client sends more than this many requests in any one second of true time. The core
/// implies it: between two requests of one lock there is a poll or renewal wait, a backoff
/// (at least 10 ms), or one of a few immediate follow-ups that need a change at the table;
/// a client runs at most three locks (keys) and their cleanups here.
pub const STORM_MAX_PER_SEC: usize = 150;

/// Trace lines printed with a failing seed.
pub const TRACE_TAIL: usize = 100;

/// Task polls at one instant before it counts as a spin.
const MAX_POLLS_PER_INSTANT: u32 = 20_000;

/// The resource rejects writes whose token is below the highest it has accepted.
pub const FENCED_RESOURCE: bool = true;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

// --- events -------------------------------------------------------------------------------

enum Ev {
    DbArrive {
        c: usize,
        req: u64,
        op: Box<WireOp>,
        slot: SlotRef,
    },
    Reply {
        c: usize,
        req: u64,
        slot: SlotRef,
        reply: Result<HttpResponse, TransportError>,
    },
    PauseStart {
        c: usize,
        dur: u64,
        suspend: bool,
    },
    PauseEnd {
        c: usize,
        epoch: u64,
    },
    Die {
        c: usize,
        key: usize,
        rvn: String,
    },
    TtlSweep,
    Phase {
        index: usize,
    },
    ResLand {
        c: usize,
        key: usize,
        token: u64,
        rvn: String,
        ack: SlotRef,
    },
    ResAck {
        ack: SlotRef,
    },
    /// Re-evaluate beliefs (one may end now, by its holder's clock).
    Check,
    LiveDeadline {
        key: usize,
        epoch: u64,
    },
    CallDeadline {
        call: u64,
    },
    OrphanCheck {
        c: usize,
        key: usize,
        call: u64,
        acquisitions: u64,
        paused: u64,
    },
    Outage {
        kind: Outage,
        until: u64,
    },
    Shutdown,
    Final,
}

struct Queued {
    t: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.t, self.seq) == (o.t, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> Ordering {
        (o.t, o.seq).cmp(&(self.t, self.seq))
    }
}

/// A correlated fault: while it lasts, every message meets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outage {
    /// Every request is throttled (not applied).
    Throttle,
    /// Every request gets a 5xx, half of them after being applied.
    ServerErrors,
    /// Every request is lost (the client times out).
    Blackhole,
    /// Every response is lost after the request was applied.
    LostResponses,
    /// Every message is delayed 0.3 to 3 s (past most request timeouts).
    Slow,
}

// --- clients and keys ---------------------------------------------------------------------

struct Cl {
    host: SimHost,
    client: LockClient<SimHost>,
    paused: bool,
    pause_gen: u64,
    paused_until: u64,
    pause_started: u64,
    /// True time spent paused so far (calls' bounds exclude it).
    paused_total: u64,
    dead: bool,
    sent: VecDeque<u64>,
}

/// A belief: client `c` believes it holds the key (in its critical section, `status()`
/// says held), for acquisition `acq`, until true time `until` unless something changes.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Belief {
    acq: u64,
    until: u64,
}

struct Window {
    epoch: u64,
    start: u64,
    bound: u64,
}

#[derive(Default)]
struct KeyState {
    beliefs: BTreeMap<usize, Belief>,
    /// When a check of each believer's belief is scheduled (it may end then).
    check_at: BTreeMap<usize, u64>,
    overlaps_seen: BTreeSet<(u64, u64)>,
    window: Option<Window>,
    window_gen: u64,
    item_changed_at: u64,
    res_max_token: u64,
    res_tokens: BTreeMap<u64, u64>,
    fence_regressed: bool,
    /// The item's creator (client) and creation time; ended lifetimes: creator, creation,
    /// deletion, the highest token written in it.
    life: Option<(usize, u64)>,
    lives: Vec<(usize, u64, u64, u64)>,
    /// Record versions of abandoned locks (their items may stay).
    abandoned: BTreeSet<String>,
    /// When each acquisition took effect at the table.
    applied_at: BTreeMap<u64, u64>,
    /// When the latest acquisition took effect.
    acquired_at: u64,
    /// Versions written by each client's acquisition call in progress, and by its calls that
    /// were cut short or gave up (with when).
    writing: BTreeMap<usize, Vec<String>>,
    cut_versions: BTreeMap<usize, (Vec<String>, u64)>,
}

// --- the world ----------------------------------------------------------------------------

pub struct RunResult {
    pub seed: u64,
    pub hash: u64,
    pub stats: Stats,
    /// A violation report (seed, scenario, trace tail) if the run failed.
    pub failure: Option<String>,
    /// First expected violation of a beyond-bounds run, for the curious.
    pub beyond_note: Option<String>,
    /// When the wait that came closest to the liveness bound began.
    pub live_max_at: Option<u64>,
}

pub struct World {
    s: Scenario,
    rng: SimRng,
    kernel: KernelRef,
    exec: Executor,
    queue: BinaryHeap<Queued>,
    seq: u64,
    t: u64,
    db: Db,
    keys: Vec<LockKey>,
    clients: Vec<Cl>,
    app: AppRef,
    app_tasks: BTreeSet<u64>,
    keystate: Vec<KeyState>,
    next_req: u64,
    polls_at: (u64, u32),
    chaos: bool,
    /// Since when liveness may be checked (calm and settled), if the network is calm.
    settled_at: Option<u64>,
    outage: Option<(Outage, u64)>,
    shut_down: bool,
    deaths: usize,
    trace: Trace,
    stats: Stats,
    stopped: bool,
    failure: Option<String>,
    beyond_note: Option<String>,
    rvn_ids: HashMap<String, u32>,
    owner_ids: HashMap<String, i8>,
    calls_seen: u64,
    /// Calls in progress as the world saw them start: client, true start, the client's
    /// paused time then, the bound, the kind.
    calls: BTreeMap<u64, (usize, u64, u64, Duration, CallKind)>,
    live_max_at: Option<u64>,
}

fn dur_ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

impl World {
    pub fn new(seed: u64, echo: bool) -> World {
        let mut rng = SimRng::seeded(seed);
        let s = Scenario::generate(seed, &mut rng);
        let mut db = Db::new(&s.table);
        db.add_table(RESOURCE_TABLE, "pk", Some("sk"));
        let keys: Vec<LockKey> = s
            .keys
            .iter()
            .map(|(group, id)| LockKey {
                group: group.clone(),
                id: id.clone(),
            })
            .collect();
        let kernel = KernelRef::new(Mutex::new(Kernel::default()));
        let mut owner_ids = HashMap::new();
        let clients = s
            .clients
            .iter()
            .enumerate()
            .map(|(i, cfg)| {
                owner_ids.entry(cfg.owner.clone()).or_insert(i as i8);
                let host = SimHost::new(kernel.clone(), i, cfg.clock.clone(), rng.u64());
                let config = ClientConfig::new(
                    "us-east-1",
                    Credentials::new("AKIDSIMULATION", "simulated-secret", None),
                )
                .endpoint_url("http://127.0.0.1:8000")
                .table(s.table.clone())
                .request_timeout(cfg.request_timeout)
                .owner_name(cfg.owner.clone());
                let client = LockClient::new(host.clone(), config)
                    .expect("the simulation's config is valid");
                Cl {
                    host,
                    client,
                    paused: false,
                    pause_gen: 0,
                    paused_until: 0,
                    pause_started: 0,
                    paused_total: 0,
                    dead: false,
                    sent: VecDeque::new(),
                }
            })
            .collect();
        let keystate = (0..keys.len()).map(|_| KeyState::default()).collect();
        let mut w = World {
            rng,
            kernel,
            exec: Executor::default(),
            queue: BinaryHeap::new(),
            seq: 0,
            t: 0,
            db,
            keys,
            clients,
            app: AppRef::new(Mutex::new(AppShared::default())),
            app_tasks: BTreeSet::new(),
            keystate,
            next_req: 0,
            polls_at: (0, 0),
            chaos: false,
            settled_at: Some(0),
            outage: None,
            shut_down: false,
            deaths: 0,
            trace: Trace::new(TRACE_TAIL, echo),
            stats: Stats::default(),
            stopped: false,
            failure: None,
            beyond_note: None,
            rvn_ids: HashMap::new(),
            owner_ids,
            calls_seen: 0,
            calls: BTreeMap::new(),
            live_max_at: None,
            s,
        };
        w.stats.runs = 1;
        w.stats.runs_beyond = u64::from(w.s.beyond);
        w.stats.runs_chaos = u64::from(w.s.chaos);
        w
    }

    fn at(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Queued {
            t: t.max(self.t),
            seq: self.seq,
            ev,
        });
    }

    fn tr(&mut self, ev: Tr) {
        self.trace.push(self.t, ev);
    }

    fn rvn_id(&mut self, rvn: &str) -> u32 {
        let n = self.rvn_ids.len() as u32 + 1;
        *self.rvn_ids.entry(rvn.to_owned()).or_insert(n)
    }

    fn item_ids(&mut self, item: Option<&Item>) -> (u32, i8) {
        match item {
            None => (0, -1),
            Some(i) => {
                let rvn = i
                    .get(RVN)
                    .and_then(AttributeValue::as_s)
                    .unwrap_or("")
                    .to_owned();
                let owner = i
                    .get(OWNER)
                    .and_then(AttributeValue::as_s)
                    .and_then(|o| self.owner_ids.get(o).copied())
                    .unwrap_or(-1);
                (self.rvn_id(&rvn), owner)
            }
        }
    }

    fn key_index(&self, key: &LockKey) -> Option<usize> {
        self.keys.iter().position(|k| k == key)
    }

    // --- violations -----------------------------------------------------------------------

    fn violation(&mut self, kind: &str, msg: String) {
        let expected_beyond = self.s.beyond && (kind == "exclusion" || kind == "stale-write");
        match (kind, expected_beyond) {
            ("exclusion", true) => self.stats.beyond_exclusion += 1,
            ("stale-write", true) => self.stats.beyond_stale_write += 1,
            ("exclusion", false) => self.stats.v_exclusion += 1,
            ("stale-write", false) => self.stats.v_stale_write += 1,
            ("liveness", _) => self.stats.v_liveness += 1,
            ("storm", _) => self.stats.v_storm += 1,
            ("spin", _) => self.stats.v_spin += 1,
            ("model", _) => self.stats.v_model += 1,
            ("fence", _) => self.stats.v_fence += 1,
            ("bound", _) => self.stats.v_bound += 1,
            ("orphan", _) => self.stats.v_orphan += 1,
            ("leak", _) => self.stats.v_leak += 1,
            _ => self.stats.v_other += 1,
        }
        let slot = if expected_beyond {
            &self.beyond_note
        } else {
            self.stopped = true;
            &self.failure
        };
        if slot.is_some() {
            return;
        }
        let report = format!(
            "VIOLATION [{kind}] at t={:.6}s: {msg}\n{}  last {} events:\n{}  rerun: SIM_SEED={} SIM_TRACE=1 cargo test --profile sim --no-default-features --test simulation -- --nocapture simulate\n",
            self.t as f64 / 1e9,
            self.s.describe(),
            TRACE_TAIL,
            self.trace.tail(),
            self.s.seed,
        );
        if expected_beyond {
            self.beyond_note = Some(report);
        } else {
            self.failure = Some(report);
        }
    }

    // --- main loop ------------------------------------------------------------------------

    pub fn run(mut self) -> RunResult {
        let end = self.s.duration;
        self.at(end, Ev::Shutdown);
        self.at(end + self.s.final_settle, Ev::Final);
        if self.s.table.ttl_key_name().is_some() {
            let first = self.rng.range(500 * MS, 3 * SEC);
            self.at(first, Ev::TtlSweep);
        }
        for index in 1..self.s.phases.len() {
            let t = self.s.phases[index].0;
            self.at(t, Ev::Phase { index });
        }
        for c in 0..self.clients.len() {
            for i in 0..self.s.clients[c].clock.freezes.len() {
                let (start, stop) = self.s.clients[c].clock.freezes[i];
                if stop <= end {
                    self.at(
                        start,
                        Ev::PauseStart {
                            c,
                            dur: stop - start,
                            suspend: true,
                        },
                    );
                }
            }
        }
        self.spawn_apps();
        let mut done = false;
        while !done && !self.stopped {
            self.run_ready();
            if self.stopped {
                break;
            }
            let next_timer = lock(&self.kernel).next_timer();
            let next_event = self.queue.peek().map(|q| q.t);
            let t = match (next_timer, next_event) {
                (None, None) => break,
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
            };
            self.set_time(t);
            if next_timer.is_some_and(|a| a <= t) {
                let due = lock(&self.kernel).due_timers(t);
                for w in due {
                    w.wake();
                }
                continue;
            }
            let q = self.queue.pop().expect("peeked");
            self.stats.events += 1;
            if matches!(q.ev, Ev::Final) {
                self.run_ready();
                self.final_checks();
                done = true;
                continue;
            }
            self.event(q.ev);
            if !self.stopped {
                self.check_beliefs();
            }
        }
        self.stats.virtual_ms = self.t / MS;
        // Tear down: nothing runs any more; dropping the tasks runs their destructors.
        lock(&self.kernel).shutdown = true;
        self.exec.teardown();
        RunResult {
            seed: self.s.seed,
            hash: self.trace.hash(),
            stats: std::mem::take(&mut self.stats),
            failure: self.failure.take(),
            beyond_note: self.beyond_note.take(),
            live_max_at: self.live_max_at,
        }
    }

    fn set_time(&mut self, t: u64) {
        self.t = t.max(self.t);
        lock(&self.kernel).t = self.t;
    }

    fn true_now(&self) -> impl Fn() -> u64 + Send + 'static {
        let k = self.kernel.clone();
        move || lock(&k).t
    }

    fn spawn_apps(&mut self) {
        let s = &self.s;
        let mut apps = Vec::new();
        for (c, cfg) in s.clients.iter().enumerate() {
            let rt = cfg.request_timeout;
            let bounds = Bounds {
                lock_with_timeout: cfg.acquire_timeout.map(|t| t + 2 * rt + 10 * ms(1)),
                try_lock: 8 * rt + 3 * Duration::from_secs(2),
                release: cfg.lease + rt + cfg.prolong_every / 4 + ms(30),
                write_if_held: 3 * rt + ms(100),
            };
            for task in &cfg.tasks {
                let (group, id) = s.keys[task.key].clone();
                apps.push((
                    c,
                    App {
                        client: c,
                        key: task.key,
                        group,
                        id,
                        lock_client: self.clients[c].client.clone(),
                        host: self.clients[c].host.clone(),
                        shared: self.app.clone(),
                        opts: cfg.opts.clone(),
                        poll: cfg.poll,
                        try_loop: task.try_loop,
                        patient: task.try_loop
                            || (cfg.acquire_timeout.is_none() && cfg.max_retry.is_none()),
                        cuts: s.cuts.clone(),
                        rng: SimRng::seeded(self.rng.u64()),
                        idle_max: s.idle_max,
                        hold_max: (s.hold_max_leases * cfg.lease.as_nanos() as f64) as u64,
                        guarded_share: 0.5,
                        check_pause: if self.s.chaos {
                            s.faults.check_pause
                        } else {
                            0.0
                        },
                        pause_max: s.pause_max,
                        bounds,
                    },
                ));
            }
        }
        for (c, a) in apps {
            let now = self.true_now();
            let id = self.exec.spawn(c, Box::pin(a.run(now)));
            self.app_tasks.insert(id);
        }
    }

    /// Polls every ready task at the current instant, handling what each poll produced.
    fn run_ready(&mut self) {
        loop {
            if self.stopped {
                return;
            }
            let clients = &self.clients;
            let Some(id) = self
                .exec
                .next_ready(|c| clients[c].paused || clients[c].dead)
            else {
                return;
            };
            if self.polls_at.0 == self.t {
                self.polls_at.1 += 1;
                if self.polls_at.1 > MAX_POLLS_PER_INSTANT {
                    self.violation(
                        "spin",
                        format!("{MAX_POLLS_PER_INSTANT} task polls at one instant without time advancing"),
                    );
                    return;
                }
            } else {
                self.polls_at = (self.t, 1);
            }
            self.stats.polls += 1;
            let polled = self.exec.poll(id);
            if polled.is_some_and(|(_, done)| done) {
                self.app_tasks.remove(&id);
            }
            self.after_poll();
        }
    }

    /// Handles what tasks produced: spawned tasks, requests, notes, resource writes.
    fn after_poll(&mut self) {
        let (spawned, outbox) = {
            let mut k = lock(&self.kernel);
            (
                std::mem::take(&mut k.spawned),
                std::mem::take(&mut k.outbox),
            )
        };
        for (c, task) in spawned {
            if !self.clients[c].dead {
                self.exec.spawn(c, task);
            }
        }
        for out in outbox {
            self.net_send(out);
        }
        let (notes, res_out, new_calls) = {
            let mut a = lock(&self.app);
            let new_calls: Vec<(u64, usize, u64, Option<Duration>, CallKind)> = a
                .calls
                .range(self.calls_seen + 1..)
                .map(|(id, call)| (*id, call.client, call.start, call.bound, call.kind))
                .collect();
            (
                std::mem::take(&mut a.notes),
                std::mem::take(&mut a.res_out),
                new_calls,
            )
        };
        for (id, client, start, bound, kind) in new_calls {
            self.calls_seen = self.calls_seen.max(id);
            if let Some(bound) = bound {
                let paused = self.paused_so_far(client);
                self.calls.insert(id, (client, start, paused, bound, kind));
                self.at(start + dur_ns(bound), Ev::CallDeadline { call: id });
            }
        }
        for n in notes {
            self.on_note(n);
        }
        for r in res_out {
            self.res_issue(r);
        }
        self.check_beliefs();
    }

    fn event(&mut self, ev: Ev) {
        match ev {
            Ev::DbArrive { c, req, op, slot } => self.db_arrive(c, req, *op, slot),
            Ev::Reply {
                c,
                req,
                slot,
                reply,
            } => {
                if self.clients[c].dead {
                    self.stats.late_responses += 1;
                    return;
                }
                let status = match &reply {
                    Ok(r) => r.status,
                    Err(_) => 0,
                };
                if deliver(&slot, reply) {
                    self.tr(Tr::Reply {
                        c: c as u8,
                        req: req as u32,
                        status,
                    });
                } else {
                    self.stats.late_responses += 1;
                    self.tr(Tr::Late {
                        c: c as u8,
                        req: req as u32,
                    });
                }
            }
            Ev::PauseStart { c, dur, suspend } => self.start_pause(c, dur, suspend),
            Ev::PauseEnd { c, epoch } => {
                let cl = &mut self.clients[c];
                if cl.pause_gen == epoch && cl.paused && !cl.dead {
                    cl.paused = false;
                    cl.paused_total += self.t - cl.pause_started;
                    self.exec.resume(c);
                    self.tr(Tr::Resume { c: c as u8 });
                }
            }
            Ev::Die { c, key, rvn } => self.die(c, key, &rvn),
            Ev::TtlSweep => {
                let now_secs = server_wall(self.t).as_secs();
                for (key, _acq) in self.db.ttl_sweep(now_secs) {
                    self.stats.f_ttl_deletes += 1;
                    if let Some(k) = self.key_index(&key) {
                        self.keystate[k].item_changed_at = self.t;
                        self.end_life(k);
                        self.tr(Tr::Ttl { key: k as u8 });
                    }
                }
                if !self.shut_down {
                    let next = self.t + self.rng.range(500 * MS, 3 * SEC);
                    self.at(next, Ev::TtlSweep);
                }
            }
            Ev::Phase { index } => self.phase(index),
            Ev::ResLand {
                c,
                key,
                token,
                rvn,
                ack,
            } => self.res_land(c, key, token, &rvn, ack),
            Ev::ResAck { ack } => {
                deliver(
                    &ack,
                    Ok(HttpResponse {
                        status: 200,
                        body: Vec::new(),
                    }),
                );
            }
            Ev::Check => {}
            Ev::LiveDeadline { key, epoch } => self.live_deadline(key, epoch),
            Ev::CallDeadline { call } => self.call_deadline(call),
            Ev::OrphanCheck {
                c,
                key,
                call,
                acquisitions,
                paused,
            } => self.orphan_check(c, key, call, acquisitions, paused),
            Ev::Outage { kind, until } => {
                if self.shut_down {
                    return;
                }
                self.stats.f_outages += 1;
                self.outage = Some((kind, until));
                self.tr(Tr::Outage {
                    kind: kind as u8,
                    ms: ((until - self.t) / MS) as u32,
                });
            }
            Ev::Shutdown => self.shutdown(),
            Ev::Final => {}
        }
    }

    fn phase(&mut self, index: usize) {
        if self.shut_down {
            return;
        }
        let chaos = self.s.phases[index].1;
        let end = self
            .s
            .phases
            .get(index + 1)
            .map_or(self.s.duration, |p| p.0)
            .min(self.s.duration);
        self.chaos = chaos;
        self.tr(Tr::Phase { chaos });
        if chaos {
            self.settled_at = None;
            for w in &mut self.keystate {
                w.window = None;
            }
            for _ in 0..self.rng.range(0, self.s.faults.outages) {
                if end < self.t + 2 * OUTAGE_LEN.0 {
                    break;
                }
                let start = self.rng.range(self.t, end - OUTAGE_LEN.0);
                let len = self.rng.range(OUTAGE_LEN.0, OUTAGE_LEN.1).min(end - start);
                let kind = [
                    Outage::Throttle,
                    Outage::ServerErrors,
                    Outage::Blackhole,
                    Outage::LostResponses,
                    Outage::Slow,
                ][self.rng.range(0, 4) as usize];
                self.at(
                    start,
                    Ev::Outage {
                        kind,
                        until: start + len,
                    },
                );
            }
            let rate = self.s.faults.pause_rate;
            if rate > 0.0 {
                for c in 0..self.clients.len() {
                    let mut t = self.t;
                    loop {
                        let gap = -(1.0 - self.rng.unit()).ln() / rate;
                        t += (gap * 1e9) as u64;
                        if t >= end {
                            break;
                        }
                        let dur = self.rng.range(MS, self.s.pause_max);
                        self.at(
                            t,
                            Ev::PauseStart {
                                c,
                                dur,
                                suspend: false,
                            },
                        );
                    }
                }
            }
        } else {
            self.settled_at = Some(self.t + self.s.settle);
        }
    }

    /// Stops client `c` for `dur` (a suspend also stops its monotonic clock: see clock.rs).
    fn start_pause(&mut self, c: usize, dur: u64, suspend: bool) {
        let t = self.t;
        if self.shut_down && !suspend {
            return;
        }
        let cl = &mut self.clients[c];
        if cl.dead || (cl.paused && cl.paused_until >= t + dur) {
            return;
        }
        if !cl.paused {
            cl.pause_started = t;
        }
        cl.paused = true;
        cl.paused_until = t + dur;
        cl.pause_gen += 1;
        let epoch = cl.pause_gen;
        if suspend {
            self.stats.f_suspends += 1;
        } else {
            self.stats.f_pauses += 1;
        }
        self.tr(Tr::Pause {
            c: c as u8,
            ms: (dur / MS) as u32,
            suspend,
        });
        self.at(t + dur, Ev::PauseEnd { c, epoch });
    }

    fn die(&mut self, c: usize, key: usize, rvn: &str) {
        if self.clients[c].dead || self.shut_down {
            return;
        }
        let holding = {
            let a = lock(&self.app);
            a.holdings
                .get(&(c, key))
                .and_then(|h| h.lock.upgrade())
                .map(|l| l.record().rvn)
        };
        // Only while it still holds that acquisition (versions move on with renewals).
        let Some(current) = holding else { return };
        if self.db.acq_of(&current).map(|(_, a)| a) != self.db.acq_of(rvn).map(|(_, a)| a) {
            return;
        }
        self.clients[c].dead = true;
        self.exec.kill(c);
        {
            let mut a = lock(&self.app);
            a.holdings.retain(|(k, _), _| *k != c);
            a.waiting.retain(|(k, _), _| *k != c);
            a.acquiring.retain(|(k, _), _| *k != c);
        }
        self.stats.f_deaths += 1;
        self.tr(Tr::Die { c: c as u8 });
        // It may have been the waiter a liveness window counted on: the others' waits are
        // measured again from now.
        for ks in &mut self.keystate {
            ks.window = None;
        }
    }

    /// The applications stop (their futures dropped wherever they are), the network calms
    /// down for good, and every live client calls `release_all`.
    fn shutdown(&mut self) {
        self.shut_down = true;
        self.chaos = false;
        self.outage = None;
        self.settled_at = Some(self.t + self.s.settle);
        self.tr(Tr::Shutdown);
        for c in 0..self.clients.len() {
            if self.clients[c].dead {
                continue;
            }
            let apps = self.app_tasks.clone();
            self.exec.cancel_client_tasks(c, |id| !apps.contains(&id));
        }
        self.app_tasks.clear();
        {
            let mut a = lock(&self.app);
            a.holdings.clear();
            a.waiting.clear();
            a.acquiring.clear();
            // Calls cut by the shutdown never end: forget them.
            a.calls.clear();
        }
        for c in 0..self.clients.len() {
            if self.clients[c].dead {
                continue;
            }
            let cfg = &self.s.clients[c];
            let bound = cfg.lease + cfg.request_timeout + cfg.prolong_every / 4 + ms(30);
            let cut = if self.rng.chance(self.s.cuts.release_all) {
                Some(self.rng.range(0, self.s.cuts.max_delay))
            } else {
                None
            };
            let task = app::shutdown(
                self.clients[c].client.clone(),
                self.clients[c].host.clone(),
                self.app.clone(),
                cut,
                bound,
                self.true_now(),
            );
            self.exec.spawn(c, Box::pin(task));
        }
        self.after_poll();
    }

    // --- notes from the applications ----------------------------------------------------

    fn on_note(&mut self, n: Note) {
        match n {
            Note::Acquired {
                client,
                key,
                rvn,
                fence,
            } => {
                self.stats.acquired += 1;
                self.keystate[key].writing.remove(&client);
                self.keystate[key].cut_versions.remove(&client);
                let Some((k, acq)) = self.db.acq_of(&rvn).map(|(k, a)| (k.clone(), a)) else {
                    self.violation(
                        "other",
                        format!("c{client} acquired version {rvn} that the table never stored"),
                    );
                    return;
                };
                if k != self.keys[key] {
                    self.violation("other", format!("c{client} acquired {rvn} of another key"));
                    return;
                }
                if fence != self.db.fence_of_acq(&k, acq) {
                    self.violation(
                        "fence",
                        format!(
                            "c{client} acquired acquisition {acq} of k{key} with token {fence:?}, but it stored {:?}",
                            self.db.fence_of_acq(&k, acq)
                        ),
                    );
                }
                let id = self.rvn_id(&rvn);
                self.tr(Tr::Acquired {
                    c: client as u8,
                    key: key as u8,
                    acq: acq as u32,
                    rvn: id,
                });
                let lease = dur_ns(self.s.clients[client].lease);
                if !self.shut_down
                    && self.deaths < self.s.max_deaths
                    && self.rng.chance(self.s.p_die)
                {
                    self.deaths += 1;
                    let hold = (self.s.hold_max_leases * lease as f64) as u64;
                    let when = self.t + self.rng.range(0, hold.max(1));
                    self.at(
                        when,
                        Ev::Die {
                            c: client,
                            key,
                            rvn,
                        },
                    );
                }
            }
            Note::CallEnded { call, cut } => {
                lock(&self.app).calls.remove(&call);
                if !cut {
                    self.judge_call(call, true);
                }
                self.calls.remove(&call);
            }
            Note::AcquireCut { client, key } => {
                self.stats.cuts_acquire += 1;
                self.remember_cut(client, key);
                self.tr(Tr::App {
                    c: client as u8,
                    key: key as u8,
                    what: "acquire cut",
                });
            }
            Note::LockStarted { client, key, call } => self.lock_started(client, key, call),
            Note::GaveUp { client, key } => {
                self.stats.gave_up += 1;
                self.remember_cut(client, key);
            }
            Note::Busy => self.stats.busy += 1,
            Note::Lost { client, key, why } => {
                match why {
                    "stolen" => self.stats.loss_stolen += 1,
                    "deleted" => self.stats.loss_deleted += 1,
                    _ => self.stats.loss_expired += 1,
                }
                self.tr(Tr::App {
                    c: client as u8,
                    key: key as u8,
                    what: why,
                });
            }
            Note::HoldEnded { client, key, how } => {
                match how {
                    "drop" | "drop-after-loss" => self.stats.handles_dropped += 1,
                    "abandon" => self.stats.abandoned += 1,
                    _ => {}
                }
                self.tr(Tr::App {
                    c: client as u8,
                    key: key as u8,
                    what: how,
                });
            }
            Note::Released { how, .. } => match how {
                "released" => self.stats.rel_released += 1,
                "gone" => self.stats.rel_gone += 1,
                "not-owner" => self.stats.rel_not_owner += 1,
                "already-lost" => self.stats.rel_already_lost += 1,
                _ => self.stats.rel_unconfirmed += 1,
            },
            Note::Abandoned { key, rvn } => {
                self.keystate[key].abandoned.insert(rvn);
            }
            Note::Guarded { ok } => {
                self.stats.guarded_writes += 1;
                if ok {
                    self.stats.guarded_accepted += 1;
                }
            }
            Note::Unexpected(msg) => self.violation("other", msg),
        }
    }

    fn remember_cut(&mut self, client: usize, key: usize) {
        let ks = &mut self.keystate[key];
        if let Some(v) = ks.writing.remove(&client) {
            let entry = ks.cut_versions.entry(client).or_default();
            entry.0.extend(v);
            entry.1 = self.t;
        }
    }

    /// A `lock()` starts: if the item is one this client's own cut or abandoned-by-timeout
    /// acquisition left, it must not wait for it.
    fn lock_started(&mut self, c: usize, key: usize, call: u64) {
        let Some((versions, cut_at)) = self.keystate[key].cut_versions.get(&c).cloned() else {
            return;
        };
        let lease = dur_ns(self.s.clients[c].lease);
        if self.t > cut_at + 2 * lease || !self.calm_since(cut_at) {
            return;
        }
        let current = self
            .db
            .current(&self.keys[key])
            .and_then(|i| LockRecord::from_item(i).ok());
        let ours = current
            .is_some_and(|r| r.owner == self.s.clients[c].owner && versions.contains(&r.rvn));
        if !ours {
            return;
        }
        self.stats.orphan_checks += 1;
        let bound = 2 * dur_ns(self.s.clients[c].poll) + 300 * MS;
        let acquisitions = self.db.acquisitions(&self.keys[key]);
        let paused = self.paused_so_far(c);
        self.at(
            self.t + bound,
            Ev::OrphanCheck {
                c,
                key,
                call,
                acquisitions,
                paused,
            },
        );
    }

    fn calm_since(&self, t: u64) -> bool {
        self.settled_at.is_some_and(|s| s <= t) && !self.chaos
    }

    fn orphan_check(&mut self, c: usize, key: usize, call: u64, acquisitions: u64, paused: u64) {
        let pending = lock(&self.app).calls.contains_key(&call);
        if !pending || self.clients[c].dead || self.paused_so_far(c) != paused {
            return;
        }
        if self.db.acquisitions(&self.keys[key]) != acquisitions || self.chaos {
            return;
        }
        self.violation(
            "orphan",
            format!(
                "c{c}'s lock() of k{key} is blocked by the item its own dropped acquisition left"
            ),
        );
    }

    /// True time client `c` has spent paused so far.
    fn paused_so_far(&self, c: usize) -> u64 {
        let cl = &self.clients[c];
        cl.paused_total
            + if cl.paused {
                self.t - cl.pause_started
            } else {
                0
            }
    }

    fn call_deadline(&mut self, call: u64) {
        if let Some(again) = self.judge_call(call, false) {
            self.at(again, Ev::CallDeadline { call });
        }
    }

    /// Checks a call against its bound: its running time (true time, the caller's pauses
    /// excluded) must not pass its bound on the caller's clock (stretched by the slowest
    /// clock rate). Returns when to look again if it is still running.
    fn judge_call(&mut self, call: u64, ended: bool) -> Option<u64> {
        let &(client, start, paused_then, bound, kind) = self.calls.get(&call)?;
        if self.clients[client].dead || self.shut_down && kind != CallKind::ReleaseAll {
            return None;
        }
        let slow = 1.0 - self.s.rho_ppm as f64 / 1e6;
        let allowed = (dur_ns(bound) as f64 / slow) as u64 + 5 * MS;
        let paused = self.paused_so_far(client) - paused_then;
        let ran = (self.t - start).saturating_sub(paused);
        if ran > allowed {
            self.violation(
                "bound",
                format!(
                    "c{client}'s {kind:?} {} after {:.3}s (bound {bound:?} on its clock)",
                    if ended {
                        "returned"
                    } else {
                        "is still running"
                    },
                    ran as f64 / 1e9,
                ),
            );
            return None;
        }
        (!ended).then(|| self.t + (allowed - ran).max(MS))
    }

    // --- network --------------------------------------------------------------------------

    fn net_send(&mut self, out: Outgoing) {
        let Outgoing {
            client: c,
            request,
            slot,
        } = out;
        self.next_req += 1;
        let req = self.next_req;
        let op = match wire::decode_request(&request) {
            Ok(op) => op,
            Err(e) => {
                self.violation(
                    "model",
                    format!("c{c} sent a request the model cannot read: {e}"),
                );
                return;
            }
        };
        // Storm check: requests of this client in the last second of true time.
        let t = self.t;
        let sent = &mut self.clients[c].sent;
        sent.push_back(t);
        while sent.front().is_some_and(|&s| s + SEC <= t) {
            sent.pop_front();
        }
        let in_window = sent.len();
        self.stats.max_req_per_client_sec = self.stats.max_req_per_client_sec.max(in_window as u64);
        self.describe_send(c, req, &op);
        if in_window > STORM_MAX_PER_SEC {
            self.violation(
                "storm",
                format!(
                    "c{c} sent {in_window} requests within one second (bound {STORM_MAX_PER_SEC})"
                ),
            );
        }
        let f = self.s.faults.clone();
        if self.chaos && self.rng.chance(f.conn_error) {
            self.stats.f_conn_error += 1;
            self.tr(Tr::ConnError {
                c: c as u8,
                req: req as u32,
            });
            let d = self.rng.range(MS, 5 * MS);
            self.at(
                self.t + d,
                Ev::Reply {
                    c,
                    req,
                    slot,
                    reply: Err(TransportError::new("connection reset")),
                },
            );
            return;
        }
        if self.outage_now() == Some(Outage::Blackhole) {
            self.stats.f_outage_hits += 1;
            self.tr(Tr::ReqDropped { req: req as u32 });
            return;
        }
        if self.chaos && self.rng.chance(f.req_drop) {
            self.stats.f_req_drop += 1;
            self.tr(Tr::ReqDropped { req: req as u32 });
            return;
        }
        let copies = if self.chaos && self.rng.chance(f.dup) {
            self.stats.f_dup += 1;
            self.tr(Tr::ReqDup { req: req as u32 });
            2
        } else {
            1
        };
        for _ in 0..copies {
            let d = self.hop_delay(req);
            self.at(
                self.t + d,
                Ev::DbArrive {
                    c,
                    req,
                    op: Box::new(op.clone()),
                    slot: slot.clone(),
                },
            );
        }
    }

    /// Counts and traces a request; remembers the versions an acquisition call writes.
    fn describe_send(&mut self, c: usize, req: u64, op: &WireOp) {
        let s = |i: &Item, k: &str| i.get(k).and_then(AttributeValue::as_s).map(str::to_owned);
        let (name, key, new, cond, n): (
            &'static str,
            Option<LockKey>,
            Option<String>,
            Option<String>,
            u8,
        ) = match op {
            WireOp::Core(Request::Put(p)) => {
                self.stats.req_put += 1;
                (
                    "create",
                    self.lock_key_of(&p.item),
                    s(&p.item, RVN),
                    None,
                    0,
                )
            }
            WireOp::Core(Request::Get(g)) => {
                self.stats.req_get += 1;
                ("get", self.lock_key_of(&g.key), None, None, 0)
            }
            WireOp::Core(Request::Update(u)) => {
                self.stats.req_update += 1;
                let v = &u.expression_attribute_values;
                let named = (0..)
                    .take_while(|i| v.contains_key(&format!(":v{i}")))
                    .count() as u8;
                let (name, cond) = if v.contains_key(":observed") {
                    ("steal", s(v, ":observed"))
                } else if u.expression_attribute_names.contains_key("#lease") {
                    ("release-keep", s(v, ":v0"))
                } else {
                    ("renew", s(v, ":v0"))
                };
                (name, self.lock_key_of(&u.key), s(v, ":rvn"), cond, named)
            }
            WireOp::Core(Request::Delete(d)) => {
                self.stats.req_delete += 1;
                let v = &d.expression_attribute_values;
                let named = (0..)
                    .take_while(|i| v.contains_key(&format!(":v{i}")))
                    .count() as u8;
                (
                    "release",
                    self.lock_key_of(&d.key),
                    None,
                    s(v, ":v0"),
                    named,
                )
            }
            WireOp::Transact(t) => {
                self.stats.req_transact += 1;
                let key = t.transact_items.iter().find_map(|i| match i {
                    TransactItem::ConditionCheck(c) => self.lock_key_of(&c.key),
                    _ => None,
                });
                ("transact", key, None, None, 0)
            }
        };
        let k = key.as_ref().and_then(|k| self.key_index(k));
        let new_id = new.as_deref().map_or(0, |r| self.rvn_id(r));
        let cond_id = cond.as_deref().map_or(0, |r| self.rvn_id(r));
        self.tr(Tr::Send {
            c: c as u8,
            req: req as u32,
            key: k.map_or(255, |k| k as u8),
            op: name,
            new: new_id,
            cond: cond_id,
            n,
        });
        // A write while this client's acquisition call on the key is in progress is that
        // call's (one application task per key and client).
        if let (Some(k), Some(rvn)) = (k, new)
            && matches!(name, "create" | "steal" | "renew")
            && lock(&self.app).acquiring.contains_key(&(c, k))
        {
            self.keystate[k].writing.entry(c).or_default().push(rvn);
        }
    }

    fn lock_key_of(&self, item: &Item) -> Option<LockKey> {
        let t = &self.s.table;
        let id = item.get(t.partition_key_name())?.as_s()?;
        let group = item.get(t.sort_key_name())?.as_s()?;
        Some(LockKey {
            group: group.to_owned(),
            id: id.to_owned(),
        })
    }

    fn outage_now(&self) -> Option<Outage> {
        self.outage
            .filter(|(_, until)| self.t < *until)
            .map(|(k, _)| k)
    }

    /// One network hop's delay: calm, or (in chaos) sometimes very long.
    fn hop_delay(&mut self, req: u64) -> u64 {
        if self.outage_now() == Some(Outage::Slow) {
            self.stats.f_outage_hits += 1;
            self.rng.range(LONG_DELAY.0, LONG_DELAY.1)
        } else if self.chaos && self.rng.chance(self.s.faults.long_delay) {
            self.stats.f_long_delay += 1;
            let d = self.rng.range(LONG_DELAY.0, LONG_DELAY.1);
            self.tr(Tr::ReqLong {
                req: req as u32,
                ms: (d / MS) as u32,
            });
            d
        } else if self.chaos {
            self.rng.range(CHAOS_DELAY.0, CHAOS_DELAY.1)
        } else {
            self.rng.range(CALM_DELAY.0, CALM_DELAY.1)
        }
    }

    fn reply(
        &mut self,
        c: usize,
        req: u64,
        op: &WireOp,
        slot: SlotRef,
        outcome: Result<WireOk, Error>,
    ) {
        let encoded = match wire::encode_response(op, &outcome) {
            Ok(r) => r,
            Err(e) => {
                self.violation(
                    "model",
                    format!("could not encode the answer to #{req}: {e}"),
                );
                return;
            }
        };
        let outage = self.outage_now();
        if outage == Some(Outage::LostResponses)
            || self.chaos && self.rng.chance(self.s.faults.resp_drop)
        {
            self.stats.f_resp_drop += 1;
            self.tr(Tr::RespDropped { req: req as u32 });
            return;
        }
        let d = self.hop_delay(req);
        self.at(
            self.t + d,
            Ev::Reply {
                c,
                req,
                slot,
                reply: Ok(encoded),
            },
        );
    }

    /// Answers request `req` with `e` without applying it.
    fn refuse(
        &mut self,
        c: usize,
        req: u64,
        op: WireOp,
        slot: SlotRef,
        what: &'static str,
        e: Error,
    ) {
        self.tr(Tr::Db {
            req: req as u32,
            what,
            item: 0,
            owner: -1,
        });
        self.reply(c, req, &op, slot, Err(e));
    }

    fn db_arrive(&mut self, c: usize, req: u64, op: WireOp, slot: SlotRef) {
        let f = self.s.faults.clone();
        let rq = req as u32;
        let outage = self.outage_now();
        if matches!(outage, Some(Outage::Throttle | Outage::ServerErrors)) {
            self.stats.f_outage_hits += 1;
        }
        if outage == Some(Outage::Throttle) || self.chaos && self.rng.chance(f.throttle) {
            self.stats.f_throttle += 1;
            let e = Error::Throttled {
                code: "ProvisionedThroughputExceededException".into(),
                message: "simulated".into(),
            };
            return self.refuse(c, req, op, slot, "throttled", e);
        }
        if outage == Some(Outage::ServerErrors) && self.rng.chance(0.5)
            || self.chaos && self.rng.chance(f.e5xx_before)
        {
            self.stats.f_5xx_before += 1;
            let e = Error::Server {
                status: 500,
                code: "InternalServerError".into(),
                message: "simulated, not applied".into(),
            };
            return self.refuse(c, req, op, slot, "5xx before", e);
        }
        if self.chaos && self.rng.chance(f.conflict) {
            self.stats.f_conflict += 1;
            let e = match &op {
                WireOp::Transact(t) => Error::TransactionCanceled {
                    reasons: (0..t.transact_items.len())
                        .map(|i| ddb_lock::dynamodb::CancellationReason {
                            code: Some(if i == 0 { "TransactionConflict" } else { "None" }.into()),
                            item: None,
                            message: (i == 0).then(|| "Transaction is ongoing for the item".into()),
                        })
                        .collect(),
                    message: "Transaction cancelled, please refer cancellation reasons for specific reasons [TransactionConflict]".into(),
                },
                WireOp::Core(_) => Error::TransactionConflict {
                    message: "Transaction is ongoing for the item".into(),
                },
            };
            return self.refuse(c, req, op, slot, "conflict", e);
        }
        let applied = match self.db.apply_wire(&op) {
            Ok(a) => a,
            Err(e) => {
                self.violation(
                    "model",
                    format!("request #{req} of c{c} refused by the simulated table: {e}\n  request: {op:?}"),
                );
                return;
            }
        };
        for e in &applied.fence_errors {
            self.violation("fence", e.clone());
        }
        for r in applied.regressions.clone() {
            self.judge_regression(c, r);
        }
        for effect in &applied.effects {
            self.on_effect(c, effect);
        }
        // What the table looks like now (for the trace).
        let key = match &op {
            WireOp::Core(Request::Put(p)) => self.lock_key_of(&p.item),
            WireOp::Core(Request::Get(g)) => self.lock_key_of(&g.key),
            WireOp::Core(Request::Update(u)) => self.lock_key_of(&u.key),
            WireOp::Core(Request::Delete(d)) => self.lock_key_of(&d.key),
            WireOp::Transact(_) => None,
        };
        let current = key.as_ref().and_then(|k| self.db.current(k).cloned());
        let (item, owner) = self.item_ids(current.as_ref());
        let what = match (&applied.outcome, &op) {
            (Ok(_), WireOp::Core(Request::Get(_))) => "read",
            (Ok(_), _) => "applied",
            (Err(Error::ConditionalCheckFailed { .. }), _) => "ccf",
            (Err(Error::TransactionCanceled { .. }), _) => "cancelled",
            (Err(_), _) => "error",
        };
        self.tr(Tr::Db {
            req: rq,
            what,
            item,
            owner,
        });
        if let (Ok(_), WireOp::Transact(t)) = (&applied.outcome, &op) {
            self.guarded_landed(c, t);
        }
        let outcome = if outage == Some(Outage::ServerErrors)
            || self.chaos && self.rng.chance(f.e5xx_after)
        {
            self.stats.f_5xx_after += 1;
            self.tr(Tr::Db {
                req: rq,
                what: "5xx after",
                item,
                owner,
            });
            Err(Error::Server {
                status: 503,
                code: "ServiceUnavailable".into(),
                message: "simulated, applied".into(),
            })
        } else if self.chaos && self.rng.chance(f.malformed_after) {
            self.stats.f_malformed_after += 1;
            Err(Error::Malformed {
                status: 200,
                reason: "simulated truncated body".into(),
            })
        } else {
            applied.outcome
        };
        self.reply(c, req, &op, slot, outcome);
    }

    fn on_effect(&mut self, c: usize, effect: &Effect) {
        match effect {
            Effect::Nothing => {}
            Effect::Acquired {
                key,
                acq,
                steal,
                prev_owner,
            } => {
                let Some(k) = self.key_index(key) else { return };
                // Progress, or an item nobody will believe in (its acquisition was cut): a
                // window that runs out after this is measured again from here.
                self.keystate[k].acquired_at = self.t;
                self.keystate[k].applied_at.insert(*acq, self.t);
                if *steal {
                    self.stats.acq_steal += 1;
                    if prev_owner.as_deref() != Some(self.s.clients[c].owner.as_str()) {
                        self.stats.takeovers += 1;
                    }
                } else {
                    self.stats.acq_create += 1;
                    self.keystate[k].life = Some((c, self.t));
                }
            }
            Effect::Renewed { key, .. } => {
                if let Some(k) = self.key_index(key) {
                    self.keystate[k].item_changed_at = self.t;
                }
            }
            Effect::Deleted { key, .. } => {
                if let Some(k) = self.key_index(key) {
                    self.keystate[k].item_changed_at = self.t;
                    self.end_life(k);
                }
            }
        }
    }

    // --- the protected resource -----------------------------------------------------------

    fn res_issue(&mut self, r: app::ResOut) {
        self.stats.work_writes += 1;
        self.tr(Tr::Work {
            c: r.client as u8,
            key: r.key as u8,
            token: r.token,
        });
        let mut delay = self.rng.range(RES_DELAY.0, RES_DELAY.1);
        if self.chaos && self.rng.chance(self.s.faults.res_long) {
            self.stats.f_res_long += 1;
            delay += self.rng.range(500 * MS, 3 * SEC);
        }
        if r.pause > 0 && self.chaos && !self.shut_down {
            // A pause right after the check, before the write leaves the process.
            self.stats.f_check_pauses += 1;
            self.start_pause(r.client, r.pause, false);
            delay += r.pause;
        }
        self.at(
            self.t + delay,
            Ev::ResLand {
                c: r.client,
                key: r.key,
                token: r.token,
                rvn: r.rvn,
                ack: r.ack,
            },
        );
    }

    /// The item of key `k` is gone (deleted, TTL): remember its lifetime and the token it
    /// ended with.
    fn end_life(&mut self, k: usize) {
        let key = self.keys[k].clone();
        let acqs = self.db.acquisitions(&key);
        let token = self.db.fence_of_acq(&key, acqs).unwrap_or(0);
        let ks = &mut self.keystate[k];
        if let Some((creator, born)) = ks.life.take() {
            ks.lives.push((creator, born, self.t, token));
        }
    }

    /// A create restarted the token below an earlier one: documented when the creators'
    /// clocks are further apart than the deleted item lived, or when the create was sent
    /// while that item still existed and landed after its deletion (`fence_base`).
    fn judge_regression(&mut self, c: usize, r: Regression) {
        let Some(k) = self.key_index(&r.key) else {
            return;
        };
        let offset = |w: &World, x: usize| i128::from(w.s.clients[x].clock.wall_offset_ns);
        let sent_at = |w: &World, token: u64, x: usize| {
            i128::from(token >> 16) * i128::from(MS) - EPOCH_NS - offset(w, x)
        };
        let sent = sent_at(self, r.new_token, c);
        let top = self.keystate[k]
            .lives
            .iter()
            .filter(|l| l.3 >= r.new_token)
            .max_by_key(|l| l.3)
            .copied();
        let Some((creator, born, died, token)) = top else {
            self.violation(
                "fence",
                format!("c{c}'s create wrote fencingToken {} <= {} but no earlier item had a higher one", r.new_token, r.max_token),
            );
            return;
        };
        let skew = offset(self, creator) - offset(self, c);
        let late = sent < i128::from(died);
        let explained = skew + i128::from(MS) >= sent - sent_at(self, token, creator);
        self.keystate[k].fence_regressed = true;
        if late {
            self.stats.fence_regressions_late_create += 1;
            self.tr(Tr::FenceRegression { documented: true });
        } else if explained {
            self.stats.fence_regressions += 1;
            self.tr(Tr::FenceRegression { documented: true });
        } else {
            self.stats.fence_regressions_undocumented += 1;
            self.violation(
                "fence",
                format!(
                    "c{c}'s create wrote fencingToken {} <= {}: the item created by c{creator} at {:.6}s (token {token}) was deleted at {:.6}s; this create was sent at {:.6}s",
                    r.new_token,
                    r.max_token,
                    born as f64 / 1e9,
                    died as f64 / 1e9,
                    sent as f64 / 1e9,
                ),
            );
        }
    }

    fn res_land(&mut self, c: usize, k: usize, token: u64, rvn: &str, ack: SlotRef) {
        let key = self.keys[k].clone();
        let acq = self.db.acq_of(rvn).map_or(0, |(_, a)| a);
        // Stale: a newer acquisition took effect at the table before this write landed.
        let stale = acq < self.db.acquisitions(&key);
        let ks = &self.keystate[k];
        let accepted = !FENCED_RESOURCE || token >= ks.res_max_token;
        self.tr(Tr::Land {
            c: c as u8,
            key: k as u8,
            token,
            stale,
            accepted,
        });
        if stale {
            self.stats.stale_landed += 1;
            if accepted {
                self.stats.stale_accepted += 1;
            }
            self.violation(
                "stale-write",
                format!(
                    "c{c}'s resource write of acquisition {acq} of k{k} landed after acquisition {} took effect",
                    self.db.acquisitions(&key)
                ),
            );
        }
        let regressed = self.keystate[k].fence_regressed;
        if accepted {
            let ks = &mut self.keystate[k];
            ks.res_max_token = ks.res_max_token.max(token);
            let below = ks.res_tokens.range(..acq).next_back().map(|(_, t)| *t);
            let above = ks.res_tokens.range(acq + 1..).next().map(|(_, t)| *t);
            ks.res_tokens.insert(acq, token);
            if below.is_some_and(|b| b >= token) || above.is_some_and(|a| a <= token) {
                if regressed {
                    self.stats.fence_misorder_after_regression += 1;
                } else {
                    self.violation(
                        "fence",
                        format!("token {token} of acquisition {acq} of k{k} is out of order with {below:?}/{above:?}"),
                    );
                }
            }
        } else {
            self.stats.fence_rejected += 1;
            if !stale && regressed {
                self.stats.fence_misorder_after_regression += 1;
            } else if !stale {
                self.violation(
                    "fence",
                    format!("the current holder c{c}'s write (token {token}, acquisition {acq} of k{k}) was rejected: tokens are not monotonic"),
                );
            }
        }
        let d = self.rng.range(RES_DELAY.0, RES_DELAY.1);
        self.at(self.t + d, Ev::ResAck { ack });
    }

    /// A `write_if_held` transaction applied: its writer's acquisition must be current.
    fn guarded_landed(&mut self, c: usize, t: &ddb_lock::dynamodb::TransactWriteItems) {
        for item in &t.transact_items {
            let TransactItem::Put(p) = item else { continue };
            if p.table_name != RESOURCE_TABLE {
                continue;
            }
            let Some(by) = p.item.get(RESOURCE_BY).and_then(AttributeValue::as_s) else {
                continue;
            };
            let Some((key, acq)) = self.db.acq_of(by).map(|(k, a)| (k.clone(), a)) else {
                continue;
            };
            let stale = acq < self.db.acquisitions(&key);
            let k = self.key_index(&key).unwrap_or(0);
            self.tr(Tr::Guarded {
                c: c as u8,
                key: k as u8,
                stale,
            });
            if stale {
                self.violation(
                    "fence",
                    format!("c{c}'s write_if_held of acquisition {acq} of k{k} was applied after acquisition {} took effect", self.db.acquisitions(&key)),
                );
            }
        }
    }

    // --- invariants -----------------------------------------------------------------------

    /// Re-evaluates every application's belief; checks exclusion and feeds liveness.
    fn check_beliefs(&mut self) {
        type Seen = ((usize, usize), Option<Arc<app::SimLock>>, bool);
        let holdings: Vec<Seen> = {
            let a = lock(&self.app);
            a.holdings
                .iter()
                .map(|(k, h)| (*k, h.lock.upgrade(), h.in_cs))
                .collect()
        };
        let mut now_beliefs: Vec<BTreeMap<usize, Belief>> = vec![BTreeMap::new(); self.keys.len()];
        for ((c, k), l, in_cs) in &holdings {
            let (Some(l), true) = (l, *in_cs) else {
                continue;
            };
            if self.clients[*c].dead {
                continue;
            }
            let LockStatus::Held { remaining, .. } = l.status() else {
                continue;
            };
            let rvn = l.record().rvn;
            let acq = self.db.acq_of(&rvn).map_or(0, |(_, a)| a);
            let clock = &self.s.clients[*c].clock;
            let until = clock.true_time_of(clock.mono(self.t) + remaining, self.t);
            now_beliefs[*k].insert(*c, Belief { acq, until });
        }
        drop(holdings);
        for (k, beliefs) in now_beliefs.into_iter().enumerate() {
            let old = std::mem::take(&mut self.keystate[k].beliefs);
            for (c, b) in &beliefs {
                if old.get(c) != Some(b) {
                    let pending = self.keystate[k].check_at.get(c).copied();
                    if pending.is_none_or(|p| p <= self.t || b.until < p) {
                        self.keystate[k].check_at.insert(*c, b.until);
                        self.at(b.until, Ev::Check);
                    }
                    if !old.contains_key(c) {
                        self.tr(Tr::Belief {
                            c: *c as u8,
                            key: k as u8,
                            on: true,
                            ms_left: ((b.until - self.t) / MS) as u32,
                        });
                    }
                }
            }
            for c in old.keys() {
                if !beliefs.contains_key(c) {
                    self.tr(Tr::Belief {
                        c: *c as u8,
                        key: k as u8,
                        on: false,
                        ms_left: 0,
                    });
                }
            }
            if beliefs.len() >= 2 {
                let mut it = beliefs.iter();
                let (a, ba) = it.next().unwrap();
                let (b, bb) = it.next().unwrap();
                if self.keystate[k].overlaps_seen.insert((ba.acq, bb.acq)) {
                    let msg = format!(
                        "two holders of k{k} at once: c{a} (acquisition {}) and c{b} (acquisition {})",
                        ba.acq, bb.acq
                    );
                    self.violation("exclusion", msg);
                    if self.stopped {
                        return;
                    }
                }
            }
            let no_holder = beliefs.is_empty();
            self.keystate[k].beliefs = beliefs;
            self.live_update(k, no_holder);
        }
    }

    /// Patient waiters of key `k` (blocking `lock()` without timeout or retry limit, or a
    /// `try_lock` loop) that are alive.
    fn waiting(&self, k: usize) -> Vec<usize> {
        let a = lock(&self.app);
        a.waiting
            .keys()
            .filter(|(c, key)| *key == k && !self.clients[*c].dead)
            .map(|(c, _)| *c)
            .collect()
    }

    fn live_update(&mut self, k: usize, no_holder: bool) {
        if self.shut_down {
            self.keystate[k].window = None;
            return;
        }
        let waiting = !self.waiting(k).is_empty();
        if no_holder && !waiting {
            self.keystate[k].window = None;
            return;
        }
        if !no_holder {
            if let Some(w) = self.keystate[k].window.take() {
                let took = self.t - w.start;
                self.tr(Tr::LiveEnd {
                    key: k as u8,
                    took_ms: (took / MS) as u32,
                });
                if self.settled_at.is_some_and(|s| s <= w.start) {
                    self.stats.live_checked += 1;
                    self.stats.live_met += 1;
                    let permille = took * 1000 / w.bound.max(1);
                    if permille > self.stats.live_max_permille {
                        self.stats.live_max_permille = permille;
                        self.live_max_at = Some(w.start);
                    }
                }
            }
            return;
        }
        if self.settled_at.is_none() {
            return;
        }
        let ks = &self.keystate[k];
        if ks
            .window
            .as_ref()
            .is_some_and(|w| w.start >= ks.item_changed_at)
        {
            return;
        }
        let bound = self.live_bound(k);
        let ks = &mut self.keystate[k];
        ks.window_gen += 1;
        let epoch = ks.window_gen;
        self.stats.live_windows += 1;
        ks.window = Some(Window {
            epoch,
            start: self.t,
            bound,
        });
        let checked = self.settled_at.is_some_and(|s| s <= self.t);
        self.tr(Tr::LiveStart {
            key: k as u8,
            bound_ms: (bound / MS) as u32,
            checked,
        });
        self.at(self.t + bound, Ev::LiveDeadline { key: k, epoch });
    }

    /// The liveness bound from now, on a calm network (round trip <= `rtt`), every waiter's
    /// clock at least `1 - rho` fast:
    /// * item absent: the next request of a waiter is at most one poll interval away, then a
    ///   read and a create: `P/(1-rho) + 3 rtt`;
    /// * item present, its holder gone: the waiters watch the version for its lease
    ///   (`trust_local_time`: until the stored expiry plus skew by their wall clocks):
    ///   `(P + L [+ skew + spread])/(1-rho) + 4 rtt`;
    /// * a `try_lock` loop continues its watch across calls but sleeps up to a poll interval
    ///   between them, and its first call may only learn the version: up to one more lease.
    ///
    /// Plus 25 ms for rounding and ties, and the backoff caps of a few failed requests.
    fn live_bound(&self, k: usize) -> u64 {
        let slow = 1.0 - self.s.rho_ppm as f64 / 1e6;
        let rtt = 2 * CALM_DELAY.1;
        let p_max = self.s.clients.iter().map(|c| dur_ns(c.poll)).max().unwrap();
        let trust_extra = if self.s.clients.iter().any(|c| c.trust) {
            let skew = self
                .s
                .clients
                .iter()
                .filter(|c| c.trust)
                .map(|c| dur_ns(c.skew))
                .max()
                .unwrap();
            skew + self.s.wall_spread + 2 * MS
        } else {
            0
        };
        let record = self
            .db
            .current(&self.keys[k])
            .and_then(|i| LockRecord::from_item(i).ok());
        let clock = match &record {
            None => p_max,
            Some(r) => p_max + dur_ns(r.lease) + trust_extra,
        };
        let rtts = if record.is_some() { 4 } else { 3 };
        let tight = (clock as f64 / slow) as u64 + rtts * rtt + 25 * MS;
        // A `try_lock` loop sleeps up to a poll interval between calls, and may have to watch
        // the current version for a whole lease after a refused takeover of a remembered one:
        // when only such loops wait, the lock may be handed over up to two leases late.
        let waiting = self.waiting(k);
        let only_try = waiting.iter().all(|&c| {
            self.s.clients[c]
                .tasks
                .iter()
                .any(|t| t.key == k && t.try_loop)
        });
        if only_try {
            let max_lease = self
                .s
                .clients
                .iter()
                .map(|c| dur_ns(c.lease))
                .max()
                .unwrap();
            let cur_lease = record.as_ref().map_or(0, |r| dur_ns(r.lease));
            let loose = ((p_max + max_lease + cur_lease + 2 * trust_extra) as f64 / slow) as u64
                + 6 * rtt
                + 25 * MS;
            tight.max(loose)
        } else {
            tight
        }
    }

    fn live_deadline(&mut self, k: usize, epoch: u64) {
        let Some(w) = &self.keystate[k].window else {
            return;
        };
        if w.epoch != epoch {
            return;
        }
        let (start, bound) = (w.start, w.bound);
        self.keystate[k].window = None;
        if self.keystate[k].acquired_at > start {
            // Someone acquired meanwhile but nobody believes: an acquisition cut short (its
            // item is cleaned up, or watched for a lease). Measure the wait from then.
            let since = self.keystate[k].acquired_at;
            let bound = self.live_bound(k);
            let ks = &mut self.keystate[k];
            ks.window_gen += 1;
            let epoch = ks.window_gen;
            ks.window = Some(Window {
                epoch,
                start: since,
                bound,
            });
            self.at(since + bound, Ev::LiveDeadline { key: k, epoch });
            return;
        }
        if self.settled_at.is_some_and(|s| s <= start) && !self.shut_down {
            self.stats.live_checked += 1;
            let waiting = self.waiting(k);
            let item = self
                .db
                .current(&self.keys[k])
                .and_then(|i| LockRecord::from_item(i).ok())
                .map(|r| (r.owner, r.rvn));
            self.violation(
                "liveness",
                format!(
                    "nobody acquired k{k} within {:.3}s (bound) of t={:.6}s on a calm network; waiting: {waiting:?}; item: {item:?}",
                    bound as f64 / 1e9,
                    start as f64 / 1e9,
                ),
            );
        }
    }

    /// After the shutdown settled: every live client's registry is empty, no request answer
    /// went unmatched, every `release_all` returned, and no item of a live client is left
    /// that could block anyone (abandoned locks aside).
    fn final_checks(&mut self) {
        for c in 0..self.clients.len() {
            let st = self.clients[c].client.stats();
            if st.unexpected_responses > 0 {
                self.violation(
                    "other",
                    format!(
                        "c{c} got {} answers for requests not in flight",
                        st.unexpected_responses
                    ),
                );
            }
            if self.clients[c].dead {
                continue;
            }
            let active = self.clients[c].client.active_count();
            if active > 0 {
                self.violation(
                    "leak",
                    format!(
                        "c{c} still looks after {active} locks after release_all and a calm settle"
                    ),
                );
            }
        }
        let pending: Vec<String> = lock(&self.app)
            .calls
            .values()
            .filter(|c| !self.clients[c.client].dead)
            .map(|c| format!("c{} {:?}", c.client, c.kind))
            .collect();
        if !pending.is_empty() {
            self.violation("bound", format!("calls never returned: {pending:?}"));
        }
        let shutdown_at = self.s.duration;
        for k in 0..self.keys.len() {
            let Some(r) = self
                .db
                .current(&self.keys[k])
                .and_then(|i| LockRecord::from_item(i).ok())
            else {
                continue;
            };
            let Some(c) = self.s.clients.iter().position(|cfg| cfg.owner == r.owner) else {
                continue;
            };
            let owners_dead = self
                .s
                .clients
                .iter()
                .enumerate()
                .any(|(i, cfg)| cfg.owner == r.owner && self.clients[i].dead);
            if owners_dead || r.lease.is_zero() || self.keystate[k].abandoned.contains(&r.rvn) {
                continue;
            }
            // Written (by its writer's wall clock) after the shutdown: a lock still renewed
            // or acquired after every application stopped and `release_all` began. (An item
            // left by a release that could not be confirmed before the shutdown, or by a
            // write that landed late, expires with its lease, as a crashed holder's would.)
            // (Clients may share an owner name: the one whose clock is furthest ahead.)
            let wall_at_shutdown = self
                .s
                .clients
                .iter()
                .filter(|cfg| cfg.owner == r.owner)
                .map(|cfg| cfg.clock.wall(shutdown_at))
                .max()
                .unwrap_or_else(|| self.s.clients[c].clock.wall(shutdown_at));
            if r.last_updated > wall_at_shutdown {
                self.violation(
                    "leak",
                    format!(
                        "k{k}'s item of {} (version {}) was written after the shutdown",
                        r.owner, r.rvn
                    ),
                );
            } else {
                // Left behind, expiring with its lease: counted.
                self.stats.items_left += 1;
                let acq = self.db.acq_of(&r.rvn).map_or(0, |(_, a)| a);
                if self.keystate[k]
                    .applied_at
                    .get(&acq)
                    .is_some_and(|t| *t > shutdown_at)
                {
                    self.stats.late_landings += 1;
                }
            }
        }
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
