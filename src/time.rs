//! The crate's own time types.
//!
//! The lock core never reads a clock: every decision takes a [`Now`] that the host's
//! [`Clock`](crate::host::Clock) produced. `std::time::Instant::now` panics when called on
//! `wasm32-unknown-unknown`, so these types are plain numbers the host fills in.

use core::ops::{Add, Sub};
use core::time::Duration;

/// A reading of a monotonic clock: nanoseconds since an origin the host chose.
///
/// Only differences between instants of the same host mean anything. Lock decisions
/// (lease expiry, when to renew, how long a holder was observed) use this clock only.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The origin of the host's monotonic clock.
    pub const ZERO: Instant = Instant(0);

    /// An instant `nanos` nanoseconds after the origin.
    pub const fn from_nanos(nanos: u64) -> Self {
        Instant(nanos)
    }

    /// An instant `millis` milliseconds after the origin.
    pub const fn from_millis(millis: u64) -> Self {
        Instant(millis.saturating_mul(1_000_000))
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// `self - d`, saturating at the origin.
    pub fn saturating_sub(self, d: Duration) -> Instant {
        Instant(self.0.saturating_sub(duration_nanos(d)))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    /// Saturates at the far future instead of overflowing.
    fn add(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_add(duration_nanos(rhs)))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    /// Saturates at zero.
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A reading of the wall clock: milliseconds since the Unix epoch.
///
/// Used for request signing (`x-amz-date`), the stored `lastUpdatedTimeInMs`, TTL, and the
/// opt-in `trust_local_time` takeover. Never for lease bookkeeping.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WallTime(u64);

impl WallTime {
    /// The Unix epoch.
    pub const UNIX_EPOCH: WallTime = WallTime(0);

    /// `millis` milliseconds after the Unix epoch.
    pub const fn from_millis(millis: u64) -> Self {
        WallTime(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the Unix epoch (DynamoDB TTL's unit).
    pub const fn as_secs(self) -> u64 {
        self.0 / 1000
    }

    /// The same time as a `std::time::SystemTime` (constructing one is fine on wasm; only
    /// reading the clock with `SystemTime::now` is not).
    pub fn to_system_time(self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + Duration::from_millis(self.0)
    }
}

impl Add<Duration> for WallTime {
    type Output = WallTime;
    fn add(self, rhs: Duration) -> WallTime {
        WallTime(
            self.0
                .saturating_add(u64::try_from(rhs.as_millis()).unwrap_or(u64::MAX)),
        )
    }
}

/// Both clocks read at one moment, as the core receives them.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time: all lock decisions.
    pub mono: Instant,
    /// Wall time: signing, stored timestamps, TTL, `trust_local_time`.
    pub wall: WallTime,
}

impl Now {
    /// A reading made of its two parts.
    pub const fn new(mono: Instant, wall: WallTime) -> Self {
        Now { mono, wall }
    }

    /// Both clocks advanced by `d` (test clocks move them together).
    pub fn advance(self, d: Duration) -> Now {
        Now {
            mono: self.mono + d,
            wall: self.wall + d,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_arithmetic_saturates() {
        let a = Instant::from_millis(5);
        assert_eq!(a + Duration::from_millis(1), Instant::from_millis(6));
        assert_eq!(Instant::ZERO - a, Duration::ZERO);
        assert_eq!(a - Instant::ZERO, Duration::from_millis(5));
        assert_eq!((a + Duration::MAX).as_nanos(), u64::MAX);
        assert_eq!(a.saturating_sub(Duration::from_secs(1)), Instant::ZERO);
    }

    #[test]
    fn wall_time_units() {
        let w = WallTime::from_millis(1_700_000_123_456);
        assert_eq!(w.as_secs(), 1_700_000_123);
        assert_eq!(
            w.to_system_time()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
            1_700_000_123_456
        );
    }
}
