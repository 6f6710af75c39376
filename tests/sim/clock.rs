//! Per-client clocks as functions of the simulator's true time (nanoseconds since the run
//! began).
//!
//! * Monotonic: `mono(t) = origin + t + t * rate_ppm / 1e6`, a constant rate error per client
//!   (constant extremes are the worst case for a lease: the bound below is on the *rate*, so a
//!   varying rate inside the same bound cannot do worse than the extremes).
//! * Wall: `wall(t) = epoch + t + offset`, NTP-disciplined (no rate error, a fixed offset).
//!   Wall time only matters for `trust_local_time` takeovers and the TTL attribute.
//!
//! A paused process's clocks keep running: a pause stops the process, not time. A *suspend*
//! (VM pause, laptop sleep: Linux's `CLOCK_MONOTONIC`, behind `std::time::Instant`, stops
//! while the system is suspended) stops the monotonic clock too; those are beyond any bound
//! the core can defend and appear only in beyond-bounds runs.

use ddb_lock::time::{Instant, Now, WallTime};

/// 2025-01-01T00:00:00Z in ns: the wall clock at true time zero for an offset-free client.
pub const EPOCH_NS: i128 = 1_735_689_600_000_000_000;

#[derive(Clone, Debug)]
pub struct Clock {
    /// Monotonic reading at true time zero.
    pub origin: u64,
    /// Rate error in parts per million (+10_000: runs 1% fast).
    pub rate_ppm: i64,
    /// Wall clock offset from true time.
    pub wall_offset_ns: i64,
    /// Suspends: true-time intervals `[start, end)` during which the monotonic clock stands
    /// still. Sorted, disjoint, fixed before the run starts.
    pub freezes: Vec<(u64, u64)>,
}

impl Clock {
    /// True time minus the time spent frozen before `t`.
    fn running(&self, t: u64) -> u64 {
        let mut frozen = 0;
        for &(s, e) in &self.freezes {
            if s >= t {
                break;
            }
            frozen += e.min(t) - s;
        }
        t - frozen
    }

    /// The earliest true time whose running time is `r`.
    fn true_of_running(&self, r: u64) -> u64 {
        let mut frozen = 0;
        for &(s, e) in &self.freezes {
            if r <= s - frozen {
                break;
            }
            frozen += e - s;
        }
        r + frozen
    }

    pub fn mono_ns(&self, t: u64) -> u64 {
        self.mono_running(self.running(t))
    }

    fn mono_running(&self, r: u64) -> u64 {
        let t = i128::from(r);
        let skew = (t * i128::from(self.rate_ppm)).div_euclid(1_000_000);
        u64::try_from(i128::from(self.origin) + t + skew).expect("clock in range")
    }

    pub fn mono(&self, t: u64) -> Instant {
        Instant::from_nanos(self.mono_ns(t))
    }

    pub fn wall(&self, t: u64) -> WallTime {
        let ns = EPOCH_NS + i128::from(t) + i128::from(self.wall_offset_ns);
        WallTime::from_millis(u64::try_from(ns / 1_000_000).expect("wall clock in range"))
    }

    pub fn now(&self, t: u64) -> Now {
        Now::new(self.mono(t), self.wall(t))
    }

    /// The earliest true time at which this clock reads at least `target` (never before
    /// `not_before`).
    pub fn true_time_of(&self, target: Instant, not_before: u64) -> u64 {
        let target = target.as_nanos();
        if self.mono_ns(not_before) >= target {
            return not_before;
        }
        // Invert the rate on running time, then map running time back to true time.
        let span = i128::from(target - self.origin);
        let mut r = u64::try_from(span * 1_000_000 / (1_000_000 + i128::from(self.rate_ppm)))
            .unwrap_or(u64::MAX / 4);
        while self.mono_running(r) < target {
            r += 1;
        }
        while r > 0 && self.mono_running(r - 1) >= target {
            r -= 1;
        }
        let t = self.true_of_running(r).max(not_before);
        debug_assert!(
            self.mono_ns(t) >= target && (t == not_before || self.mono_ns(t - 1) < target)
        );
        t
    }
}

/// The server's wall clock (TTL): true time, no offset.
pub fn server_wall(t: u64) -> WallTime {
    WallTime::from_millis(u64::try_from((EPOCH_NS + i128::from(t)) / 1_000_000).unwrap())
}
