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

/// One event of a run. Record versions appear as `v<N>`, numbered in order of first
/// appearance (0: none); owners as the index of the first client with that name (-1: none).
#[derive(Clone, Debug, Hash)]
pub enum Tr {
    Phase {
        chaos: bool,
    },
    Send {
        c: u8,
        req: u32,
        key: u8,
        op: &'static str,
        new: u32,
        cond: u32,
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
    Db {
        req: u32,
        what: &'static str,
        item: u32,
        owner: i8,
    },
    RespDropped {
        req: u32,
    },
    Reply {
        c: u8,
        req: u32,
        status: u16,
    },
    Late {
        c: u8,
        req: u32,
    },
    Pause {
        c: u8,
        ms: u32,
        suspend: bool,
    },
    Resume {
        c: u8,
    },
    Die {
        c: u8,
    },
    Ttl {
        key: u8,
    },
    Outage {
        kind: u8,
        ms: u32,
    },
    App {
        c: u8,
        key: u8,
        what: &'static str,
    },
    Acquired {
        c: u8,
        key: u8,
        acq: u32,
        rvn: u32,
    },
    Belief {
        c: u8,
        key: u8,
        on: bool,
        ms_left: u32,
    },
    Work {
        c: u8,
        key: u8,
        token: u64,
    },
    Land {
        c: u8,
        key: u8,
        token: u64,
        stale: bool,
        accepted: bool,
    },
    Guarded {
        c: u8,
        key: u8,
        stale: bool,
    },
    FenceRegression {
        documented: bool,
    },
    LiveStart {
        key: u8,
        bound_ms: u32,
        checked: bool,
    },
    LiveEnd {
        key: u8,
        took_ms: u32,
    },
    Shutdown,
}

impl fmt::Display for Tr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
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
