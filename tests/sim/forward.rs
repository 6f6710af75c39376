//! "A deadline must move forward": drives the core's `LockMachine` against an adversarial
//! environment (a real simulated table that other writers change behind the machine's back,
//! random errors, applied-but-failed writes, answers out of order or never, time that
//! advances by zero, by a nanosecond, past deadlines or stops short of them, release and
//! abandon at random points) and checks on every poll that
//!
//! * `Wait(t)` has `t > now` (a host that sleeps until `t` and polls again cannot spin);
//! * `Idle` appears only with nothing in flight (else it must name the flight's deadline);
//! * at one instant, at most a few requests follow each other (each needs an answer that
//!   changed something; anything more is a loop that does not advance);
//! * `Ended` and the acquisition's result are sticky;
//! * every answer for a request in flight is taken (`Used`, or `Late` once its deadline
//!   passed), and one for a request never sent is refused.

use std::time::Duration;

use ddb_lock::core::{
    Handled, Layout, LockKey, LockMachine, Outcome, Output, Request, RequestId, Start,
};
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

/// Runs one episode: a machine from its first request to its end (or 600 steps).
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
    let start = Start {
        try_only: env.rng.chance(0.2),
        read_first: env.rng.chance(0.3),
        own_versions: if env.rng.chance(0.2) {
            vec!["mine-before".into()]
        } else {
            Vec::new()
        },
        prior: None,
    };
    let timeout = Duration::from_millis(env.rng.range(1, 3000));
    let mut m = LockMachine::new(
        layout,
        "me".into(),
        opts,
        start,
        timeout,
        env.rng.core_rng(),
        env.now,
    );
    let release_at = env.rng.range(0, 200);
    let abandon = env.rng.chance(0.1);
    let mut in_flight: Vec<(RequestId, Request)> = Vec::new();
    let mut sends_here = 0u32;
    let mut last = env.now.mono;
    let mut acquisition = None;
    let mut ended = false;
    let mut answered = Vec::new();
    let mut phase_changes = 0;
    for step in 0..600u64 {
        if env.now.mono != last {
            sends_here = 0;
            last = env.now.mono;
        }
        if step == release_at {
            if abandon {
                m.abandon(env.now);
            } else {
                m.release(env.now);
            }
        }
        // Answer one request in flight now and then (out of order), or drop it.
        if !in_flight.is_empty() && env.rng.chance(0.6) {
            let i = env.rng.range(0, in_flight.len() as u64 - 1) as usize;
            let (id, req) = in_flight.remove(i);
            if env.rng.chance(0.05) {
                // Never answered: the machine's own deadline must free it.
                continue;
            }
            let out = env.answer(&req);
            if env.rng.chance(0.5) {
                env.advance(None);
            }
            match m.handle(env.now, id, out) {
                Ok(Handled::Used | Handled::Late) => answered.push(id),
                Err(e) => return Err(format!("an answer for a request in flight refused: {e}")),
            }
            continue;
        }
        env.polls += 1;
        let out = m.poll(env.now);
        if let Some(a) = &acquisition
            && m.acquisition() != Some(a)
        {
            return Err("the acquisition's result changed".into());
        }
        acquisition = m.acquisition().cloned();
        match out {
            Output::Send {
                id,
                request,
                deadline,
            } => {
                if ended {
                    return Err("a request after Ended".into());
                }
                if deadline <= env.now.mono {
                    return Err(format!(
                        "a request whose deadline {deadline:?} is not after now"
                    ));
                }
                env.sends += 1;
                sends_here += 1;
                if sends_here > MAX_SENDS_PER_INSTANT {
                    return Err(format!(
                        "{sends_here} requests at one instant {:?} without time advancing",
                        env.now.mono
                    ));
                }
                in_flight.push((id, request));
            }
            Output::Wait(t) => {
                if t <= env.now.mono {
                    return Err(format!(
                        "Wait({t:?}) at now {:?} does not move forward",
                        env.now.mono
                    ));
                }
                env.advance(Some(t));
            }
            Output::PhaseChanged(_) => {
                phase_changes += 1;
                if phase_changes > 1 {
                    return Err("more than one phase change out of the acquisition".into());
                }
            }
            Output::Idle => {
                if m.in_flight() > 0 {
                    return Err("Idle with a request in flight".into());
                }
                if !in_flight.is_empty() {
                    // Our answers are late now: the machine gave up on them.
                    in_flight.clear();
                }
                // A lost lock waits for its handle: release it.
                m.release(env.now);
                env.advance(None);
            }
            Output::Ended => {
                ended = true;
                if m.poll(env.now) != Output::Ended {
                    return Err("Ended is not sticky".into());
                }
                if in_flight.is_empty() {
                    break;
                }
            }
        }
    }
    // An answer given twice is refused the second time.
    if let Some(id) = answered.first()
        && m.handle(
            env.now,
            *id,
            Err(Error::Transport(TransportError::timeout())),
        )
        .is_ok()
    {
        return Err("an answer for a request no longer in flight was taken".into());
    }
    report.episodes += 1;
    report.polls += env.polls;
    report.sends += env.sends;
    Ok(())
}
