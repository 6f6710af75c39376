//! A deterministic simulation of the shipped lock client: seeded, virtual time, no I/O.
//! See `tests/simulation.rs` for how to run it and what it checks.

pub mod app;
pub mod clock;
pub mod db;
pub mod expr;
pub mod forward;
pub mod host;
pub mod rng;
pub mod scenario;
pub mod stats;
pub mod trace;
pub mod wire;
pub mod world;
