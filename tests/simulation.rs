//! Deterministic simulation of what ships: the real `LockClient`, its `Lock` handles and
//! background tasks, on simulated hosts (`sim/host.rs`: per-client drifting clocks, timers, a
//! seeded single-threaded executor for spawn, a transport into the simulated network), 2 to
//! 6 clients, 1 to 3 keys, in a simulated DynamoDB table reached by signed HTTP over a
//! network that delays, drops, duplicates and reorders messages, answers with throttling,
//! 5xx and timeouts (applied or not), and has outages; process pauses, suspends and deaths.
//! The applications (`sim/app.rs`) use the public API: `lock()` with timeouts and retry
//! limits, `try_lock` loops, `write_if_held`, releases, dropped and abandoned handles,
//! `release_all` at shutdown, and any of these futures dropped at random points (before
//! their first poll, in flight, after applying). Virtual time, one seeded generator per run:
//! a seed replays exactly.
//!
//! Checked on every run (the exact bounds are in `sim/scenario.rs` and `sim/world.rs`):
//! 1. mutual exclusion per key: no two applications believe they hold it at the same true
//!    time (belief = in its critical section and `Lock::status()` says held), as long as
//!    clock rates stay within the bound the safety margin buys;
//! 2. fencing and the protected resource: in bounds no stale holder's write even lands; the
//!    fencing token of a takeover is exactly one more, other writes keep it, a holder's token
//!    is the one stored; a resource keeping the highest token never rejects the current
//!    holder and orders writes as the table ordered acquisitions (unless a create restarted
//!    the token, as documented); `write_if_held` never lands a stale write;
//! 3. liveness: on a calm network, once nobody holds a key and a patient waiter waits,
//!    someone holds it within a bound (`World::live_bound`);
//! 4. every call completes within its bound (`lock()` with a timeout, `try_lock`, `release`,
//!    `release_all`, `write_if_held`), its caller's pauses excluded;
//! 5. a dropped acquisition never blocks its own client: a `lock()` that finds the item its
//!    own cut (or timed-out) acquisition left gets it within two polls and 300 ms;
//! 6. no held lock leaks: after the applications stop and `release_all` on a calm network,
//!    every client's registry is empty and no live item of a live client is left (abandoned
//!    locks aside); no answer arrives for a request not in flight;
//! 7. no storms: at most `STORM_MAX_PER_SEC` requests per client in any second;
//!
//! plus: every request is one the model reads and DynamoDB accepts, and the executor never
//! spins at one instant. Runs beyond the bounds (10%) must break exclusion somewhere, or
//! the checker is blind.
//!
//! Environment:
//! * `SIM_SEED=<n>`: run that seed only (add `SIM_TRACE=1` to print every event);
//! * `SIM_SEEDS=<count>` (default: 10,000 in release builds, 40 in debug), `SIM_START=<first
//!   seed>`;
//! * `SIM_THREADS=<n>` (default: available parallelism);
//! * `SIM_SHOW_BEYOND=1`: print one expected beyond-bounds violation;
//! * `SIM_FAIL_FAST=1`: stop at the first failing seed.
//!
//! `scripts/soak.sh` runs a long soak.

#![allow(clippy::disallowed_methods)] // Only to report seeds per second of real time.

mod sim;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sim::stats::Stats;
use sim::world::{RunResult, World};

/// Seeds per default run. Every simulated request is signed, encoded and parsed by the real
/// code: a release build runs about 50 seeds/s on two cores, a debug build about 2. CI runs
/// the release build (`scripts/test.sh sim`); a plain debug `cargo test` runs a smoke test.
const DEFAULT_SEEDS_RELEASE: u64 = 10_000;
const DEFAULT_SEEDS_DEBUG: u64 = 40;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
    })
}

fn run_seed(seed: u64, echo: bool) -> RunResult {
    World::new(seed, echo).run()
}

fn run_many(start: u64, count: u64) -> (Stats, Vec<RunResult>, Option<String>, f64) {
    let threads = env_u64("SIM_THREADS")
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get() as u64));
    let next = AtomicU64::new(0);
    // Stop at the first failing seed (the mutation check only needs one).
    let fail_fast = std::env::var_os("SIM_FAIL_FAST").is_some();
    let failed = std::sync::atomic::AtomicBool::new(false);
    let total = Mutex::new(Stats::default());
    let failures = Mutex::new(Vec::new());
    let beyond_note = Mutex::new(None);
    let live_max = Mutex::new((0u64, 0u64, 0u64));
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                let mut local = Stats::default();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count || fail_fast && failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let r = run_seed(start + i, false);
                    local.merge(&r.stats);
                    if let Some(at) = r.live_max_at {
                        let mut m = live_max.lock().unwrap();
                        if r.stats.live_max_permille > m.0 {
                            *m = (r.stats.live_max_permille, r.seed, at);
                        }
                    }
                    if r.beyond_note.is_some() {
                        let mut note = beyond_note.lock().unwrap();
                        if note.is_none() {
                            *note = r.beyond_note.clone();
                        }
                    }
                    if r.failure.is_some() {
                        failed.store(true, Ordering::Relaxed);
                        failures.lock().unwrap().push(r);
                    }
                }
                total.lock().unwrap().merge(&local);
            });
        }
    });
    let secs = started.elapsed().as_secs_f64();
    let (permille, seed, at) = live_max.into_inner().unwrap();
    if permille > 0 {
        println!(
            "closest to the liveness bound: {}.{}% of it, seed {seed} at t={:.3}s",
            permille / 10,
            permille % 10,
            at as f64 / 1e9
        );
    }
    let mut failures = failures.into_inner().unwrap();
    failures.sort_by_key(|r| r.seed);
    (
        total.into_inner().unwrap(),
        failures,
        beyond_note.into_inner().unwrap(),
        secs,
    )
}

fn summary(s: &Stats, secs: f64) -> String {
    let mut out = format!(
        "simulation: {} seeds in {:.1}s ({:.0} seeds/s), {:.0} virtual hours, {} events\n",
        s.runs,
        secs,
        s.runs as f64 / secs.max(1e-9),
        s.virtual_ms as f64 / 3.6e6,
        s.events
    );
    let groups: [(&str, &[&str]); 8] = [
        ("runs", &["runs", "runs_beyond", "runs_chaos", "polls"]),
        (
            "requests",
            &[
                "req_put",
                "req_update",
                "req_get",
                "req_delete",
                "req_transact",
                "max_req_per_client_sec",
            ],
        ),
        (
            "faults",
            &[
                "f_req_drop",
                "f_resp_drop",
                "f_dup",
                "f_long_delay",
                "f_throttle",
                "f_5xx_before",
                "f_5xx_after",
                "f_conn_error",
                "f_malformed_after",
                "f_conflict",
                "f_pauses",
                "f_suspends",
                "f_check_pauses",
                "f_deaths",
                "f_ttl_deletes",
                "f_res_long",
                "f_outages",
                "f_outage_hits",
                "late_responses",
            ],
        ),
        (
            "cancel",
            &[
                "cuts_acquire",
                "handles_dropped",
                "abandoned",
                "orphan_checks",
                "late_landings",
                "items_left",
            ],
        ),
        (
            "lock",
            &[
                "acq_create",
                "acq_steal",
                "takeovers",
                "acquired",
                "busy",
                "gave_up",
                "rel_released",
                "rel_gone",
                "rel_not_owner",
                "rel_already_lost",
                "rel_unconfirmed",
                "loss_stolen",
                "loss_deleted",
                "loss_expired",
            ],
        ),
        (
            "resource",
            &[
                "work_writes",
                "stale_landed",
                "stale_accepted",
                "fence_rejected",
                "guarded_writes",
                "guarded_accepted",
                "fence_regressions",
                "fence_regressions_late_create",
                "fence_regressions_undocumented",
                "fence_misorder_after_regression",
            ],
        ),
        (
            "liveness",
            &[
                "live_windows",
                "live_met",
                "live_checked",
                "live_max_permille",
            ],
        ),
        (
            "violations",
            &[
                "v_exclusion",
                "v_stale_write",
                "v_liveness",
                "v_storm",
                "v_spin",
                "v_model",
                "v_fence",
                "v_bound",
                "v_orphan",
                "v_leak",
                "v_other",
                "beyond_exclusion",
                "beyond_stale_write",
            ],
        ),
    ];
    let fields = s.fields();
    for (name, keys) in groups {
        out.push_str(&format!("  {name:<10}"));
        for k in keys {
            let v = fields
                .iter()
                .find(|(f, _)| f == k)
                .map(|(_, v)| *v)
                .unwrap();
            out.push_str(&format!(" {k}={v}"));
        }
        out.push('\n');
    }
    out
}

/// The simulation over many seeds (or the one in `SIM_SEED`).
#[test]
fn simulate() {
    if let Some(seed) = env_u64("SIM_SEED") {
        let echo = std::env::var_os("SIM_TRACE").is_some();
        let w = World::new(seed, echo);
        let r = w.run();
        println!("{}", summary(&r.stats, 1.0));
        println!("trace hash {:016x}", r.hash);
        if let Some(note) = &r.beyond_note {
            println!("(beyond-bounds run; first expected violation)\n{note}");
        }
        if let Some(f) = &r.failure {
            panic!("{f}");
        }
        return;
    }
    let default = if cfg!(debug_assertions) {
        DEFAULT_SEEDS_DEBUG
    } else {
        DEFAULT_SEEDS_RELEASE
    };
    let count = env_u64("SIM_SEEDS").unwrap_or(default);
    let start = env_u64("SIM_START").unwrap_or(0);
    let (stats, failures, beyond_note, secs) = run_many(start, count);
    println!("{}", summary(&stats, secs));
    if let Some(note) = beyond_note.filter(|_| std::env::var_os("SIM_SHOW_BEYOND").is_some()) {
        println!("example of an expected beyond-bounds violation:\n{note}");
    }
    if !failures.is_empty() {
        for f in failures.iter().take(3) {
            eprintln!("{}", f.failure.as_deref().unwrap());
        }
        let seeds: Vec<u64> = failures.iter().map(|r| r.seed).collect();
        panic!(
            "{} of {} seeds violated an invariant: {:?}{}",
            seeds.len(),
            count,
            &seeds[..seeds.len().min(50)],
            if seeds.len() > 50 { " ..." } else { "" }
        );
    }
    assert_eq!(stats.violations(), 0);
    // The checker must not be blind: runs beyond the bounds do break the lock.
    if stats.runs_beyond >= 200 {
        assert!(
            stats.beyond_exclusion + stats.beyond_stale_write > 0,
            "{} beyond-bounds runs and not one violation detected: is the checker blind?",
            stats.runs_beyond
        );
    }
}

/// One seed, run twice: the same trace, event for event.
#[test]
fn same_seed_same_run() {
    for seed in [1u64, 7, 42, 1234, 99_999] {
        let a = run_seed(seed, false);
        let b = run_seed(seed, false);
        assert_eq!(a.hash, b.hash, "seed {seed} is not deterministic");
        assert_eq!(
            format!("{:?}", a.stats),
            format!("{:?}", b.stats),
            "seed {seed}"
        );
        assert!(a.stats.events > 100, "seed {seed} did almost nothing");
    }
    assert_ne!(run_seed(1, false).hash, run_seed(2, false).hash);
}

/// Every `Sleep(t)` the core returns has `t > now`, and the machines never send in a loop at
/// one instant (the "poll timeout must move forward" rule).
#[test]
fn core_poll_always_moves_forward() {
    let episodes: u64 = if cfg!(debug_assertions) {
        30_000
    } else {
        300_000
    };
    let start = env_u64("SIM_START").unwrap_or(0);
    let mut report = sim::forward::Report {
        polls: 0,
        sends: 0,
        episodes: 0,
    };
    for seed in start..start + episodes {
        if let Err(e) = sim::forward::episode(seed, &mut report) {
            panic!("seed {seed}: {e}");
        }
    }
    println!(
        "poll-forward: {} episodes, {} polls, {} requests",
        report.episodes, report.polls, report.sends
    );
    assert!(report.sends > episodes);
}
