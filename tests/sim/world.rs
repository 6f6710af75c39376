//! The discrete-event world: true time in ns, one event queue, one seeded generator, the
//! simulated table, the network, the clients (each driving the core's machines the way
//! `src/client.rs` does), the protected resource, and the invariant checks.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::time::Duration;

use ddb_lock::core::{
    Acquire, AcquireError, Acquired, Held, Layout, LockKey, LockRecord, LossReason, Observation,
    Outcome, ReleaseError, ReleaseOutcome, Request, Step,
};
use ddb_lock::dynamodb::transact_write_items::{TransactItem, TransactTarget};
use ddb_lock::dynamodb::{AttributeValue, Error, Item, TransportError};
use ddb_lock::time::{Instant, Now};

use super::clock::EPOCH_NS;
use super::clock::server_wall;
use super::db::{Db, Effect, OWNER, RVN, Regression, check_condition};
use super::rng::SimRng;
use super::scenario::{
    CALM_DELAY, CHAOS_DELAY, LONG_DELAY, MS, OUTAGE_LEN, RES_DELAY, SEC, Scenario, WORK_BUDGET,
};
use super::stats::Stats;
use super::trace::{Op, Tr, Trace};

/// No client sends more than this many requests in any one second of true time. The core
/// implies it: between two requests of a client there is a poll/renewal wait (at least
/// `min(poll_interval, prolong_every) >= 100 ms` here), or a backoff (at least 10 ms, doubling
/// up to a cap of `poll_interval` or `prolong_every/4`, reset only by an observation that is
/// itself followed by a poll wait), or one of at most two immediate follow-ups that need a
/// change at the table (item vanished: create at once; version watched for a lease: take over).
pub const STORM_MAX_PER_SEC: usize = 50;

/// Trace lines printed with a failing seed.
pub const TRACE_TAIL: usize = 80;

// --- fencing hook -------------------------------------------------------------------------

/// Where a holder's fencing token comes from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum FenceSource {
    /// The simulator's ledger: the number of the acquisition, in the order the table applied
    /// them (what a perfect token would be; it makes the token-order check in `res_land`
    /// trivially true). For comparison runs.
    #[allow(dead_code)]
    Ledger,
    /// The core's own token (`LockRecord::fence`, `Lock::fencing_token`).
    Core,
}

/// The tokens holders present. The table-side checks in `db.rs` (a takeover adds exactly one,
/// the holder's writes leave it alone, a create after a deletion restarts from the clock)
/// run on whatever the core writes, whichever source is chosen here.
pub const FENCE_SOURCE: FenceSource = FenceSource::Core;

/// The resource rejects writes whose token is below the highest it has accepted.
pub const FENCED_RESOURCE: bool = true;

/// Core issues found and reported, counted under "known" in the summary and not failed until
/// fixed: a renewal refused by its own duplicate reported as `Stolen` by itself; a late
/// renewal answer bringing an expired lock back; a `try_lock` loop handing over a released
/// lock late; a create landing after a later deletion with an older token. Set to `true` to
/// make them fail the test.
pub const FAIL_ON_KNOWN_CORE_ISSUES: bool = false;

/// The token a holder presents to the protected resource.
fn fence_token(held: &Held, db: &Db) -> Option<u64> {
    match FENCE_SOURCE {
        FenceSource::Ledger => db.acq_of(&held.record().rvn),
        FenceSource::Core => held.record().fence,
    }
}

/// A write to the protected resource.
enum ResWrite {
    /// Carries a fencing token; the resource keeps the highest it accepted.
    Token(u64),
    /// `Lock::write_if_held`: one transaction with the lock's `still_held` condition check,
    /// applied atomically at the table when it lands.
    Guarded(Box<TransactTarget>),
}

// --- events -------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    Acquire,
    Renew,
    Release,
}

enum Ev {
    Wake {
        c: usize,
        epoch: u64,
    },
    DbArrive {
        c: usize,
        req_id: u64,
        req: Box<Request>,
    },
    Response {
        c: usize,
        req_id: u64,
        outcome: Box<Outcome>,
    },
    Timeout {
        c: usize,
        req_id: u64,
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
        acq: u64,
    },
    TtlSweep,
    Phase {
        index: usize,
    },
    ResLand {
        c: usize,
        acq: u64,
        write: ResWrite,
    },
    ResAck {
        c: usize,
    },
    BeliefEnd {
        c: usize,
    },
    LiveDeadline {
        epoch: u64,
    },
    Outage {
        kind: Outage,
        until: u64,
    },
    Stop,
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

// --- clients ------------------------------------------------------------------------------

struct Holding {
    held: Held,
    acq: u64,
    hold_until: Instant,
    releasing: bool,
    /// The handle was dropped without a release (`Held::abandon`): the item stays.
    abandoned: bool,
    /// The renewal side finished (lost).
    renew_over: bool,
    release_after_loss: bool,
    work_inflight: bool,
    next_work: Instant,
    work_every: Duration,
}

enum Phase {
    /// Not acquiring; `waiting`: between two `try_lock` calls (still wants the lock).
    Idle {
        until: Instant,
        waiting: bool,
    },
    Acquiring {
        m: Box<Acquire>,
    },
    Holding(Box<Holding>),
}

struct Inflight {
    req_id: u64,
    tag: Tag,
}

struct Client {
    phase: Phase,
    inflight: Option<Inflight>,
    timer_gen: u64,
    timer_at: Option<u64>,
    paused: bool,
    pause_gen: u64,
    deferred: Vec<Ev>,
    dead: bool,
    sent: VecDeque<u64>,
    /// Whether it believed it held the lock after the last event, and for which acquisition.
    believed: bool,
    last_acq: u64,
    belief_end_at: Option<u64>,
    /// The last acquisition met another holder (client.rs: the next one reads first).
    contended: bool,
    /// What the last `try_lock` saw (client.rs keeps it per key for the next `try_lock`).
    observation: Option<Observation>,
    paused_until: u64,
}

// --- liveness -----------------------------------------------------------------------------

struct Window {
    epoch: u64,
    start: u64,
    /// The deadline's distance from `start`.
    bound: u64,
    /// The bound a waiter that reads (a blocking `lock`) meets; `bound` is longer when only
    /// `try_lock` loops wait (see `live_bound`).
    tight: u64,
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
    /// The first known core issue seen, with its details.
    pub known_note: Option<String>,
}

pub struct World {
    s: Scenario,
    rng: SimRng,
    t: u64,
    seq: u64,
    queue: BinaryHeap<Queued>,
    db: Db,
    layout: Layout,
    clients: Vec<Client>,
    next_req: u64,
    chaos: bool,
    /// Since when liveness may be checked (calm and settled), if the network is calm.
    settled_at: Option<u64>,
    deaths: usize,
    trace: Trace,
    stats: Stats,
    stopped: bool,
    failure: Option<String>,
    beyond_note: Option<String>,
    rvn_ids: HashMap<String, u32>,
    owner_ids: HashMap<String, i8>,
    // invariants
    overlaps_seen: HashSet<(u64, u64)>,
    window: Option<Window>,
    window_gen: u64,
    item_changed_at: u64,
    res_max_token: u64,
    res_tokens: BTreeMap<u64, u64>,
    live_max_at: Option<u64>,
    outage: Option<(Outage, u64)>,
    /// A create restarted the token below an earlier one (documented as possible).
    fence_regressed: bool,
    /// The lock item's creator (client) and creation time; ended lifetimes: creator,
    /// creation, deletion, the highest token written in it.
    life: Option<(usize, u64)>,
    lives: Vec<(usize, u64, u64, u64)>,
    /// First known core issue seen (reported, not failed: see `FAIL_ON_KNOWN_CORE_ISSUES`).
    known_note: Option<String>,
}

fn dur_ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

fn code_of(e: &Error) -> u8 {
    match e {
        Error::ConditionalCheckFailed { .. } => 1,
        Error::Throttled { .. } => 2,
        Error::Server { .. } => 3,
        Error::Transport(_) => 4,
        Error::Malformed { .. } => 5,
        _ => 6,
    }
}

impl World {
    pub fn new(seed: u64, echo: bool) -> World {
        let mut rng = SimRng::seeded(seed);
        let s = Scenario::generate(seed, &mut rng);
        let db = Db::new(&s.table);
        let layout = Layout::new(
            s.table.clone(),
            LockKey {
                group: "sim".into(),
                id: "the-lock".into(),
            },
        );
        let mut owner_ids = HashMap::new();
        for (i, c) in s.clients.iter().enumerate() {
            owner_ids.entry(c.owner.clone()).or_insert(i as i8);
        }
        let clients = s
            .clients
            .iter()
            .map(|_| Client {
                phase: Phase::Idle {
                    until: Instant::ZERO,
                    waiting: false,
                },
                inflight: None,
                timer_gen: 0,
                timer_at: None,
                paused: false,
                pause_gen: 0,
                deferred: Vec::new(),
                dead: false,
                sent: VecDeque::new(),
                believed: false,
                last_acq: 0,
                belief_end_at: None,
                contended: false,
                observation: None,
                paused_until: 0,
            })
            .collect();
        let mut w = World {
            rng,
            t: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            db,
            layout,
            clients,
            next_req: 0,
            chaos: false,
            settled_at: Some(0),
            deaths: 0,
            trace: Trace::new(TRACE_TAIL, echo),
            stats: Stats::default(),
            stopped: false,
            failure: None,
            beyond_note: None,
            rvn_ids: HashMap::new(),
            owner_ids,
            overlaps_seen: HashSet::new(),
            window: None,
            window_gen: 0,
            item_changed_at: 0,
            res_max_token: 0,
            res_tokens: BTreeMap::new(),
            live_max_at: None,
            outage: None,
            fence_regressed: false,
            life: None,
            lives: Vec::new(),
            known_note: None,
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

    fn now_of(&self, c: usize) -> Now {
        self.s.clients[c].clock.now(self.t)
    }

    // --- violations -----------------------------------------------------------------------

    /// A known core issue (see `FAIL_ON_KNOWN_CORE_ISSUES`): the first is kept as a note.
    fn known_issue(&mut self, msg: impl FnOnce() -> String) {
        if FAIL_ON_KNOWN_CORE_ISSUES && !self.s.beyond {
            self.violation("known", msg());
        } else if self.known_note.is_none() {
            self.known_note = Some(msg());
        }
    }

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
            ("known", _) => self.stats.v_known += 1,
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
            "VIOLATION [{kind}] at t={:.6}s: {msg}\n{}  last {} events:\n{}  rerun: SIM_SEED={} SIM_TRACE=1 cargo test --release --test simulation -- --nocapture simulate\n",
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
        let d = self.s.duration;
        self.at(d, Ev::Stop);
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
                let (start, end) = self.s.clients[c].clock.freezes[i];
                self.at(
                    start,
                    Ev::PauseStart {
                        c,
                        dur: end - start,
                        suspend: true,
                    },
                );
            }
        }
        for c in 0..self.clients.len() {
            let start = self.rng.range(0, SEC);
            let until = self.s.clients[c].clock.mono(start);
            self.clients[c].phase = Phase::Idle {
                until,
                waiting: false,
            };
            self.drive(c);
        }
        while let Some(q) = self.queue.pop() {
            if self.stopped {
                break;
            }
            self.t = q.t;
            if matches!(q.ev, Ev::Stop) {
                break;
            }
            self.stats.events += 1;
            self.event(q.ev);
            if !self.stopped {
                self.check_after_event();
            }
        }
        self.stats.virtual_ms = self.t / MS;
        RunResult {
            seed: self.s.seed,
            hash: self.trace.hash(),
            stats: self.stats,
            failure: self.failure,
            beyond_note: self.beyond_note,
            live_max_at: self.live_max_at,
            known_note: self.known_note,
        }
    }

    fn event(&mut self, ev: Ev) {
        // A paused process handles nothing; its events wait until it resumes, in order.
        let client_of = match &ev {
            Ev::Wake { c, .. }
            | Ev::Response { c, .. }
            | Ev::Timeout { c, .. }
            | Ev::ResAck { c } => Some(*c),
            _ => None,
        };
        if let Some(c) = client_of {
            if self.clients[c].dead {
                if matches!(ev, Ev::Response { .. }) {
                    self.stats.late_responses += 1;
                }
                return;
            }
            if self.clients[c].paused {
                self.clients[c].deferred.push(ev);
                return;
            }
        }
        match ev {
            Ev::Wake { c, epoch } => {
                if self.clients[c].timer_gen == epoch {
                    self.clients[c].timer_at = None;
                    self.drive(c);
                }
            }
            Ev::DbArrive { c, req_id, req } => self.db_arrive(c, req_id, *req),
            Ev::Response { c, req_id, outcome } => self.on_response(c, req_id, *outcome),
            Ev::Timeout { c, req_id } => {
                if self.clients[c]
                    .inflight
                    .as_ref()
                    .is_some_and(|f| f.req_id == req_id)
                {
                    self.stats.f_timeouts += 1;
                    self.tr(Tr::Timeout {
                        c: c as u8,
                        req: req_id as u32,
                    });
                    self.deliver(c, Err(Error::Transport(TransportError::timeout())));
                }
            }
            Ev::PauseStart { c, dur, suspend } => self.start_pause(c, dur, suspend),
            Ev::PauseEnd { c, epoch } => {
                if self.clients[c].pause_gen == epoch
                    && self.clients[c].paused
                    && !self.clients[c].dead
                {
                    self.clients[c].paused = false;
                    self.tr(Tr::Resume { c: c as u8 });
                    let deferred = std::mem::take(&mut self.clients[c].deferred);
                    for ev in deferred {
                        self.event(ev);
                        if self.stopped {
                            return;
                        }
                    }
                    self.drive(c);
                }
            }
            Ev::Die { c, acq } => {
                let holding = matches!(&self.clients[c].phase, Phase::Holding(h) if h.acq == acq);
                if holding && !self.clients[c].dead {
                    self.clients[c].dead = true;
                    self.clients[c].inflight = None;
                    self.stats.f_deaths += 1;
                    self.tr(Tr::Die { c: c as u8 });
                }
            }
            Ev::TtlSweep => {
                let now_secs = server_wall(self.t).as_secs();
                for acq in self.db.ttl_sweep(now_secs) {
                    self.stats.f_ttl_deletes += 1;
                    self.item_changed_at = self.t;
                    self.end_life();
                    self.tr(Tr::Ttl { acq: acq as u32 });
                }
                let next = self.t + self.rng.range(500 * MS, 3 * SEC);
                self.at(next, Ev::TtlSweep);
            }
            Ev::Phase { index } => self.phase(index),
            Ev::ResLand { c, acq, write } => self.res_land(c, acq, write),
            Ev::ResAck { c } => {
                if let Phase::Holding(h) = &mut self.clients[c].phase {
                    h.work_inflight = false;
                }
                self.drive(c);
            }
            Ev::BeliefEnd { c } => {
                if self.clients[c].belief_end_at == Some(self.t) {
                    self.clients[c].belief_end_at = None;
                    self.tr(Tr::BeliefEnd { c: c as u8 });
                }
            }
            Ev::LiveDeadline { epoch } => self.live_deadline(epoch),
            Ev::Outage { kind, until } => {
                self.stats.f_outages += 1;
                self.outage = Some((kind, until));
                self.tr(Tr::Outage {
                    kind: kind as u8,
                    ms: ((until - self.t) / MS) as u32,
                });
            }
            Ev::Stop => {}
        }
    }

    fn phase(&mut self, index: usize) {
        let chaos = self.s.phases[index].1;
        let end = self
            .s
            .phases
            .get(index + 1)
            .map_or(self.s.duration, |p| p.0);
        self.chaos = chaos;
        self.tr(Tr::Phase { chaos });
        if chaos {
            self.settled_at = None;
            self.window = None;
            // Outages, each within this phase (stragglers are covered by the settle time).
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
            // Random process pauses during this chaos phase (Poisson per client).
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
        let cl = &mut self.clients[c];
        if cl.dead || (cl.paused && cl.paused_until >= t + dur) {
            return;
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

    // --- the client driver (mirrors src/client.rs) ------------------------------------------

    fn set_timer(&mut self, c: usize, wake: Option<Instant>) {
        let t = wake.map(|w| self.s.clients[c].clock.true_time_of(w, self.t));
        if t == self.clients[c].timer_at {
            return;
        }
        let cl = &mut self.clients[c];
        cl.timer_gen += 1;
        cl.timer_at = t;
        let epoch = cl.timer_gen;
        if let Some(t) = t {
            self.at(t, Ev::Wake { c, epoch });
        }
    }

    fn check_sleep(&mut self, c: usize, what: &str, deadline: Instant, now: Now) -> bool {
        if deadline <= now.mono {
            self.violation(
                "spin",
                format!(
                    "c{c} {what} returned Sleep({deadline:?}) at now {:?}: the deadline does not move forward",
                    now.mono
                ),
            );
            return false;
        }
        true
    }

    /// Runs client `c` until it waits for something (a response, a timer, an ack).
    fn drive(&mut self, c: usize) {
        if self.stopped || self.clients[c].dead || self.clients[c].paused {
            return;
        }
        let mut phase = std::mem::replace(
            &mut self.clients[c].phase,
            Phase::Idle {
                until: Instant::ZERO,
                waiting: false,
            },
        );
        let mut wake: Option<Instant> = None;
        let mut steps = 0;
        loop {
            steps += 1;
            if steps > 64 {
                // Every pass either waits or moves to another phase; 64 passes at one instant
                // is a loop (e.g. acquired and lost at once, over and over).
                self.violation(
                    "spin",
                    format!("c{c}'s driver made 64 passes at one instant without waiting"),
                );
                break;
            }
            if self.stopped || self.clients[c].paused {
                break;
            }
            let now = self.now_of(c);
            let inflight = self.clients[c].inflight.is_some();
            match &mut phase {
                Phase::Idle { until, .. } => {
                    if now.mono < *until {
                        wake = Some(*until);
                        break;
                    }
                    // As client.rs: an attempt continues the watch of the previous one (a
                    // try_lock, or a lock that gave up); with an observation, or on a key
                    // contended lately, it starts with a read.
                    let cfg = &self.s.clients[c];
                    let try_only = cfg.try_loop;
                    let prior = self.clients[c].observation.clone();
                    let read_first = prior.is_some() || self.clients[c].contended;
                    let m = Acquire::new(
                        self.layout.clone(),
                        cfg.owner.clone(),
                        cfg.opts.clone(),
                        try_only,
                        prior,
                        read_first,
                        self.rng.core_rng(),
                        now,
                    );
                    self.tr(Tr::AcquireStart { c: c as u8 });
                    phase = Phase::Acquiring { m: Box::new(m) };
                }
                Phase::Acquiring { m } => {
                    if inflight {
                        break;
                    }
                    match m.poll(now) {
                        Step::Send(req) => {
                            // Polling again before the answer must not send again.
                            if !matches!(m.poll(now), Step::AwaitResponse) {
                                self.violation("other", format!("c{c} acquire: second poll without a response did not await it"));
                            }
                            self.send(c, req, Tag::Acquire, now);
                            break;
                        }
                        Step::Sleep(d) => {
                            if self.check_sleep(c, "Acquire::poll", d, now) {
                                wake = Some(d);
                            }
                            break;
                        }
                        Step::AwaitResponse => {
                            self.violation(
                                "other",
                                format!("c{c} acquire awaits a response nothing was sent for"),
                            );
                            break;
                        }
                        Step::Done(result) => {
                            self.clients[c].contended = m.contended();
                            match result {
                                Ok(a) => {
                                    self.clients[c].observation = None;
                                    match self.on_acquired(c, a, now) {
                                        Some(h) => phase = Phase::Holding(Box::new(h)),
                                        None => break,
                                    }
                                }
                                Err(AcquireError::Busy(busy)) => {
                                    // try_lock: come back when a takeover could be tried, or
                                    // after a poll interval to notice a release.
                                    self.stats.busy += 1;
                                    let again = busy.retry_after.min(self.s.clients[c].poll);
                                    self.clients[c].observation = Some(busy.observation);
                                    phase = Phase::Idle {
                                        until: now.mono + again,
                                        waiting: true,
                                    };
                                }
                                Err(
                                    AcquireError::Timeout { .. } | AcquireError::MaxRetries { .. },
                                ) => {
                                    self.clients[c].observation = m.observation().cloned();
                                    self.stats.gave_up += 1;
                                    self.tr(Tr::GaveUp { c: c as u8 });
                                    let idle = self.rng.range(0, self.s.idle_max);
                                    phase = Phase::Idle {
                                        until: now.mono + Duration::from_nanos(idle),
                                        waiting: false,
                                    };
                                }
                                Err(e) => {
                                    self.violation("other", format!("c{c} acquire failed: {e:?}"));
                                    break;
                                }
                            }
                        }
                    }
                }
                Phase::Holding(h) => {
                    // The application: stop using the lock at the end of its hold time, or
                    // when it learns the lock is lost; release it (also after an expiry,
                    // half of the time); never with a resource write still outstanding.
                    if !h.releasing {
                        if h.renew_over
                            && (h.abandoned || !h.release_after_loss)
                            && !h.work_inflight
                        {
                            let idle = self.rng.range(0, self.s.idle_max);
                            phase = Phase::Idle {
                                until: now.mono + Duration::from_nanos(idle),
                                waiting: false,
                            };
                            continue;
                        }
                        let want =
                            now.mono >= h.hold_until || (h.renew_over && h.release_after_loss);
                        if want && !h.work_inflight && !h.abandoned && self.rng.chance(0.1) {
                            // Drop the handle instead of releasing (client.rs `Drop for Lock`).
                            h.abandoned = true;
                            h.held.abandon();
                            self.tr(Tr::Abandon { c: c as u8 });
                        }
                        if want && !h.work_inflight && !h.abandoned {
                            h.releasing = true;
                            h.held.begin_release();
                            self.tr(Tr::ReleaseBegin { c: c as u8 });
                            continue;
                        }
                    }
                    if h.releasing {
                        if inflight {
                            break;
                        }
                        match h.held.poll_release(now) {
                            Step::Send(req) => {
                                self.send(c, req, Tag::Release, now);
                                break;
                            }
                            Step::Sleep(d) => {
                                if self.check_sleep(c, "Held::poll_release", d, now) {
                                    wake = Some(d);
                                }
                                break;
                            }
                            Step::AwaitResponse => {
                                self.violation(
                                    "other",
                                    format!("c{c} release awaits a response nothing was sent for"),
                                );
                                break;
                            }
                            Step::Done(r) => {
                                self.on_released(c, &r);
                                let idle = self.rng.range(0, self.s.idle_max);
                                phase = Phase::Idle {
                                    until: now.mono + Duration::from_nanos(idle),
                                    waiting: false,
                                };
                                continue;
                            }
                        }
                    }
                    // Work on the protected resource while the lock has time left.
                    if !h.renew_over && !h.abandoned && !h.work_inflight && now.mono >= h.next_work
                    {
                        h.next_work = now.mono + h.work_every;
                        if h.held.remaining(now.mono) >= WORK_BUDGET {
                            let write = if self.rng.chance(0.5) {
                                match h.held.still_held(now.mono) {
                                    Some(TransactItem::ConditionCheck(t)) => {
                                        Some(ResWrite::Guarded(Box::new(t)))
                                    }
                                    other => {
                                        self.violation(
                                            "other",
                                            format!("c{c} still_held while held: {other:?}"),
                                        );
                                        None
                                    }
                                }
                            } else {
                                match fence_token(&h.held, &self.db) {
                                    Some(t) => Some(ResWrite::Token(t)),
                                    None => {
                                        self.violation(
                                            "fence",
                                            format!(
                                                "c{c} holds acquisition {} without a fencing token",
                                                h.acq
                                            ),
                                        );
                                        None
                                    }
                                }
                            };
                            let Some(write) = write else { break };
                            h.work_inflight = true;
                            let acq = h.acq;
                            self.issue_work(c, acq, write);
                            if self.clients[c].paused {
                                break;
                            }
                        }
                    }
                    let app_wake =
                        (!h.work_inflight && !h.abandoned).then(|| h.next_work.min(h.hold_until));
                    if h.renew_over || inflight {
                        wake = app_wake;
                        break;
                    }
                    match h.held.poll_renew(now) {
                        Step::Send(req) => {
                            if !matches!(
                                h.held.poll_renew(now),
                                Step::AwaitResponse | Step::Done(_)
                            ) {
                                self.violation("other", format!("c{c} renew: second poll without a response did not await it"));
                            }
                            self.send(c, req, Tag::Renew, now);
                            wake = app_wake;
                            break;
                        }
                        Step::Sleep(d) => {
                            if self.check_sleep(c, "Held::poll_renew", d, now) {
                                wake = Some(app_wake.map_or(d, |a| a.min(d)));
                            }
                            break;
                        }
                        Step::AwaitResponse => {
                            self.violation(
                                "other",
                                format!("c{c} renew awaits a response nothing was sent for"),
                            );
                            break;
                        }
                        Step::Done(reason) => {
                            h.renew_over = true;
                            h.release_after_loss = matches!(reason, LossReason::Expired { .. })
                                && self.rng.chance(0.5);
                            self.on_lost(c, &reason);
                        }
                    }
                }
            }
        }
        self.clients[c].phase = phase;
        if !self.clients[c].paused {
            self.set_timer(c, wake);
        }
    }

    fn on_acquired(&mut self, c: usize, a: Acquired, now: Now) -> Option<Holding> {
        let Some(acq) = self.db.acq_of(&a.record.rvn) else {
            self.violation(
                "other",
                format!(
                    "c{c} acquired version {} that the table never stored",
                    a.record.rvn
                ),
            );
            return None;
        };
        if FENCE_SOURCE == FenceSource::Core && a.record.fence != self.db.fence_of_acq(acq) {
            self.violation(
                "fence",
                format!(
                    "c{c} acquired acquisition {acq} with token {:?}, but it stored {:?}",
                    a.record.fence,
                    self.db.fence_of_acq(acq)
                ),
            );
        }
        let cfg = &self.s.clients[c];
        let held = Held::new(self.layout.clone(), a, &cfg.opts, self.rng.core_rng());
        let lease = dur_ns(cfg.lease);
        let hold = (self.rng.unit() * self.s.hold_max_leases * lease as f64) as u64;
        let work_every = Duration::from_millis(self.rng.range(50, 300));
        self.stats.acquired += 1;
        let rvn = held.record().rvn.clone();
        let rvn = self.rvn_id(&rvn);
        let valid_ms = (held.valid_until() - now.mono).as_millis() as u32;
        self.tr(Tr::Acquired {
            c: c as u8,
            acq: acq as u32,
            rvn,
            valid_ms,
        });
        if self.deaths < self.s.max_deaths && self.rng.chance(self.s.p_die) {
            self.deaths += 1; // reserved; counted in stats when it happens
            let when = self.t + self.rng.range(0, hold.max(1));
            self.at(when, Ev::Die { c, acq });
        }
        Some(Holding {
            held,
            acq,
            hold_until: now.mono + Duration::from_nanos(hold),
            releasing: false,
            abandoned: false,
            renew_over: false,
            release_after_loss: false,
            work_inflight: false,
            next_work: now.mono,
            work_every,
        })
    }

    fn on_lost(&mut self, c: usize, reason: &LossReason) {
        let why = match reason {
            LossReason::Stolen { by } => {
                let me = &self.s.clients[c].owner;
                // (Not when another client shares the owner name: it may have taken over.)
                let shared = self.s.clients.iter().filter(|k| &k.owner == me).count() > 1;
                if !shared && by.as_ref().is_some_and(|r| &r.owner == me) {
                    // Our own version (e.g. a duplicated renewal that applied) came back.
                    self.stats.loss_stolen_by_self += 1;
                    let rvn = by.as_ref().map(|r| r.rvn.clone()).unwrap_or_default();
                    self.known_issue(|| {
                        format!("c{c} reported its lock Stolen by itself: the refused renewal's item carries c{c}'s own version {rvn} (a duplicate of an earlier copy that applied)")
                    });
                    4
                } else {
                    self.stats.loss_stolen += 1;
                    0
                }
            }
            LossReason::Deleted => {
                self.stats.loss_deleted += 1;
                1
            }
            LossReason::Expired { .. } => {
                self.stats.loss_expired += 1;
                2
            }
            LossReason::Released => 3,
            _ => 3,
        };
        self.tr(Tr::Lost { c: c as u8, why });
    }

    fn on_released(&mut self, c: usize, r: &Result<ReleaseOutcome, ReleaseError>) {
        let how = match r {
            Ok(ReleaseOutcome::Released) => {
                self.stats.rel_released += 1;
                0
            }
            Ok(ReleaseOutcome::AlreadyGone) => {
                self.stats.rel_gone += 1;
                1
            }
            Err(ReleaseError::NotOwner { .. }) => {
                self.stats.rel_not_owner += 1;
                2
            }
            Err(ReleaseError::AlreadyLost(_)) => {
                self.stats.rel_already_lost += 1;
                3
            }
            Err(ReleaseError::Unconfirmed(_)) => {
                self.stats.rel_unconfirmed += 1;
                4
            }
            Err(e) => {
                self.violation("other", format!("c{c} release failed: {e:?}"));
                5
            }
        };
        self.tr(Tr::Released { c: c as u8, how });
    }

    // --- network --------------------------------------------------------------------------

    fn delay(&mut self) -> u64 {
        self.rng.range(CALM_DELAY.0, CALM_DELAY.1)
    }

    fn send(&mut self, c: usize, req: Request, tag: Tag, now: Now) {
        self.next_req += 1;
        let req_id = self.next_req;
        self.clients[c].inflight = Some(Inflight { req_id, tag });
        // Storm check: requests of this client in the last second of true time.
        let t = self.t;
        let sent = &mut self.clients[c].sent;
        sent.push_back(t);
        while sent.front().is_some_and(|&s| s + SEC <= t) {
            sent.pop_front();
        }
        let in_window = sent.len();
        self.stats.max_req_per_client_sec = self.stats.max_req_per_client_sec.max(in_window as u64);
        let (op, new, conds, n) = self.describe(&req);
        match &req {
            Request::Put(_) => self.stats.req_put += 1,
            Request::Update(_) => self.stats.req_update += 1,
            Request::Get(_) => self.stats.req_get += 1,
            Request::Delete(_) => self.stats.req_delete += 1,
        }
        let expected = match tag {
            Tag::Acquire => matches!(op, Op::Create | Op::Steal | Op::Get),
            Tag::Renew => op == Op::Renew,
            Tag::Release => matches!(op, Op::Release | Op::ReleaseKeep),
        };
        if !expected {
            self.violation(
                "other",
                format!("c{c} {tag:?} machine sent a {op:?} request"),
            );
        }
        self.tr(Tr::Send {
            c: c as u8,
            req: req_id as u32,
            op,
            new,
            conds,
            n,
        });
        if in_window > STORM_MAX_PER_SEC {
            self.violation(
                "storm",
                format!(
                    "c{c} sent {in_window} requests within one second (bound {STORM_MAX_PER_SEC})"
                ),
            );
        }
        // The request timeout runs on the client's own clock (as `with_timeout` in client.rs).
        let deadline = now.mono + self.s.clients[c].request_timeout;
        let tt = self.s.clients[c].clock.true_time_of(deadline, self.t);
        self.at(tt, Ev::Timeout { c, req_id });

        let f = self.s.faults.clone();
        if self.chaos && self.rng.chance(f.conn_error) {
            self.stats.f_conn_error += 1;
            self.tr(Tr::ConnError {
                c: c as u8,
                req: req_id as u32,
            });
            let d = self.rng.range(MS, 5 * MS);
            self.at(
                self.t + d,
                Ev::Response {
                    c,
                    req_id,
                    outcome: Box::new(Err(Error::Transport(TransportError::new(
                        "connection reset",
                    )))),
                },
            );
            return;
        }
        if self.outage_now() == Some(Outage::Blackhole) {
            self.stats.f_outage_hits += 1;
            self.tr(Tr::ReqDropped { req: req_id as u32 });
            return;
        }
        if self.chaos && self.rng.chance(f.req_drop) {
            self.stats.f_req_drop += 1;
            self.tr(Tr::ReqDropped { req: req_id as u32 });
            return;
        }
        let copies = if self.chaos && self.rng.chance(f.dup) {
            self.stats.f_dup += 1;
            self.tr(Tr::ReqDup { req: req_id as u32 });
            2
        } else {
            1
        };
        for _ in 0..copies {
            let d = self.hop_delay(req_id);
            self.at(
                self.t + d,
                Ev::DbArrive {
                    c,
                    req_id,
                    req: Box::new(req.clone()),
                },
            );
        }
    }

    fn outage_now(&self) -> Option<Outage> {
        self.outage
            .filter(|(_, until)| self.t < *until)
            .map(|(k, _)| k)
    }

    /// One network hop's delay: calm, or (in chaos) sometimes very long.
    fn hop_delay(&mut self, req_id: u64) -> u64 {
        if self.outage_now() == Some(Outage::Slow) {
            self.stats.f_outage_hits += 1;
            self.rng.range(LONG_DELAY.0, LONG_DELAY.1)
        } else if self.chaos && self.rng.chance(self.s.faults.long_delay) {
            self.stats.f_long_delay += 1;
            let d = self.rng.range(LONG_DELAY.0, LONG_DELAY.1);
            self.tr(Tr::ReqLong {
                req: req_id as u32,
                ms: (d / MS) as u32,
            });
            d
        } else if self.chaos {
            self.rng.range(CHAOS_DELAY.0, CHAOS_DELAY.1)
        } else {
            self.delay()
        }
    }

    fn describe(&mut self, req: &Request) -> (Op, u32, [u32; 3], u8) {
        let s = |i: &Item, k: &str| {
            i.get(k)
                .and_then(AttributeValue::as_s)
                .unwrap_or("")
                .to_owned()
        };
        let mut conds = [0u32; 3];
        match req {
            Request::Put(p) => {
                let new = self.rvn_id(&s(&p.item, RVN));
                (Op::Create, new, conds, 0)
            }
            Request::Get(_) => (Op::Get, 0, conds, 0),
            Request::Update(u) => {
                let v = &u.expression_attribute_values;
                let new = self.rvn_id(&s(v, ":rvn"));
                if v.contains_key(":observed") {
                    conds[0] = self.rvn_id(&s(v, ":observed"));
                    (Op::Steal, new, conds, 1)
                } else {
                    let n = self.held_versions(v, &mut conds);
                    // A release that keeps the item sets the lease (to zero); a renewal not.
                    let keep = u.expression_attribute_names.contains_key("#lease");
                    (
                        if keep { Op::ReleaseKeep } else { Op::Renew },
                        new,
                        conds,
                        n,
                    )
                }
            }
            Request::Delete(d) => {
                let n = self.held_versions(&d.expression_attribute_values, &mut conds);
                (Op::Release, 0, conds, n)
            }
        }
    }

    fn held_versions(&mut self, v: &Item, conds: &mut [u32; 3]) -> u8 {
        let mut n = 0u8;
        while let Some(x) = v.get(&format!(":v{n}")).and_then(AttributeValue::as_s) {
            let x = x.to_owned();
            if usize::from(n) < 3 {
                conds[usize::from(n)] = self.rvn_id(&x);
            }
            n += 1;
        }
        n
    }

    fn db_arrive(&mut self, c: usize, req_id: u64, req: Request) {
        let f = self.s.faults.clone();
        let rq = req_id as u32;
        let outage = self.outage_now();
        if matches!(outage, Some(Outage::Throttle | Outage::ServerErrors)) {
            self.stats.f_outage_hits += 1;
        }
        let outcome: Outcome = if outage == Some(Outage::Throttle)
            || self.chaos && self.rng.chance(f.throttle)
        {
            self.stats.f_throttle += 1;
            self.tr(Tr::DbThrottled { req: rq });
            Err(Error::Throttled {
                code: "ProvisionedThroughputExceededException".into(),
                message: "simulated".into(),
            })
        } else if outage == Some(Outage::ServerErrors) && self.rng.chance(0.5)
            || self.chaos && self.rng.chance(f.e5xx_before)
        {
            self.stats.f_5xx_before += 1;
            self.tr(Tr::DbServerError {
                req: rq,
                applied: false,
                code: 3,
            });
            Err(Error::Server {
                status: 500,
                code: "InternalServerError".into(),
                message: "simulated, not applied".into(),
            })
        } else {
            let mut applied = match self.db.apply(&req) {
                Ok(a) => a,
                Err(e) => {
                    self.violation("model", format!("request #{req_id} of c{c} refused by the simulated table: {e}\n  request: {req:?}"));
                    return;
                }
            };
            if let Some(e) = &applied.fence_error {
                self.violation("fence", e.clone());
            }
            if let Some(r) = applied.regression.take() {
                self.judge_regression(c, r);
            }
            match &applied.effect {
                Effect::Nothing => {}
                Effect::Acquired {
                    steal, prev_owner, ..
                } => {
                    // A create or takeover is the progress a liveness window waits for, not a
                    // reset of it (renewals, deletes and TTL re-anchor the window).
                    if !*steal {
                        self.life = Some((c, self.t));
                    }
                    if *steal {
                        self.stats.acq_steal += 1;
                        let me = &self.s.clients[c].owner;
                        if prev_owner.as_deref() != Some(me.as_str()) {
                            self.stats.takeovers += 1;
                        }
                    } else {
                        self.stats.acq_create += 1;
                    }
                }
                Effect::Renewed { .. } => self.item_changed_at = self.t,
                Effect::Deleted { .. } => {
                    self.item_changed_at = self.t;
                    self.end_life();
                }
            }
            let current = self.db.current().cloned();
            match &applied.outcome {
                Ok(ddb_lock::core::Response::Get(g)) => {
                    let (item, owner) = self.item_ids(g.item.as_ref());
                    self.tr(Tr::DbRead {
                        req: rq,
                        item,
                        owner,
                    });
                }
                Ok(_) => {
                    let (item, owner) = self.item_ids(current.as_ref());
                    let acq = match applied.effect {
                        Effect::Acquired { acq, .. } | Effect::Renewed { acq } => acq as u32,
                        _ => 0,
                    };
                    self.tr(Tr::DbApplied {
                        req: rq,
                        acq,
                        item,
                        owner,
                    });
                }
                Err(_) => {
                    let (item, owner) = self.item_ids(current.as_ref());
                    self.tr(Tr::DbCondFailed {
                        req: rq,
                        item,
                        owner,
                    });
                }
            }
            if outage == Some(Outage::ServerErrors) || self.chaos && self.rng.chance(f.e5xx_after) {
                self.stats.f_5xx_after += 1;
                self.tr(Tr::DbServerError {
                    req: rq,
                    applied: true,
                    code: 3,
                });
                Err(Error::Server {
                    status: 503,
                    code: "ServiceUnavailable".into(),
                    message: "simulated, applied".into(),
                })
            } else if self.chaos && self.rng.chance(f.malformed_after) {
                self.stats.f_malformed_after += 1;
                self.tr(Tr::DbServerError {
                    req: rq,
                    applied: true,
                    code: 5,
                });
                Err(Error::Malformed {
                    status: 200,
                    reason: "simulated truncated body".into(),
                })
            } else {
                applied.outcome
            }
        };
        if outage == Some(Outage::LostResponses) || self.chaos && self.rng.chance(f.resp_drop) {
            self.stats.f_resp_drop += 1;
            self.tr(Tr::RespDropped { req: rq });
            return;
        }
        let d = self.hop_delay(req_id);
        self.at(
            self.t + d,
            Ev::Response {
                c,
                req_id,
                outcome: Box::new(outcome),
            },
        );
    }

    fn on_response(&mut self, c: usize, req_id: u64, outcome: Outcome) {
        if self.clients[c]
            .inflight
            .as_ref()
            .is_none_or(|f| f.req_id != req_id)
        {
            self.stats.late_responses += 1;
            self.tr(Tr::Late {
                c: c as u8,
                req: req_id as u32,
            });
            return;
        }
        let (ok, code) = match &outcome {
            Ok(_) => (true, 0),
            Err(e) => (false, code_of(e)),
        };
        self.tr(Tr::Resp {
            c: c as u8,
            req: req_id as u32,
            ok,
            code,
        });
        self.deliver(c, outcome);
    }

    /// Hands the outcome of the in-flight request to the machine that sent it.
    fn deliver(&mut self, c: usize, outcome: Outcome) {
        let Some(f) = self.clients[c].inflight.take() else {
            return;
        };
        let now = self.now_of(c);
        match (&mut self.clients[c].phase, f.tag) {
            (Phase::Acquiring { m }, Tag::Acquire) => m.handle(now, outcome),
            (Phase::Holding(h), Tag::Renew | Tag::Release) => h.held.handle(now, outcome),
            _ => {
                self.violation(
                    "other",
                    format!("c{c} got a {:?} response in another phase", f.tag),
                );
                return;
            }
        }
        self.drive(c);
    }

    // --- the protected resource ---------------------------------------------------------------

    fn issue_work(&mut self, c: usize, acq: u64, write: ResWrite) {
        self.stats.work_writes += 1;
        self.tr(Tr::Work {
            c: c as u8,
            token: match &write {
                ResWrite::Token(t) => Some(*t),
                ResWrite::Guarded(_) => None,
            },
        });
        let mut delay = self.rng.range(RES_DELAY.0, RES_DELAY.1);
        if self.chaos && self.rng.chance(self.s.faults.res_long) {
            self.stats.f_res_long += 1;
            delay += self.rng.range(500 * MS, 3 * SEC);
        }
        if self.chaos && self.rng.chance(self.s.faults.check_pause) {
            // A pause right after the check, before the write leaves the process.
            let dur = self.rng.range(MS, self.s.pause_max);
            self.stats.f_check_pauses += 1;
            self.start_pause(c, dur, false);
            delay += dur;
        }
        self.at(self.t + delay, Ev::ResLand { c, acq, write });
    }

    /// The item is gone (deleted, TTL): remember its lifetime and the token it ended with
    /// (`fence_of_acq` of the newest acquisition, the highest within one lifetime).
    fn end_life(&mut self) {
        if let Some((creator, born)) = self.life.take() {
            let token = self.db.fence_of_acq(self.db.acquisitions).unwrap_or(0);
            self.lives.push((creator, born, self.t, token));
        }
    }

    /// A create restarted the token below an earlier one. The core documents this as possible
    /// when the creators' clocks are further apart than the deleted item lived; anything else
    /// is a violation.
    fn judge_regression(&mut self, c: usize, r: Regression) {
        // By client, not owner name: two clients may share an owner (one LockClient, two tasks).
        let offset = |k: usize| i128::from(self.s.clients[k].clock.wall_offset_ns);
        // A create's token is its sender's wall clock in ms times 2^16: when was it sent?
        let sent_at =
            |token: u64, k: usize| i128::from(token >> 16) * i128::from(MS) - EPOCH_NS - offset(k);
        let sent = sent_at(r.new_token, c);
        // The earlier item lifetime that holds the highest token.
        let top = self
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
        let skew = offset(creator) - offset(c);
        // Documented: the new create was sent after that item was deleted, and the clocks are
        // further apart than the time between the two creates. Late: it was sent while that
        // item still existed (delayed in the network, or ambiguous) and landed after it.
        let late = sent < i128::from(died);
        let explained = skew + i128::from(MS) >= sent - sent_at(token, creator);
        let detail = format!(
            "the item created by c{creator} at {:.6}s (token {token}) was deleted at {:.6}s (lifetime {:.3}ms); this create was sent at {:.6}s; c{c}'s wall clock is {:.3}ms behind c{creator}'s",
            born as f64 / 1e9,
            died as f64 / 1e9,
            (died - born) as f64 / 1e6,
            sent as f64 / 1e9,
            skew as f64 / 1e6,
        );
        self.fence_regressed = true;
        let msg = format!(
            "c{c}'s create wrote fencingToken {} <= {} (the highest so far): {detail}",
            r.new_token, r.max_token
        );
        if late {
            self.stats.fence_regressions_late_create += 1;
            self.tr(Tr::FenceRegression { documented: false });
            self.known_issue(|| msg);
        } else if explained {
            self.stats.fence_regressions += 1;
            self.tr(Tr::FenceRegression { documented: true });
        } else {
            // Neither: the token is not what `fence_base` says it is.
            self.stats.fence_regressions_undocumented += 1;
            self.violation("fence", msg);
        }
    }

    fn res_land(&mut self, c: usize, acq: u64, write: ResWrite) {
        // Stale: a newer acquisition took effect at the table before this write landed.
        let stale = acq < self.db.acquisitions;
        let token = match write {
            ResWrite::Token(t) => t,
            ResWrite::Guarded(target) => {
                self.guarded_land(c, acq, stale, &target);
                return;
            }
        };
        let accepted = !FENCED_RESOURCE || token >= self.res_max_token;
        self.tr(Tr::Land {
            c: c as u8,
            token: Some(token),
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
                    "c{c}'s resource write of acquisition {acq} landed after acquisition {} took effect",
                    self.db.acquisitions
                ),
            );
        }
        if accepted {
            self.res_max_token = self.res_max_token.max(token);
            // Tokens must order writes as the table ordered the acquisitions.
            let below = self.res_tokens.range(..acq).next_back().map(|(_, t)| *t);
            let above = self.res_tokens.range(acq + 1..).next().map(|(_, t)| *t);
            if below.is_some_and(|b| b >= token) || above.is_some_and(|a| a <= token) {
                if self.fence_regressed {
                    self.stats.fence_misorder_after_regression += 1;
                } else {
                    self.violation(
                        "fence",
                        format!("token {token} of acquisition {acq} is out of order with {below:?}/{above:?}"),
                    );
                }
            }
            self.res_tokens.insert(acq, token);
        } else {
            self.stats.fence_rejected += 1;
            if !stale && self.fence_regressed {
                self.stats.fence_misorder_after_regression += 1;
            } else if !stale {
                self.violation(
                    "fence",
                    format!("the current holder c{c}'s write (token {token}, acquisition {acq}) was rejected: tokens are not monotonic"),
                );
            }
        }
        let d = self.rng.range(RES_DELAY.0, RES_DELAY.1);
        self.at(self.t + d, Ev::ResAck { c });
    }

    /// `write_if_held` landing: its condition check and its write are one transaction.
    fn guarded_land(&mut self, c: usize, acq: u64, stale: bool, t: &TransactTarget) {
        self.stats.guarded_writes += 1;
        let key_ok = t.table_name == self.s.table.name() && t.key == self.layout.key_item();
        let accepted = match (key_ok, t.condition_expression.as_deref()) {
            (true, Some(cond)) => check_condition(
                cond,
                &t.expression_attribute_names,
                &t.expression_attribute_values,
                self.db.current(),
            ),
            _ => Err(format!(
                "still_held is not a condition on the lock item: {t:?}"
            )),
        };
        let accepted = match accepted {
            Ok(a) => a,
            Err(e) => {
                self.violation("model", format!("c{c}'s guarded write refused: {e}"));
                return;
            }
        };
        self.tr(Tr::Land {
            c: c as u8,
            token: None,
            stale,
            accepted,
        });
        if stale {
            self.stats.stale_landed += 1;
        }
        match (accepted, stale) {
            (true, true) => self.violation(
                "fence",
                format!("c{c}'s write_if_held of acquisition {acq} was accepted after acquisition {} took effect", self.db.acquisitions),
            ),
            (true, false) => self.stats.guarded_accepted += 1,
            (false, true) => self.stats.guarded_rejected_stale += 1,
            // The lock is still this acquisition's, but not in a version the check names:
            // a renewal that was in flight when the check was built has landed since.
            (false, false) => self.stats.guarded_rejected_current += 1,
        }
        let d = self.rng.range(RES_DELAY.0, RES_DELAY.1);
        self.at(self.t + d, Ev::ResAck { c });
    }

    // --- invariants after every event ----------------------------------------------------

    /// Whether client `c` believes it holds the lock at the current true time: alive, in its
    /// hold (not releasing), and not lost by its own clock now.
    fn believes(&self, c: usize) -> Option<&Holding> {
        let cl = &self.clients[c];
        match &cl.phase {
            Phase::Holding(h) if !cl.dead && !h.releasing && !h.abandoned => {
                let now = self.s.clients[c].clock.mono(self.t);
                h.held.lost(now).is_none().then_some(&**h)
            }
            _ => None,
        }
    }

    fn check_after_event(&mut self) {
        let n = self.clients.len();
        let mut holders: Vec<(usize, u64)> = Vec::new();
        for c in 0..n {
            let b = self.believes(c).map(|h| (h.acq, h.held.valid_until()));
            match b {
                Some((acq, until)) => {
                    holders.push((c, acq));
                    let cl = &self.clients[c];
                    if !cl.believed && cl.last_acq == acq {
                        self.stats.resurrections += 1;
                        self.trace.push(
                            self.t,
                            Tr::Resurrect {
                                c: c as u8,
                                acq: acq as u32,
                            },
                        );
                        self.known_issue(|| {
                            format!("c{c}'s lock (acquisition {acq}) counted as expired by its clock, then held again: a renewal's answer came after valid_until and extended the lease")
                        });
                    }
                    let end = self.s.clients[c].clock.true_time_of(until, self.t);
                    let cl = &mut self.clients[c];
                    cl.believed = true;
                    cl.last_acq = acq;
                    if cl.belief_end_at != Some(end) {
                        cl.belief_end_at = Some(end);
                        self.at(end, Ev::BeliefEnd { c });
                    }
                }
                None => self.clients[c].believed = false,
            }
        }
        if holders.len() >= 2 {
            let (a, b) = (holders[0], holders[1]);
            if self.overlaps_seen.insert((a.1, b.1)) {
                let detail = |w: &World, c: usize| {
                    let h = w.believes(c).unwrap();
                    let mono = w.s.clients[c].clock.mono(w.t);
                    format!(
                        "c{c} (acq {}, rvn {}, valid {:?} more by its clock)",
                        h.acq,
                        h.held.record().rvn,
                        h.held.valid_until() - mono
                    )
                };
                let msg = format!(
                    "two holders at once: {} and {}",
                    detail(self, a.0),
                    detail(self, b.0)
                );
                self.violation("exclusion", msg);
                if self.stopped {
                    return;
                }
            }
        }
        self.live_update(holders.is_empty());
    }

    /// Clients waiting for the lock that can take over an abandoned one: `try_lock` loops
    /// (they carry the observation from call to call) and `lock` calls that do not give up.
    /// A `lock` with an `acquire_timeout` shorter than the lease, or a small
    /// `max_retry_count`, restarts its watch on every call and never sees one version for a
    /// whole lease (see the report on `LockClient::lock`).
    fn waiting(&self) -> Vec<usize> {
        (0..self.clients.len())
            .filter(|&c| {
                let cfg = &self.s.clients[c];
                let patient =
                    cfg.try_loop || (cfg.acquire_timeout.is_none() && cfg.max_retry.is_none());
                patient
                    && !self.clients[c].dead
                    && matches!(
                        self.clients[c].phase,
                        Phase::Acquiring { .. } | Phase::Idle { waiting: true, .. }
                    )
            })
            .collect()
    }

    fn live_update(&mut self, no_holder: bool) {
        let waiting = !self.waiting().is_empty();
        if no_holder && !waiting {
            // The waiters gave up: nothing to bound.
            self.window = None;
            return;
        }
        if !no_holder {
            if let Some(w) = self.window.take() {
                let took = self.t - w.start;
                self.tr(Tr::LiveEnd {
                    took_ms: (took / MS) as u32,
                });
                if self.settled_at.is_some_and(|s| s <= w.start) {
                    self.stats.live_checked += 1;
                    self.stats.live_met += 1;
                    if took > w.tight {
                        self.stats.try_lock_late_handover += 1;
                        let start = w.start;
                        self.known_issue(|| {
                            format!("only try_lock loops waited from t={:.6}s: the lock went to one {:.3}s later, past the {:.3}s a reading waiter meets (a try_lock with an observation answers Busy from memory)", start as f64 / 1e9, took as f64 / 1e9, w.tight as f64 / 1e9)
                        });
                    }
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
        if self
            .window
            .as_ref()
            .is_some_and(|w| w.start >= self.item_changed_at)
        {
            return;
        }
        // A new wait (nobody holds, someone waits), or the item changed under a wait: bound
        // the time from now until some waiter holds, from the item as it is now.
        let (bound, tight) = self.live_bound();
        self.window_gen += 1;
        let epoch = self.window_gen;
        self.stats.live_windows += 1;
        self.window = Some(Window {
            epoch,
            start: self.t,
            bound,
            tight,
        });
        let checked = self.settled_at.is_some_and(|s| s <= self.t);
        self.tr(Tr::LiveStart {
            bound_ms: (bound / MS) as u32,
            checked,
        });
        self.at(self.t + bound, Ev::LiveDeadline { epoch });
    }

    /// The liveness bound from now, on a calm network (one-way delay <= 20 ms, so a round trip
    /// <= `rtt`), with every waiter's clock at least `1 - rho` fast:
    /// * item absent: a waiter's next request is at most one poll interval away (backoff is
    ///   capped at the poll interval), after at most one round trip already under way; then a
    ///   read and a create: `P/(1-rho) + 3 rtt`;
    /// * item present, its holder gone: the waiters must watch the version for its lease
    ///   (`trust_local_time`: until the stored expiry plus skew by their wall clocks, which
    ///   may be off by the wall spread): `(P + L [+ skew + spread])/(1-rho) + 4 rtt`.
    ///
    /// Plus 25 ms for rounding to whole milliseconds and ties.
    fn live_bound(&self) -> (u64, u64) {
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
            .current()
            .and_then(|i| LockRecord::from_item(i).ok());
        let clock = match &record {
            None => p_max,
            Some(r) => p_max + dur_ns(r.lease) + trust_extra,
        };
        let rtts = if record.is_some() { 4 } else { 3 };
        let tight = (clock as f64 / slow) as u64 + rtts * rtt + 25 * MS;
        // A `try_lock` with a stored observation answers from memory until the observed
        // version's lease has passed (client.rs passes no `read_first` then). Only then does
        // it look: a takeover of the remembered version, refused if the holder had renewed
        // since, and a whole lease of watching the current version follows. So a loop of
        // them may hand over a lock up to two leases late.
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
        let only_try = self.waiting().iter().all(|&c| self.s.clients[c].try_loop);
        (if only_try { tight.max(loose) } else { tight }, tight)
    }

    fn live_deadline(&mut self, epoch: u64) {
        let Some(w) = &self.window else { return };
        if w.epoch != epoch {
            return;
        }
        let (start, bound) = (w.start, w.bound);
        self.window = None;
        if self.settled_at.is_some_and(|s| s <= start) {
            self.stats.live_checked += 1;
            let waiting = self.waiting();
            self.violation(
                "liveness",
                format!(
                    "nobody acquired within {:.3}s (bound) of t={:.6}s on a calm network; waiting: {waiting:?}; item: {:?}",
                    bound as f64 / 1e9,
                    start as f64 / 1e9,
                    self.db.current().and_then(|i| LockRecord::from_item(i).ok()).map(|r| (r.owner, r.rvn)),
                ),
            );
        }
    }
}
