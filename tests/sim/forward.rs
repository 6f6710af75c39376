//! "A deadline must move forward": drives the core's machines against an adversarial
//! environment (a real simulated table that other writers change behind the machine's back,
//! random errors, applied-but-failed writes, time that advances by zero, by a nanosecond,
//! past deadlines or stops short of them) and checks on every poll that
//!
//! * `Sleep(t)` has `t > now` (a host that sleeps until `t` and polls again cannot spin);
//! * `Send` is followed by `AwaitResponse` until the answer is handled (no double send);
//! * at one instant, at most a few requests follow each other (each needs an answer that
//!   changed something; anything more is a loop that does not advance);
//! * `Done` is sticky;
//! * `AwaitResponse` never appears with nothing in flight.

use std::time::Duration;

use ddb_lock::core::{Acquire, Held, Layout, LockKey, Outcome, Request, Step};
use ddb_lock::dynamodb::{AttributeValue, Error, Item, TransportError};
use ddb_lock::time::{Instant, Now, WallTime};
use ddb_lock::{LockOptions, TableOptions};

use super::db::{Db, OWNER, RVN};
use super::rng::SimRng;

/// Sends allowed at a single instant before it counts as a loop that does not advance.
pub const MAX_SENDS_PER_INSTANT: u32 = 6;

pub struct Report {
    pub polls: u64,
    pub sends: u64,
    pub episodes: u64,
}

struct Env {
    rng: SimRng,
    db: Db,
    key: (String, String),
    now: Now,
    polls: u64,
    sends: u64,
}

impl Env {
    fn advance(&mut self, target: Option<Instant>) {
        let d = match self.rng.range(0, 9) {
            0..=2 => 0,
            3 => 1,
            4 => self.rng.range(1, 1_000_000),
            5 => self.rng.range(1_000_000, 3_000_000_000),
            _ => match target {
                // Exactly at, just before, or after the deadline the machine asked for.
                Some(t) => {
                    let to = t.as_nanos().saturating_sub(self.now.mono.as_nanos());
                    match self.rng.range(0, 2) {
                        0 => to,
                        1 => to.saturating_sub(1),
                        _ => to + self.rng.range(0, 50_000_000),
                    }
                }
                None => self.rng.range(0, 100_000_000),
            },
        };
        self.now = Now::new(
            Instant::from_nanos(self.now.mono.as_nanos() + d),
            WallTime::from_millis(self.now.wall.as_millis() + d / 1_000_000),
        );
    }

    /// Someone else changes the item: a new holder, a renewal, a delete.
    fn interfere(&mut self) {
        if !self.rng.chance(0.25) {
            return;
        }
        let item = if self.rng.chance(0.3) {
            None
        } else {
            let mut i: Item = Item::new();
            i.insert("lockId".into(), AttributeValue::s(&self.key.0));
            i.insert("lockGroup".into(), AttributeValue::s(&self.key.1));
            i.insert(
                OWNER.into(),
                AttributeValue::s(format!("other-{}", self.rng.range(0, 2))),
            );
            i.insert(
                RVN.into(),
                AttributeValue::s(format!("x-{}", self.rng.u64())),
            );
            i.insert(
                "leaseDurationInMs".into(),
                AttributeValue::n(self.rng.range(1, 3000)),
            );
            i.insert(
                "lastUpdatedTimeInMs".into(),
                AttributeValue::n(self.now.wall.as_millis()),
            );
            Some(i)
        };
        self.db.force(self.key.clone(), item);
    }

    fn answer(&mut self, req: &Request) -> Outcome {
        self.interfere();
        let apply = |env: &mut Env| {
            env.db
                .apply(req)
                .expect("the core's request is well-formed")
        };
        match self.rng.range(0, 19) {
            0 => Err(Error::Throttled {
                code: "ThrottlingException".into(),
                message: String::new(),
            }),
            1 | 2 => {
                if self.rng.chance(0.5) {
                    apply(self);
                }
                Err(Error::Transport(if self.rng.chance(0.5) {
                    TransportError::timeout()
                } else {
                    TransportError::new("reset")
                }))
            }
            3 => {
                if self.rng.chance(0.5) {
                    apply(self);
                }
                Err(Error::Server {
                    status: 500,
                    code: "InternalServerError".into(),
                    message: String::new(),
                })
            }
            4 => {
                apply(self);
                Err(Error::Malformed {
                    status: 200,
                    reason: "garbled".into(),
                })
            }
            _ => apply(self).outcome,
        }
    }
}

fn options(rng: &mut SimRng) -> LockOptions {
    let lease = Duration::from_millis(rng.range(1, 3000));
    let mut o = LockOptions::new()
        .keep_item_on_release(rng.chance(0.5))
        .lease(lease)
        .prolong(rng.chance(0.8))
        .prolong_every((lease / 3).max(Duration::from_nanos(1)))
        .poll_interval(Duration::from_millis(rng.range(1, 1500)));
    if o.validate().is_err() {
        o = o.prolong(false);
    }
    if rng.chance(0.3) {
        o = o
            .trust_local_time(true)
            .wait_duration(Duration::from_millis(rng.range(1, 2000)))
            .max_clock_skew(Duration::from_millis(rng.range(0, 500)));
    }
    if rng.chance(0.3) {
        o = o.max_retry_count(rng.range(0, 20) as u32);
    }
    if rng.chance(0.3) {
        o = o.acquire_timeout(Duration::from_millis(rng.range(0, 20_000)));
    }
    o.validate().expect("valid options");
    o
}

/// One poll's checks. `sends_here` counts sends at the current instant.
fn check<T: PartialEq + std::fmt::Debug>(
    what: &str,
    step: &Step<T>,
    now: Now,
    inflight: bool,
    sends_here: &mut u32,
) -> Result<(), String> {
    match step {
        Step::Sleep(t) if *t <= now.mono => Err(format!(
            "{what}: Sleep({t:?}) at now {:?} does not move forward",
            now.mono
        )),
        Step::AwaitResponse if !inflight => {
            Err(format!("{what}: AwaitResponse with nothing in flight"))
        }
        Step::Send(_) if inflight => Err(format!("{what}: Send while a request is in flight")),
        Step::Send(_) => {
            *sends_here += 1;
            if *sends_here > MAX_SENDS_PER_INSTANT {
                Err(format!(
                    "{what}: {} requests at one instant {:?} without time advancing",
                    sends_here, now.mono
                ))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// Runs one episode: an acquisition, then (if it succeeded) renewals and a release.
pub fn episode(seed: u64, report: &mut Report) -> Result<(), String> {
    let mut rng = SimRng::seeded(seed);
    let table = TableOptions::new().table_name("locks");
    let layout = Layout::new(
        table.clone(),
        LockKey {
            group: "g".into(),
            id: "k".into(),
        },
    );
    let mut env = Env {
        db: Db::new(&table),
        key: ("k".into(), "g".into()),
        now: Now::new(
            Instant::from_nanos(rng.range(0, 1 << 40)),
            WallTime::from_millis(1_700_000_000_000 + rng.range(0, 1 << 30)),
        ),
        rng,
        polls: 0,
        sends: 0,
    };
    env.interfere();
    let opts = options(&mut env.rng);
    let try_only = env.rng.chance(0.2);
    let read_first = env.rng.chance(0.3);
    let mut m = Acquire::new(
        layout.clone(),
        "me".into(),
        opts.clone(),
        try_only,
        None,
        read_first,
        env.rng.core_rng(),
        env.now,
    );
    let mut sends_here = 0u32;
    let mut last = env.now.mono;
    let mut acquired = None;
    for _ in 0..400 {
        if env.now.mono != last {
            sends_here = 0;
            last = env.now.mono;
        }
        env.polls += 1;
        let step = m.poll(env.now);
        check("Acquire::poll", &step, env.now, false, &mut sends_here)?;
        match step {
            Step::Send(req) => {
                env.sends += 1;
                let again = m.poll(env.now);
                check(
                    "Acquire::poll (in flight)",
                    &again,
                    env.now,
                    true,
                    &mut sends_here,
                )?;
                let out = env.answer(&req);
                if env.rng.chance(0.5) {
                    env.advance(None);
                }
                m.handle(env.now, out);
            }
            Step::Sleep(t) => env.advance(Some(t)),
            Step::AwaitResponse => unreachable!("checked"),
            Step::Done(r) => {
                if m.poll(env.now) != Step::Done(r.clone()) {
                    return Err("Acquire: Done is not sticky".into());
                }
                acquired = r.ok();
                break;
            }
        }
    }
    report.episodes += 1;
    let Some(a) = acquired else {
        report.polls += env.polls;
        report.sends += env.sends;
        return Ok(());
    };
    // Hold: renewals, with the release starting at a random point.
    let mut h = Held::new(layout, a, &opts, env.rng.core_rng());
    let release_at = env.rng.range(0, 60);
    let mut inflight = false;
    let mut releasing = false;
    for i in 0..400 {
        if env.now.mono != last {
            sends_here = 0;
            last = env.now.mono;
        }
        if i == release_at && !releasing {
            h.begin_release();
            releasing = true;
        }
        env.polls += 1;
        if releasing {
            let step = h.poll_release(env.now);
            check(
                "Held::poll_release",
                &step,
                env.now,
                inflight,
                &mut sends_here,
            )?;
            match step {
                Step::Send(req) => {
                    env.sends += 1;
                    let again = h.poll_release(env.now);
                    check(
                        "Held::poll_release (in flight)",
                        &again,
                        env.now,
                        true,
                        &mut sends_here,
                    )?;
                    let out = env.answer(&req);
                    if env.rng.chance(0.5) {
                        env.advance(None);
                    }
                    h.handle(env.now, out);
                    inflight = false;
                }
                Step::Sleep(t) => env.advance(Some(t)),
                Step::AwaitResponse => {
                    // A renewal was in flight when the release began: answer it.
                    return Err("Held::poll_release: AwaitResponse with nothing in flight".into());
                }
                Step::Done(r) => {
                    if h.poll_release(env.now) != Step::Done(r) {
                        return Err("Held::poll_release: Done is not sticky".into());
                    }
                    break;
                }
            }
        } else {
            let step = h.poll_renew(env.now);
            check(
                "Held::poll_renew",
                &step,
                env.now,
                inflight,
                &mut sends_here,
            )?;
            match step {
                Step::Send(req) => {
                    env.sends += 1;
                    let again = h.poll_renew(env.now);
                    if matches!(again, Step::Send(_) | Step::Sleep(_)) {
                        return Err(format!("Held::poll_renew (in flight): {again:?}"));
                    }
                    let out = env.answer(&req);
                    if env.rng.chance(0.5) {
                        env.advance(None);
                    }
                    h.handle(env.now, out);
                }
                Step::Sleep(t) => env.advance(Some(t)),
                Step::AwaitResponse => unreachable!("checked"),
                Step::Done(reason) => {
                    if h.poll_renew(env.now) != Step::Done(reason) {
                        return Err("Held::poll_renew: Done is not sticky".into());
                    }
                    // Lost: the application may still release (deletes after an expiry).
                    h.begin_release();
                    releasing = true;
                }
            }
        }
    }
    report.polls += env.polls;
    report.sends += env.sends;
    Ok(())
}
