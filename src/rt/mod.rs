//! Host adapters. Each reads the real clocks (the only places in the crate that may) and
//! provides timers, HTTP, randomness and spawning.
//!
//! - `TokioHost` (feature `tokio`, native targets): `Send` futures, `tokio::spawn`.
//! - `WasmHost` (feature `wasm`, `wasm32-unknown-unknown`): browsers, Node and Cloudflare
//!   Workers; local (`!Send`) futures, `spawn_local`.

#[cfg(all(feature = "tokio", not(target_arch = "wasm32")))]
mod tokio;
#[cfg(all(feature = "tokio", not(target_arch = "wasm32")))]
pub use self::tokio::TokioHost;

#[cfg(all(feature = "wasm", target_arch = "wasm32"))]
mod wasm;
#[cfg(all(feature = "wasm", target_arch = "wasm32"))]
pub use self::wasm::{Sleep, WasmHost};

/// Compile-time check: on tokio, the client's futures are `Send` (spawnable on the
/// multi-thread runtime), and so are the renewal task's.
#[cfg(all(feature = "tokio", not(target_arch = "wasm32")))]
#[allow(dead_code)]
fn assert_tokio_futures_are_send(
    client: &crate::LockClient<TokioHost>,
    lock: &crate::Lock<TokioHost>,
    options: &crate::LockOptions,
) {
    fn send<T: Send>(_: &T) {}
    send(client);
    send(lock);
    send(&client.lock("g", "i", options));
    send(&client.try_lock("g", "i", options));
    send(&client.release(lock));
    send(&client.release_all());
    send(&client.read("g", "i"));
    send(&lock.release());
    send(&lock.lost());
    send(&lock.expiring(std::time::Duration::ZERO));
    send(&lock.write_if_held(Vec::new()));
    send(&client.with_lock("g", "i", options, async |lock| lock.fencing_token()));
    let mut events = lock.events();
    send(&events.next());
    send(&<TokioHost as crate::host::Timer>::sleep_until(
        client.host(),
        crate::time::Instant::ZERO,
    ));
}
