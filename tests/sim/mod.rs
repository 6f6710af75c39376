//! A deterministic simulation of the lock core: seeded, virtual time, no I/O.
//! See `tests/simulation.rs` for how to run it and what it checks.

pub mod clock;
pub mod db;
pub mod expr;
pub mod forward;
pub mod rng;
pub mod scenario;
pub mod stats;
pub mod trace;
pub mod world;
