//! The run's event trace: a ring of the last events (printed with a failing seed) and a hash
//! of every event (two runs of one seed must agree on it).

use std::collections::VecDeque;
use std::fmt;
use std::hash::{Hash, Hasher};

/// 64-bit FNV-1a: a hasher with no per-process keys, so hashes compare across runs.
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Op {
    Create,
    Steal,
    Renew,
    Get,
    Release,
    ReleaseKeep,
}

/// Record versions appear as `v<N>` (numbered in order of first appearance).
#[derive(Clone, Copy, Debug, Hash)]
pub enum Tr {
    Phase {
        chaos: bool,
    },
    AcquireStart {
        c: u8,
    },
    Send {
        c: u8,
        req: u32,
        op: Op,
        new: u32,
        conds: [u32; 3],
        n: u8,
    },
    ReqDropped {
        req: u32,
    },
    ReqDup {
        req: u32,
    },
    ReqLong {
        req: u32,
        ms: u32,
    },
    ConnError {
        c: u8,
        req: u32,
    },
    DbServerError {
        req: u32,
        applied: bool,
        code: u8,
    },
    DbThrottled {
        req: u32,
    },
    DbApplied {
        req: u32,
        acq: u32,
        item: u32,
        owner: i8,
    },
    DbCondFailed {
        req: u32,
        item: u32,
        owner: i8,
    },
    DbRead {
        req: u32,
        item: u32,
        owner: i8,
    },
    RespDropped {
        req: u32,
    },
    Resp {
        c: u8,
        req: u32,
        ok: bool,
        code: u8,
    },
    Late {
        c: u8,
        req: u32,
    },
    Timeout {
        c: u8,
        req: u32,
    },
    Acquired {
        c: u8,
        acq: u32,
        rvn: u32,
        valid_ms: u32,
    },
    Lost {
        c: u8,
        why: u8,
    },
    ReleaseBegin {
        c: u8,
    },
    Abandon {
        c: u8,
    },
    Released {
        c: u8,
        how: u8,
    },
    Pause {
        c: u8,
        ms: u32,
        suspend: bool,
    },
    GaveUp {
        c: u8,
    },
    Outage {
        kind: u8,
        ms: u32,
    },
    Resume {
        c: u8,
    },
    Die {
        c: u8,
    },
    /// `token: None`: a `write_if_held` (guarded by the lock's condition check).
    Work {
        c: u8,
        token: Option<u64>,
    },
    Land {
        c: u8,
        token: Option<u64>,
        stale: bool,
        accepted: bool,
    },
    FenceRegression {
        documented: bool,
    },
    Ttl {
        acq: u32,
    },
    BeliefEnd {
        c: u8,
    },
    LiveStart {
        bound_ms: u32,
        checked: bool,
    },
    Resurrect {
        c: u8,
        acq: u32,
    },
    LiveEnd {
        took_ms: u32,
    },
}

fn v(id: u32) -> String {
    if id == 0 {
        "-".into()
    } else {
        format!("v{id}")
    }
}

fn o(owner: i8) -> String {
    if owner < 0 {
        "none".into()
    } else {
        format!("o{owner}")
    }
}

const LOSS: [&str; 5] = [
    "stolen",
    "deleted",
    "expired",
    "released",
    "stolen by ITSELF",
];
const RELEASE: [&str; 6] = [
    "released",
    "already-gone",
    "not-owner",
    "already-lost",
    "unconfirmed",
    "dynamo-error",
];
const CODES: [&str; 7] = [
    "ok",
    "ccf",
    "throttled",
    "5xx",
    "transport",
    "malformed",
    "other",
];

impl fmt::Display for Tr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Tr::Phase { chaos } => write!(f, "NETWORK {}", if chaos { "CHAOS" } else { "calm" }),
            Tr::AcquireStart { c } => write!(f, "c{c} acquire: start"),
            Tr::Send {
                c,
                req,
                op,
                new,
                conds,
                n,
            } => {
                let cs: Vec<String> = conds[..usize::from(n.min(3))]
                    .iter()
                    .map(|x| v(*x))
                    .collect();
                write!(
                    f,
                    "c{c} send #{req} {op:?} new={} cond=[{}]{}",
                    v(new),
                    cs.join(","),
                    if n > 3 { "..." } else { "" }
                )
            }
            Tr::ReqDropped { req } => write!(f, "net: request #{req} dropped"),
            Tr::ReqDup { req } => write!(f, "net: request #{req} duplicated"),
            Tr::ReqLong { req, ms } => write!(f, "net: a message of #{req} delayed {ms}ms"),
            Tr::ConnError { c, req } => write!(f, "net: c{c} #{req} connection error (not sent)"),
            Tr::DbServerError { req, applied, code } => write!(
                f,
                "db: #{req} {} {}",
                if code == 5 { "malformed 200" } else { "500" },
                if applied {
                    "AFTER applying"
                } else {
                    "not applied"
                }
            ),
            Tr::DbThrottled { req } => write!(f, "db: #{req} throttled"),
            Tr::DbApplied {
                req,
                acq,
                item,
                owner,
            } => {
                write!(
                    f,
                    "db: #{req} applied -> item {} of {} (acq {acq})",
                    v(item),
                    o(owner)
                )
            }
            Tr::DbCondFailed { req, item, owner } => {
                write!(
                    f,
                    "db: #{req} condition failed; item {} of {}",
                    v(item),
                    o(owner)
                )
            }
            Tr::DbRead { req, item, owner } => {
                write!(f, "db: #{req} read item {} of {}", v(item), o(owner))
            }
            Tr::RespDropped { req } => write!(f, "net: response #{req} dropped"),
            Tr::Resp { c, req, ok, code } => write!(
                f,
                "c{c} response #{req}: {}",
                if ok {
                    "ok"
                } else {
                    CODES[usize::from(code).min(6)]
                }
            ),
            Tr::Late { c, req } => write!(f, "c{c} late/duplicate response #{req} ignored"),
            Tr::Timeout { c, req } => write!(f, "c{c} #{req} timed out"),
            Tr::Acquired {
                c,
                acq,
                rvn,
                valid_ms,
            } => {
                write!(
                    f,
                    "c{c} ACQUIRED acq {acq} {} valid {valid_ms}ms more",
                    v(rvn)
                )
            }
            Tr::Lost { c, why } => write!(f, "c{c} LOST: {}", LOSS[usize::from(why).min(4)]),
            Tr::ReleaseBegin { c } => write!(f, "c{c} release: begin (stops believing)"),
            Tr::Abandon { c } => write!(
                f,
                "c{c} drops the handle without releasing (stops believing)"
            ),
            Tr::Released { c, how } => {
                write!(f, "c{c} release: {}", RELEASE[usize::from(how).min(5)])
            }
            Tr::Pause { c, ms, suspend } => write!(
                f,
                "c{c} {} {ms}ms",
                if suspend {
                    "SUSPENDED (monotonic clock stopped too)"
                } else {
                    "PAUSED"
                }
            ),
            Tr::Outage { kind, ms } => write!(
                f,
                "NETWORK OUTAGE for {ms}ms: {}",
                [
                    "all throttled",
                    "all 5xx",
                    "blackhole",
                    "responses lost",
                    "all slow"
                ][usize::from(kind).min(4)]
            ),
            Tr::GaveUp { c } => write!(f, "c{c} acquire: gave up (timeout / max retries)"),
            Tr::Resume { c } => write!(f, "c{c} resumes"),
            Tr::Die { c } => write!(f, "c{c} DIES"),
            Tr::Work { c, token: Some(t) } => {
                write!(f, "c{c} resource write issued, token {t}")
            }
            Tr::Work { c, token: None } => write!(f, "c{c} write_if_held issued"),
            Tr::FenceRegression { documented } => write!(
                f,
                "db: a create restarted the fencing token below an earlier one ({})",
                if documented {
                    "clock skew beyond the deleted item's lifetime: documented"
                } else {
                    "NOT covered by the documented condition"
                }
            ),
            Tr::Land {
                c,
                token,
                stale,
                accepted,
            } => write!(
                f,
                "resource: c{c} write {} landed{} -> {}",
                token.map_or("(guarded by the lock's condition)".to_owned(), |t| format!(
                    "token {t}"
                )),
                if stale { " STALE" } else { "" },
                if accepted { "accepted" } else { "rejected" }
            ),
            Tr::Ttl { acq } => write!(f, "db: TTL deleted the item of acq {acq}"),
            Tr::LiveStart { bound_ms, checked } => write!(
                f,
                "liveness: nobody holds, someone waits; bound {bound_ms}ms{}",
                if checked {
                    ""
                } else {
                    " (not checked: network not settled)"
                }
            ),
            Tr::Resurrect { c, acq } => write!(
                f,
                "c{c} believes again (acq {acq}): a late renewal extended a lease it had already counted as expired"
            ),
            Tr::LiveEnd { took_ms } => write!(f, "liveness: wait over after {took_ms}ms"),
            Tr::BeliefEnd { c } => write!(f, "c{c} belief ends (valid_until by its clock)"),
        }
    }
}

pub struct Trace {
    ring: VecDeque<(u64, Tr)>,
    cap: usize,
    hasher: Fnv,
    pub echo: bool,
    pub events: u64,
}

impl Trace {
    pub fn new(cap: usize, echo: bool) -> Self {
        Trace {
            ring: VecDeque::with_capacity(cap),
            cap,
            hasher: Fnv::default(),
            echo,
            events: 0,
        }
    }

    pub fn push(&mut self, t: u64, ev: Tr) {
        t.hash(&mut self.hasher);
        ev.hash(&mut self.hasher);
        self.events += 1;
        if self.echo {
            println!("{:>12.6}s  {ev}", t as f64 / 1e9);
        }
        if self.ring.len() == self.cap {
            self.ring.pop_front();
        }
        self.ring.push_back((t, ev));
    }

    pub fn hash(&self) -> u64 {
        self.hasher.finish()
    }

    pub fn tail(&self) -> String {
        let mut s = String::new();
        for (t, ev) in &self.ring {
            s.push_str(&format!("  {:>12.6}s  {ev}\n", *t as f64 / 1e9));
        }
        s
    }
}
