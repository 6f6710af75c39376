//! The simulation's one source of randomness: the crate's own seeded xoshiro256**.

use ddb_lock::core::Rng;

/// A seeded generator with the helpers the simulator needs. Every random decision of a run
/// comes from one of these, all derived from the run's seed, so a seed replays exactly.
#[derive(Clone, Debug)]
pub struct SimRng(Rng);

impl SimRng {
    pub fn seeded(seed: u64) -> Self {
        SimRng(Rng::seeded(seed))
    }

    pub fn u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        debug_assert!(lo <= hi);
        lo + self.0.below(hi - lo + 1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// A core generator for one machine (record versions, jitter), independent of this one.
    pub fn core_rng(&mut self) -> Rng {
        Rng::seeded(self.u64())
    }
}
