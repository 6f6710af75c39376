//! Host adapters. Each reads the real clocks (the only places in the crate that may) and
//! provides timers, HTTP, randomness and spawning.

#[cfg(all(feature = "tokio", not(target_arch = "wasm32")))]
mod tokio;
#[cfg(all(feature = "tokio", not(target_arch = "wasm32")))]
pub use self::tokio::TokioHost;
