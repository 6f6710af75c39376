//! One run's configuration, drawn from its seed: clients and their options, clocks, fault
//! rates, and the bounds the run stays within (or, in `beyond` runs, deliberately breaks).
//!
//! # The bounds (what the core documents, and what is checked)
//!
//! * **Clock rate.** A waiter counts the holder's lease `L` on its own monotonic clock from
//!   the receipt of the version; the holder stops believing `L - m` after sending the write
//!   (`m` = safety margin, default `L/10`). Mutual exclusion needs, for every holder `H` and
//!   waiter `X`, `rate_X / rate_H < L_H / (L_H - m_H)`. With every client's rate in
//!   `[1 - rho, 1 + rho]` that is `rho < q / (2 - q)`, `q = min(m/L)` over the clients
//!   (`q = 0.1` gives `rho < 5.26 %`). In-bounds runs draw `rho` up to 98 % of that (half of
//!   them at 98 %, with clients at both extremes); beyond runs draw 1.5x to 4x of it.
//! * **Wall clocks** (only `trust_local_time` and TTL read them): every pair of clients is
//!   within the smallest `max_clock_skew` of the `trust_local_time` clients; beyond runs spread
//!   them over 4x that.
//! * **Pauses** (GC, scheduling: the process stops, its clocks do not) cannot break mutual
//!   exclusion as defined on beliefs, since a belief is a function of the believer's clock. They
//!   matter for *acting* on a belief: a client checks `remaining() >= WORK_BUDGET` before each
//!   write to the protected resource, and in-bounds runs keep `pause + resource latency` below
//!   `WORK_BUDGET / (1 + rho)`. Beyond runs pause for up to twice the longest lease, also right
//!   between the check and the write.
//! * **TTL** (when on) is 5 s: the longest belief (3 s lease / (1 - rho)) plus the wall
//!   clock spread (1 s) plus TTL's one-second granularity stays below it.
//! * **Suspends** (VM pause, laptop sleep): the monotonic clock stops with the process; the
//!   wall clock does not. A holder bounds its belief by the wall clock since its last confirmed
//!   write too, so a suspended holder wakes knowing its lease ran out: suspends of any length
//!   are in bounds (for beliefs; a write already sent before a suspend is a pause, above).

use std::time::Duration;

use ddb_lock::{LockOptions, TableOptions};

use super::clock::Clock;
use super::rng::SimRng;

pub const MS: u64 = 1_000_000;
pub const SEC: u64 = 1_000 * MS;

/// One-way network delay while the network is calm: uniform in `[0.5, 10]` ms (DynamoDB in
/// the same region answers in single-digit milliseconds).
pub const CALM_DELAY: (u64, u64) = (MS / 2, 10 * MS);
/// One-way delay in chaos when no other fault hits: uniform in `[0.5, 10]` ms (errors such
/// as throttling come back as fast as answers do, so a retry loop without backoff shows).
pub const CHAOS_DELAY: (u64, u64) = (MS / 2, 10 * MS);
/// Outages inside chaos phases (correlated faults: every message is hit while one lasts).
pub const OUTAGE_LEN: (u64, u64) = (300 * MS, 3 * SEC);
/// Long delays in chaos: uniform in `[300 ms, 3 s]` (beyond any request timeout).
pub const LONG_DELAY: (u64, u64) = (300 * MS, 3 * SEC);
/// Resource (the thing the lock protects) one-way latency.
pub const RES_DELAY: (u64, u64) = (MS, 40 * MS);
/// A holder writes to the resource only with at least this much lease left.
pub const WORK_BUDGET: Duration = Duration::from_millis(300);
/// In-bounds pause limit.
pub const PAUSE_MAX_IN_BOUNDS: u64 = 100 * MS;

/// One application task: it locks one key, over and over.
#[derive(Clone, Debug)]
pub struct TaskCfg {
    /// Which key (index into the run's keys).
    pub key: usize,
    /// Calls `try_lock` in a loop (the client carries the observation from call to call)
    /// instead of a blocking `lock`.
    pub try_loop: bool,
}

/// How often the application cuts a call short (drops its future) or drops a handle.
#[derive(Clone, Debug)]
pub struct Cuts {
    /// A `lock()` / `try_lock()` dropped at a random point.
    pub acquire: f64,
    /// A `release()` dropped at a random point (then called again, or not).
    pub release: f64,
    /// A `write_if_held()` dropped at a random point.
    pub guarded: f64,
    /// A held `Lock` dropped instead of released (released in the background).
    pub drop_handle: f64,
    /// A held `Lock` abandoned (crash semantics: the item stays).
    pub abandon: f64,
    /// The final `release_all()` cut short once (then called again).
    pub release_all: f64,
    /// Longest cut delay (ns): from before the first poll to several round trips.
    pub max_delay: u64,
}

#[derive(Clone, Debug)]
pub struct ClientCfg {
    pub owner: String,
    pub opts: LockOptions,
    pub lease: Duration,
    pub margin: Duration,
    pub poll: Duration,
    pub prolong: bool,
    pub prolong_every: Duration,
    pub trust: bool,
    pub skew: Duration,
    pub wait: Duration,
    pub request_timeout: Duration,
    /// The application tasks of this client: one per key it uses.
    pub tasks: Vec<TaskCfg>,
    pub acquire_timeout: Option<Duration>,
    pub max_retry: Option<u32>,
    pub clock: Clock,
}

/// Per-message fault probabilities while the network is in chaos.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    pub req_drop: f64,
    pub resp_drop: f64,
    pub dup: f64,
    pub long_delay: f64,
    pub throttle: f64,
    pub e5xx_before: f64,
    pub e5xx_after: f64,
    pub conn_error: f64,
    pub malformed_after: f64,
    /// A request meets another transaction on its item (`TransactionConflictException`, or a
    /// cancelled transaction with reason `TransactionConflict`): not applied.
    pub conflict: f64,
    /// Random process pauses per client per second of chaos.
    pub pause_rate: f64,
    /// Probability of a pause right between a holder's check and its resource write.
    pub check_pause: f64,
    /// Resource messages delayed far beyond the budget (beyond runs only).
    pub res_long: f64,
    /// Outages per chaos phase: uniform in `0..=outages`.
    pub outages: u64,
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub seed: u64,
    pub beyond: bool,
    pub chaos: bool,
    /// Until then the applications run; then they stop (their futures dropped where they
    /// are), each client calls `release_all`, and the network stays calm.
    pub duration: u64,
    /// After `duration`: time for releases, background tasks and stragglers to settle before
    /// the final checks (no lock left behind, every registry empty).
    pub final_settle: u64,
    pub table: TableOptions,
    /// Lock keys: `(group, id)`.
    pub keys: Vec<(String, String)>,
    pub clients: Vec<ClientCfg>,
    pub cuts: Cuts,
    /// The rate bound the core tolerates with these options (ppm).
    pub rho_allowed_ppm: i64,
    /// The rate bound this run's clocks stay within (ppm).
    pub rho_ppm: i64,
    pub faults: Faults,
    pub pause_max: u64,
    /// After chaos, how long the calm network needs before liveness is checked: stragglers
    /// (long delays), request timeouts, pauses.
    pub settle: u64,
    pub p_die: f64,
    pub max_deaths: usize,
    pub hold_max_leases: f64,
    pub idle_max: u64,
    /// Largest difference between two clients' wall clocks.
    pub wall_spread: u64,
    /// Network phases: `(start, chaos)`, in order; the first starts calm at 0.
    pub phases: Vec<(u64, bool)>,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

impl Scenario {
    pub fn generate(seed: u64, rng: &mut SimRng) -> Scenario {
        let n = rng.range(2, 6) as usize;
        let n_keys = rng.range(1, 3) as usize;
        let beyond = rng.chance(0.1);
        let chaos = rng.chance(0.75);
        let ttl = !beyond && rng.chance(0.3);
        let mut table = TableOptions::new().table_name("locks");
        if ttl {
            table = table.ttl_key("expiresAt").ttl(Duration::from_secs(5));
        }
        let trust_run = rng.chance(0.3);
        // Release by marking the item free (lease 0, token kept) instead of deleting it:
        // every client in half the runs, some clients in the others.
        let keep_all = rng.chance(0.5);
        let shared_owner = n >= 3 && rng.chance(0.1);

        // Options first: they set the drift the core tolerates.
        struct Pre {
            lease: Duration,
            margin: Option<Duration>,
            poll: Duration,
            prolong: bool,
            prolong_every: Duration,
            trust: bool,
            skew: Duration,
            wait: Duration,
            request_timeout: Duration,
            tasks: Vec<TaskCfg>,
            acquire_timeout: Option<Duration>,
            max_retry: Option<u32>,
            keep_item: bool,
        }
        let pres: Vec<Pre> = (0..n)
            .map(|_| {
                let lease = ms(rng.range(1000, 3000));
                let l = lease.as_millis() as u64;
                let margin = rng.chance(0.3).then(|| ms(rng.range(l / 20, l / 4)));
                Pre {
                    lease,
                    margin,
                    poll: ms(rng.range(100, 500)),
                    prolong: rng.chance(0.85),
                    prolong_every: ms(rng.range(l / 6, l * 10 / 22)),
                    trust: trust_run && rng.chance(0.5),
                    skew: ms(rng.range(20, 400)),
                    wait: ms(rng.range(100, 2 * l)),
                    request_timeout: ms(rng.range(200, 2000)),
                    tasks: {
                        // Every client uses key 0; others at random.
                        let mut t = vec![TaskCfg {
                            key: 0,
                            try_loop: rng.chance(0.2),
                        }];
                        for key in 1..n_keys {
                            if rng.chance(0.6) {
                                t.push(TaskCfg {
                                    key,
                                    try_loop: rng.chance(0.2),
                                });
                            }
                        }
                        t
                    },
                    acquire_timeout: rng.chance(0.15).then(|| ms(rng.range(500, 10_000))),
                    max_retry: rng.chance(0.1).then(|| rng.range(0, 10) as u32),
                    keep_item: keep_all || rng.chance(0.3),
                }
            })
            .collect();
        let q = pres
            .iter()
            .map(|p| {
                let m = p.margin.unwrap_or(p.lease / 10);
                m.as_secs_f64() / p.lease.as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min);
        let rho_allowed = q / (2.0 - q);
        let rho = if beyond {
            (rho_allowed * (1.5 + 2.5 * rng.unit())).min(0.3)
        } else if rng.chance(0.5) {
            rho_allowed * 0.98
        } else {
            rho_allowed * 0.98 * rng.unit()
        };
        let rho_ppm = (rho * 1e6) as i64;
        let min_skew = pres
            .iter()
            .filter(|p| p.trust)
            .map(|p| p.skew.as_nanos() as i64)
            .min();
        // Offsets within [-spread/2, spread/2].
        let spread: i64 = match (min_skew, beyond) {
            (Some(s), false) => s,
            (Some(s), true) => 4 * s,
            (None, _) => 1000 * MS as i64,
        };
        let clients = pres
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let rate_ppm = match rng.range(0, 2) {
                    0 => -rho_ppm,
                    1 => rho_ppm,
                    _ => rng.range(0, 2 * rho_ppm as u64) as i64 - rho_ppm,
                };
                let clock = Clock {
                    origin: rng.range(SEC, 10_000 * SEC),
                    rate_ppm,
                    wall_offset_ns: rng.range(0, spread as u64) as i64 - spread / 2,
                    freezes: Vec::new(),
                };
                let mut opts = LockOptions::new()
                    .lease(p.lease)
                    .prolong(p.prolong)
                    .prolong_every(p.prolong_every)
                    .poll_interval(p.poll);
                if let Some(m) = p.margin {
                    opts = opts.safety_margin(m);
                }
                if let Some(t) = p.acquire_timeout {
                    opts = opts.acquire_timeout(t);
                }
                if p.keep_item {
                    opts = opts.keep_item_on_release(true);
                }
                if let Some(n) = p.max_retry {
                    opts = opts.max_retry_count(n);
                }
                if p.trust {
                    opts = opts
                        .trust_local_time(true)
                        .wait_duration(p.wait)
                        .max_clock_skew(p.skew);
                }
                opts.validate().expect("generated options are valid");
                let owner = if shared_owner && i == 1 {
                    format!("owner-0-{seed:x}")
                } else {
                    format!("owner-{i}-{seed:x}")
                };
                ClientCfg {
                    owner,
                    opts,
                    lease: p.lease,
                    margin: p.margin.unwrap_or(p.lease / 10),
                    poll: p.poll,
                    prolong: p.prolong,
                    prolong_every: p.prolong_every,
                    trust: p.trust,
                    skew: p.skew,
                    wait: p.wait,
                    request_timeout: p.request_timeout,
                    tasks: p.tasks,
                    acquire_timeout: p.acquire_timeout,
                    max_retry: p.max_retry,
                    clock,
                }
            })
            .collect::<Vec<_>>();
        let scale = 0.3 + 1.7 * rng.unit();
        let faults = if chaos {
            Faults {
                req_drop: 0.04 * scale,
                resp_drop: 0.05 * scale,
                dup: 0.03 * scale,
                long_delay: 0.05 * scale,
                throttle: 0.05 * scale,
                e5xx_before: 0.02 * scale,
                e5xx_after: 0.03 * scale,
                conn_error: 0.02 * scale,
                malformed_after: 0.01 * scale,
                conflict: 0.02 * scale,
                pause_rate: 0.3 * scale,
                check_pause: 0.1 * scale,
                res_long: if beyond { 0.1 } else { 0.0 },
                outages: 2,
            }
        } else {
            Faults::default()
        };
        let max_lease = clients
            .iter()
            .map(|c| c.lease.as_nanos() as u64)
            .max()
            .unwrap();
        let pause_max = if beyond {
            2 * max_lease
        } else {
            PAUSE_MAX_IN_BOUNDS
        };
        let max_rt = clients
            .iter()
            .map(|c| c.request_timeout.as_nanos() as u64)
            .max()
            .unwrap();
        if !beyond {
            // The in-bounds resource discipline: pause + latency well inside the budget.
            let worst = (pause_max + RES_DELAY.1) as f64 * (1.0 + rho);
            assert!(worst < WORK_BUDGET.as_nanos() as f64);
        }
        let duration = rng.range(15 * SEC, 40 * SEC);
        let mut phases = vec![(0, false)];
        if chaos {
            let mut t = rng.range(0, 5 * SEC);
            while t < duration {
                phases.push((t, true));
                t += rng.range(2 * SEC, 8 * SEC);
                phases.push((t, false));
                t += rng.range(6 * SEC, 15 * SEC);
            }
        }
        let mut clients = clients;
        if chaos {
            // Suspends start in chaos phases (liveness is only checked once calm settles).
            let chaos_phases: Vec<(u64, u64)> = phases
                .windows(2)
                .filter(|w| w[0].1)
                .map(|w| (w[0].0, w[1].0))
                .collect();
            for c in clients.iter_mut() {
                let mut f: Vec<(u64, u64)> = Vec::new();
                for _ in 0..rng.range(0, 2) {
                    let (a, b) = chaos_phases[rng.range(0, chaos_phases.len() as u64 - 1) as usize];
                    let start = rng.range(a, b);
                    // Up to two of the longest leases: a holder wakes after its lease ran out.
                    let end = start + rng.range(100 * MS, 2 * max_lease);
                    if f.iter().all(|&(s, e)| end <= s || start >= e) {
                        f.push((start, end));
                    }
                }
                // A suspend ends before the applications stop (the clock stands still only
                // while the process does).
                f.retain(|&(_, e)| e < duration);
                f.sort_unstable();
                c.clock.freezes = f;
            }
        }
        let keys = (0..n_keys)
            .map(|i| ("sim".to_owned(), format!("lock-{i}")))
            .collect();
        let cuts = Cuts {
            acquire: 0.15,
            release: 0.15,
            guarded: 0.1,
            drop_handle: 0.1,
            abandon: 0.05,
            release_all: 0.5,
            max_delay: 60 * MS,
        };
        let max_prolong = clients
            .iter()
            .map(|c| c.prolong_every.as_nanos() as u64)
            .max()
            .unwrap();
        Scenario {
            seed,
            beyond,
            chaos,
            duration,
            final_settle: 2 * max_lease + 2 * max_rt + max_prolong + LONG_DELAY.1 + 2 * SEC,
            table,
            keys,
            clients,
            cuts,
            rho_allowed_ppm: (rho_allowed * 1e6) as i64,
            rho_ppm,
            faults,
            pause_max,
            // Suspends (up to two leases) may start late in a chaos phase.
            settle: LONG_DELAY.1 + max_rt + pause_max.max(2 * max_lease) + 500 * MS,
            p_die: 0.04,
            max_deaths: n - 1,
            hold_max_leases: 3.0,
            idle_max: 1500 * MS,
            wall_spread: spread as u64,
            phases,
        }
    }

    pub fn describe(&self) -> String {
        let mut s = format!(
            "seed {} | {} clients | {} keys | {} | {} | {:.1}s virtual | rho {:.3}% (core tolerates {:.3}%) | ttl {:?}\n",
            self.seed,
            self.clients.len(),
            self.keys.len(),
            if self.beyond {
                "BEYOND bounds"
            } else {
                "in bounds"
            },
            if self.chaos {
                "chaos phases"
            } else {
                "healthy network"
            },
            self.duration as f64 / 1e9,
            self.rho_ppm as f64 / 1e4,
            self.rho_allowed_ppm as f64 / 1e4,
            self.table.ttl_key_name().map(|_| self.table.ttl_duration()),
        );
        for (i, c) in self.clients.iter().enumerate() {
            s.push_str(&format!(
                                "  c{i}: {} tasks {:?}{} lease {:?} margin {:?} poll {:?} prolong {} every {:?} trust {} (skew {:?}, wait {:?}) request timeout {:?} acquire timeout {:?} max retries {:?} rate {:+}ppm wall {:+}ms suspends {:?}\n",
                c.owner,
                c.tasks.iter().map(|t| format!("k{}{}", t.key, if t.try_loop { " try_lock loop" } else { "" })).collect::<Vec<_>>(),
                if c.opts.clone() == c.opts.clone().keep_item_on_release(true) { " (keeps item on release)" } else { "" },
                c.lease,
                c.margin,
                c.poll,
                c.prolong,
                c.prolong_every,
                c.trust,
                c.skew,
                c.wait,
                c.request_timeout,
                c.acquire_timeout,
                c.max_retry,
                c.clock.rate_ppm,
                c.clock.wall_offset_ns / MS as i64,
                c.clock.freezes,
            ));
        }
        s
    }
}
