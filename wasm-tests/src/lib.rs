//! Nothing to export: the tests live in `tests/scenarios.rs`, which includes the scenarios that
//! the native suite runs (`../tests/scenarios/mod.rs`).
