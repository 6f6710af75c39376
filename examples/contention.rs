//! Contention driver: W workers fight over one lock on DynamoDB Local.
//!
//! ```text
//! bash scripts/ddb-local.sh run -- cargo run --release --example contention
//! bash scripts/ddb-local.sh run -- cargo run --release --example contention -- --workers 8 --secs 5
//! ```
//!
//! Each worker has its own [`LockClient`] (its own owner) and loops: `lock` the shared key,
//! hold it 50 ms, release it, pause 100 ms. Waiters poll every 100 ms. The lease is 2 s with
//! prolonging off: a 50 ms hold ends long before the first renewal could be due (renewals
//! must come more often than every lease / 2 = 1 s), so renewal would add a background task
//! per acquisition and no request, and the request counts printed are those of acquiring
//! and releasing alone. A worker that died holding the lock would be taken over after 2 s.
//!
//! Options (flags, or the environment variable in brackets):
//!
//! ```text
//! --workers N     [CONTENTION_WORKERS]   workers (default 20)
//! --secs D        [CONTENTION_SECS]      run time in seconds (default 20)
//! --hold-ms H     [CONTENTION_HOLD_MS]   time held (default 50)
//! --pause-ms P    [CONTENTION_PAUSE_MS]  pause after a release (default 100)
//! --poll-ms I     [CONTENTION_POLL_MS]   waiters' poll interval (default 100)
//! --lease-ms L    [CONTENTION_LEASE_MS]  lease (default 2000)
//! --stagger-ms S  [CONTENTION_STAGGER_MS] spread the workers' starts evenly over S ms (default 0)
//! ```
//!
//! Printed: acquisitions per second, DynamoDB requests per acquisition by operation (failed
//! conditional writes apart), the handoff gap (a release completing to the next acquisition
//! completing, on one monotonic clock), how many workers ever got the lock, and a mutual
//! exclusion check (asserted). Refused writes are split by cause (a call that began with a
//! write while the lock was held, or a race lost after a read showed the lock free) through a
//! thin host wrapper that notes each request's kind and outcome; it sends nothing extra. Targets: >= 17 acquisitions/s, <= 0.2 failed conditional
//! writes per acquisition, every worker gets the lock.
#![allow(clippy::disallowed_methods)] // A load driver measures real elapsed time.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ddb_lock::dynamodb::{HttpRequest, HttpResponse, TransportError};
use ddb_lock::host::{Clock, Entropy, Spawn, Timer, Transport};
use ddb_lock::rt::TokioHost;
use ddb_lock::table::CreateTableOptions;
use ddb_lock::time::Now;
use ddb_lock::{
    AcquireError, ClientConfig, Credentials, LockClient, LockOptions, OpStats, ReleaseOutcome,
    Stats, TableOptions,
};

const GROUP: &str = "contention";
const ID: &str = "shared";

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// DynamoDB Local's endpoint.
    pub endpoint: String,
    /// Workers, each with its own client.
    pub workers: usize,
    /// How long the workers keep starting new acquisitions.
    pub duration: Duration,
    /// Time the lock is held.
    pub hold: Duration,
    /// Pause after a release before asking again.
    pub pause: Duration,
    /// The waiters' poll interval.
    pub poll: Duration,
    /// The lease (prolonging is off).
    pub lease: Duration,
    /// Worker `i` starts `i * stagger / workers` after the first.
    pub stagger: Duration,
}

impl Config {
    /// The defaults of the brief: 20 workers, 20 s, hold 50 ms, pause 100 ms, poll 100 ms,
    /// lease 2 s, endpoint from `DDB_LOCAL_ENDPOINT`.
    pub fn from_env_and_args() -> Result<Config, String> {
        let endpoint = std::env::var("DDB_LOCAL_ENDPOINT")
            .ok()
            .filter(|e| !e.is_empty())
            .ok_or(
                "DDB_LOCAL_ENDPOINT is not set; run under DynamoDB Local:\n  \
                 bash scripts/ddb-local.sh run -- cargo run --release --example contention",
            )?;
        let env = |name: &str, default: u64| -> Result<u64, String> {
            match std::env::var(name) {
                Ok(v) => v
                    .parse()
                    .map_err(|_| format!("{name}={v:?} is not a number")),
                Err(_) => Ok(default),
            }
        };
        let mut workers = env("CONTENTION_WORKERS", 20)?;
        let mut secs = env("CONTENTION_SECS", 20)?;
        let mut hold = env("CONTENTION_HOLD_MS", 50)?;
        let mut pause = env("CONTENTION_PAUSE_MS", 100)?;
        let mut poll = env("CONTENTION_POLL_MS", 100)?;
        let mut lease = env("CONTENTION_LEASE_MS", 2000)?;
        let mut stagger = env("CONTENTION_STAGGER_MS", 0)?;
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let target = match flag.as_str() {
                "--workers" => &mut workers,
                "--secs" => &mut secs,
                "--hold-ms" => &mut hold,
                "--pause-ms" => &mut pause,
                "--poll-ms" => &mut poll,
                "--lease-ms" => &mut lease,
                "--stagger-ms" => &mut stagger,
                // `cargo bench`/`cargo test` pass these to every target.
                "--bench" | "--test" | "--nocapture" => continue,
                other => return Err(format!("unknown argument {other:?} (see the file's docs)")),
            };
            let value = args
                .next()
                .ok_or(format!("{flag} needs a value"))?
                .parse()
                .map_err(|_| format!("{flag} needs a number"))?;
            *target = value;
        }
        if workers == 0 || secs == 0 {
            return Err("--workers and --secs must be positive".into());
        }
        Ok(Config {
            endpoint,
            workers: workers as usize,
            duration: Duration::from_secs(secs),
            hold: Duration::from_millis(hold),
            pause: Duration::from_millis(pause),
            poll: Duration::from_millis(poll),
            lease: Duration::from_millis(lease),
            stagger: Duration::from_millis(stagger),
        })
    }
}

/// What one request was and how it ended, as the driver's host saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    /// `GetItem` that found the lock item.
    ReadHeld,
    /// `GetItem` that found no item: the lock was free.
    ReadFree,
    /// A conditional write that succeeded.
    WriteOk,
    /// A conditional write refused by its condition.
    WriteRefused,
    /// Anything else.
    Other,
}

/// [`TokioHost`] that also notes every request's kind and outcome, so the driver can tell
/// *why* writes were refused. Adds no request and no await point.
#[derive(Clone)]
struct TracingHost {
    inner: TokioHost,
    log: Arc<Mutex<Vec<Seen>>>,
}

impl TracingHost {
    fn new() -> Self {
        TracingHost {
            inner: TokioHost::new(),
            log: Arc::default(),
        }
    }

    fn take(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.log.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Clock for TracingHost {
    fn now(&self) -> Now {
        self.inner.now()
    }
}

impl Timer for TracingHost {
    type Sleep = <TokioHost as Timer>::Sleep;
    fn sleep_until(&self, deadline: ddb_lock::time::Instant) -> Self::Sleep {
        self.inner.sleep_until(deadline)
    }
}

impl Entropy for TracingHost {
    fn fill(&self, buf: &mut [u8]) {
        self.inner.fill(buf)
    }
}

impl Spawn for TracingHost {
    fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.inner.spawn(task)
    }
}

impl Transport for TracingHost {
    type Response = Pin<Box<dyn Future<Output = Result<HttpResponse, TransportError>> + Send>>;

    fn send(&self, request: HttpRequest) -> Self::Response {
        let target = request
            .headers
            .iter()
            .find(|(k, _)| k == "x-amz-target")
            .map(|(_, v)| v.rsplit('.').next().unwrap_or_default().to_owned())
            .unwrap_or_default();
        let pending = self.inner.send(request);
        let log = self.log.clone();
        Box::pin(async move {
            let result = pending.await;
            let body = |r: &HttpResponse| String::from_utf8_lossy(&r.body).into_owned();
            let seen = match (target.as_str(), &result) {
                ("GetItem", Ok(r)) if r.status == 200 => {
                    if body(r).contains("\"Item\"") {
                        Seen::ReadHeld
                    } else {
                        Seen::ReadFree
                    }
                }
                ("PutItem" | "UpdateItem" | "DeleteItem", Ok(r)) if r.status == 200 => {
                    Seen::WriteOk
                }
                ("PutItem" | "UpdateItem" | "DeleteItem", Ok(r))
                    if body(r).contains("ConditionalCheckFailed") =>
                {
                    Seen::WriteRefused
                }
                _ => Seen::Other,
            };
            log.lock().unwrap_or_else(|e| e.into_inner()).push(seen);
            result
        })
    }
}

/// Why a conditional write was refused, from the requests of one `lock` call.
#[derive(Clone, Copy, Debug, Default)]
struct Refusals {
    /// The call's first request was a write, and the lock was held.
    blind_first_write: u64,
    /// A read had just shown the lock free, but another waiter's write got there first.
    lost_race: u64,
    /// Anything else (e.g. after an ambiguous error).
    other: u64,
    /// Calls that began with a write (not a read).
    calls_writing_first: u64,
    /// Calls that began with a read (the client had seen the key contended).
    calls_reading_first: u64,
}

impl Refusals {
    fn of(call: &[Seen]) -> Refusals {
        let mut r = Refusals::default();
        match call.first() {
            Some(Seen::ReadHeld | Seen::ReadFree) => r.calls_reading_first += 1,
            Some(_) => r.calls_writing_first += 1,
            None => {}
        }
        for (i, seen) in call.iter().enumerate() {
            if *seen != Seen::WriteRefused {
                continue;
            }
            match i.checked_sub(1).map(|j| call[j]) {
                None => r.blind_first_write += 1,
                Some(Seen::ReadFree) => r.lost_race += 1,
                Some(_) => r.other += 1,
            }
        }
        r
    }

    fn add(&mut self, o: Refusals) {
        self.blind_first_write += o.blind_first_write;
        self.lost_race += o.lost_race;
        self.other += o.other;
        self.calls_writing_first += o.calls_writing_first;
        self.calls_reading_first += o.calls_reading_first;
    }
}

/// One critical section, on the shared clock.
#[derive(Clone, Copy, Debug)]
struct Section {
    worker: usize,
    /// `lock` returned.
    acquired: Instant,
    /// `release` was called.
    releasing: Instant,
    /// `release` returned.
    released: Instant,
    /// How long `lock` took.
    wait: Duration,
    /// The lock was free when asked for: no holder was seen before the write that took it.
    first_try: bool,
}

/// What a run measured.
#[derive(Debug)]
pub struct Report {
    /// The run's settings.
    pub config: Config,
    /// Acquisitions completed within the run time.
    pub acquisitions_in_window: usize,
    /// All acquisitions (including the ones completing after the run time).
    pub acquisitions: usize,
    /// Acquisitions per worker.
    pub per_worker: Vec<usize>,
    /// Requests of all workers' clients.
    pub stats: Stats,
    /// Handoff gaps in ms (negative: the next acquisition completed before the previous
    /// release call returned), sorted.
    pub gaps_ms: Vec<f64>,
    /// `lock` call durations in ms, sorted.
    pub waits_ms: Vec<f64>,
    /// Mean time held (acquired to release called) in ms.
    pub held_ms: f64,
    /// Mean `release` call duration in ms.
    pub release_ms: f64,
    /// Acquisitions that found the lock free (no holder seen while waiting).
    pub first_try: usize,
    /// Refused writes by cause.
    refusals: Refusals,
    /// Critical sections that overlapped another (must be 0).
    pub overlaps: usize,
    /// Critical sections entered while another worker was inside (must be 0).
    pub concurrent_entries: usize,
    /// Locks found no longer held at the end of their critical section (must be 0).
    pub not_held_at_end: usize,
    /// Releases that did not answer `Released` (must be 0).
    pub bad_releases: usize,
}

fn add(a: OpStats, b: OpStats) -> OpStats {
    OpStats {
        requests: a.requests + b.requests,
        conditional_failures: a.conditional_failures + b.conditional_failures,
    }
}

fn sum(a: &Stats, b: &Stats) -> Stats {
    Stats {
        put_item: add(a.put_item, b.put_item),
        update_item: add(a.update_item, b.update_item),
        get_item: add(a.get_item, b.get_item),
        delete_item: add(a.delete_item, b.delete_item),
        other: add(a.other, b.other),
        throttled: a.throttled + b.throttled,
        errors: a.errors + b.errors,
        capacity_units: a.capacity_units + b.capacity_units,
        unexpected_responses: a.unexpected_responses + b.unexpected_responses,
    }
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Shared {
    inside: AtomicUsize,
    concurrent_entries: AtomicUsize,
    not_held_at_end: AtomicUsize,
    bad_releases: AtomicUsize,
}

/// Runs the workers and measures. Needs a multi-threaded or current-thread tokio runtime.
pub async fn drive(config: Config) -> Report {
    let table = TableOptions::new().table_name(format!(
        "contention-{}-{}",
        std::process::id(),
        config.workers
    ));
    let client_config = |owner: String| {
        ClientConfig::new("us-east-1", Credentials::new("local", "local", None))
            .endpoint_url(&config.endpoint)
            .table(table.clone())
            .owner_name(owner)
    };
    let admin = LockClient::new(TracingHost::new(), client_config("admin".into())).expect("config");
    admin
        .create_table(&CreateTableOptions::new())
        .await
        .expect("create the contention table");

    let options = LockOptions::new()
        .lease(config.lease)
        .prolong(false)
        .poll_interval(config.poll);
    let shared = Arc::new(Shared {
        inside: AtomicUsize::new(0),
        concurrent_entries: AtomicUsize::new(0),
        not_held_at_end: AtomicUsize::new(0),
        bad_releases: AtomicUsize::new(0),
    });
    let start = Instant::now();
    let deadline = start + config.duration;
    let mut tasks = Vec::new();
    for worker in 0..config.workers {
        let host = TracingHost::new();
        let client = LockClient::new(host.clone(), client_config(format!("worker-{worker}")))
            .expect("config");
        let options = options.clone();
        let shared = shared.clone();
        let config = config.clone();
        tasks.push(tokio::spawn(async move {
            let offset = config.stagger * worker as u32 / config.workers as u32;
            tokio::time::sleep_until((start + offset).into()).await;
            let mut sections = Vec::new();
            let mut refusals = Refusals::default();
            loop {
                let asked = Instant::now();
                if asked >= deadline {
                    break;
                }
                let before = client.stats();
                let options = options.clone().acquire_timeout(deadline - asked);
                host.take();
                let result = client.lock(GROUP, ID, &options).await;
                refusals.add(Refusals::of(&host.take()));
                let lock = match result {
                    Ok(lock) => lock,
                    Err(AcquireError::Timeout { .. }) => break,
                    Err(e) => panic!("worker {worker}: lock failed: {e}"),
                };
                let acquired = Instant::now();
                if shared.inside.fetch_add(1, Ordering::SeqCst) != 0 {
                    shared.concurrent_entries.fetch_add(1, Ordering::SeqCst);
                }
                let after = client.stats();
                // Free on arrival: one write that succeeded, after at most one read (a
                // client that saw the key contended reads before writing).
                let first_try = after.put_item.requests - before.put_item.requests == 1
                    && after.conditional_failures() == before.conditional_failures()
                    && after.get_item.requests - before.get_item.requests <= 1
                    && after.update_item.requests == before.update_item.requests;
                tokio::time::sleep(config.hold).await;
                if !lock.is_held() {
                    shared.not_held_at_end.fetch_add(1, Ordering::SeqCst);
                }
                shared.inside.fetch_sub(1, Ordering::SeqCst);
                let releasing = Instant::now();
                match lock.release().await {
                    Ok(ReleaseOutcome::Released) => {}
                    Ok(other) => {
                        eprintln!("worker {worker}: release answered {other:?}");
                        shared.bad_releases.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => {
                        eprintln!("worker {worker}: release failed: {e}");
                        shared.bad_releases.fetch_add(1, Ordering::SeqCst);
                    }
                }
                let released = Instant::now();
                sections.push(Section {
                    worker,
                    acquired,
                    releasing,
                    released,
                    wait: acquired - asked,
                    first_try,
                });
                tokio::time::sleep(config.pause).await;
            }
            (sections, client.stats(), refusals)
        }));
    }

    let mut sections = Vec::new();
    let mut stats = Stats::default();
    let mut refusals = Refusals::default();
    for task in tasks {
        let (s, st, r) = task.await.expect("worker panicked");
        sections.extend(s);
        stats = sum(&stats, &st);
        refusals.add(r);
    }
    sections.sort_by_key(|s| s.acquired);

    let mut per_worker = vec![0; config.workers];
    for s in &sections {
        per_worker[s.worker] += 1;
    }
    let mut overlaps = 0;
    let mut gaps_ms = Vec::new();
    for pair in sections.windows(2) {
        let (prev, next) = (&pair[0], &pair[1]);
        // The next holder's write can only succeed after the previous holder's delete,
        // which is sent after `releasing`.
        if next.acquired <= prev.releasing {
            overlaps += 1;
        }
        let gap = if next.acquired >= prev.released {
            (next.acquired - prev.released).as_secs_f64()
        } else {
            -(prev.released - next.acquired).as_secs_f64()
        };
        gaps_ms.push(gap * 1e3);
    }
    gaps_ms.sort_by(f64::total_cmp);
    let mut waits_ms: Vec<f64> = sections
        .iter()
        .map(|s| s.wait.as_secs_f64() * 1e3)
        .collect();
    waits_ms.sort_by(f64::total_cmp);

    let mean = |f: &dyn Fn(&Section) -> Duration| {
        sections
            .iter()
            .map(|s| f(s).as_secs_f64() * 1e3)
            .sum::<f64>()
            / sections.len().max(1) as f64
    };
    let held_ms = mean(&|s| s.releasing - s.acquired);
    let release_ms = mean(&|s| s.released - s.releasing);

    Report {
        held_ms,
        release_ms,
        acquisitions_in_window: sections.iter().filter(|s| s.acquired <= deadline).count(),
        acquisitions: sections.len(),
        first_try: sections.iter().filter(|s| s.first_try).count(),
        refusals,
        per_worker,
        stats,
        gaps_ms,
        waits_ms,
        overlaps,
        concurrent_entries: shared.concurrent_entries.load(Ordering::SeqCst),
        not_held_at_end: shared.not_held_at_end.load(Ordering::SeqCst),
        bad_releases: shared.bad_releases.load(Ordering::SeqCst),
        config,
    }
}

impl Report {
    /// Acquisitions per second of run time.
    pub fn rate(&self) -> f64 {
        self.acquisitions_in_window as f64 / self.config.duration.as_secs_f64()
    }

    /// Failed conditional writes per acquisition.
    pub fn failed_writes_per_acquisition(&self) -> f64 {
        self.stats.conditional_failures() as f64 / self.acquisitions.max(1) as f64
    }

    /// Workers that got the lock at least once.
    pub fn workers_served(&self) -> usize {
        self.per_worker.iter().filter(|&&n| n > 0).count()
    }

    /// Mutual exclusion held and every release succeeded.
    pub fn exclusive(&self) -> bool {
        self.overlaps == 0
            && self.concurrent_entries == 0
            && self.not_held_at_end == 0
            && self.bad_releases == 0
    }

    /// Prints the figures.
    pub fn print(&self) {
        let c = &self.config;
        let s = &self.stats;
        let n = self.acquisitions.max(1) as f64;
        let per = |x: u64| x as f64 / n;
        let mark = |ok: bool| if ok { "ok" } else { "MISSED" };
        println!(
            "contention: {} workers, {:?}, hold {:?}, pause {:?}, poll {:?}, lease {:?} (prolong off), stagger {:?}",
            c.workers, c.duration, c.hold, c.pause, c.poll, c.lease, c.stagger
        );
        println!(
            "  acquisitions        {} in the run time ({} in all): {:.2}/s   [target >= 17: {}]",
            self.acquisitions_in_window,
            self.acquisitions,
            self.rate(),
            mark(self.rate() >= 17.0)
        );
        println!("  requests per acquisition (all workers' clients):");
        let row = |name: &str, o: OpStats| {
            println!(
                "    {name:<11} {:>6.3}  (ok {:.3}, failed conditional {:.3})",
                per(o.requests),
                per(o.requests - o.conditional_failures),
                per(o.conditional_failures)
            );
        };
        row("PutItem", s.put_item);
        row("GetItem", s.get_item);
        row("UpdateItem", s.update_item);
        row("DeleteItem", s.delete_item);
        println!(
            "    all         {:>6.3}  (other {}, throttled {}, errors {}); capacity {:.2} units/acquisition",
            per(s.requests()),
            s.other.requests,
            s.throttled,
            s.errors,
            s.capacity_units / n
        );
        println!(
            "  failed conditional writes per acquisition {:.3}   [target <= 0.2: {}]",
            self.failed_writes_per_acquisition(),
            mark(self.failed_writes_per_acquisition() <= 0.2)
        );
        let r = &self.refusals;
        println!(
            "    refused because: the call's first request was a write and the lock was held {:.3}, \
             a read had shown it free but another waiter wrote first {:.3}, other {:.3}",
            per(r.blind_first_write),
            per(r.lost_race),
            per(r.other)
        );
        println!(
            "    lock() calls beginning with a write {}, with a read {}",
            r.calls_writing_first, r.calls_reading_first
        );
        println!(
            "  handoff gap (release done -> next acquired)  p50 {:.1} ms  p99 {:.1} ms  mean {:.1} ms  min {:.1} ms  max {:.1} ms",
            percentile(&self.gaps_ms, 50.0),
            percentile(&self.gaps_ms, 99.0),
            self.gaps_ms.iter().sum::<f64>() / self.gaps_ms.len().max(1) as f64,
            self.gaps_ms.first().copied().unwrap_or(f64::NAN),
            self.gaps_ms.last().copied().unwrap_or(f64::NAN),
        );
        println!(
            "  one handoff cycle   held {:.1} ms + release call {:.1} ms + mean gap = {:.1} ms per acquisition",
            self.held_ms,
            self.release_ms,
            self.config.duration.as_secs_f64() * 1e3 / self.acquisitions_in_window.max(1) as f64
        );
        println!(
            "  lock() wait         p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms; free on arrival: {} of {}",
            percentile(&self.waits_ms, 50.0),
            percentile(&self.waits_ms, 99.0),
            self.waits_ms.last().copied().unwrap_or(f64::NAN),
            self.first_try,
            self.acquisitions
        );
        let min = self.per_worker.iter().min().copied().unwrap_or(0);
        let max = self.per_worker.iter().max().copied().unwrap_or(0);
        println!(
            "  workers served      {} of {} (per worker: min {min}, max {max})   [target all: {}]",
            self.workers_served(),
            c.workers,
            mark(self.workers_served() == c.workers)
        );
        println!("  per worker          {:?}", self.per_worker);
        println!(
            "  mutual exclusion    overlapping sections {}, concurrent entries {}, not held at end {}, bad releases {}: {}",
            self.overlaps,
            self.concurrent_entries,
            self.not_held_at_end,
            self.bad_releases,
            if self.exclusive() { "ok" } else { "VIOLATED" }
        );
    }
}

fn main() {
    let config = match Config::from_env_and_args() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let report = runtime.block_on(drive(config));
    report.print();
    assert!(report.exclusive(), "mutual exclusion violated");
}
