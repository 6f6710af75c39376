//! What a host provides: clocks, timers, HTTP, randomness and spawning.
//!
//! The lock core is synchronous and reads no clock; the async client in
//! [`LockClient`](crate::LockClient) drives it through these traits. Adapters: [`rt::tokio`](crate::rt)
//! (feature `tokio`). Futures are associated types, so a tokio host's futures are `Send` and a
//! wasm host's need not be ([`MaybeSend`]).

use core::future::Future;

use crate::dynamodb::{HttpRequest, HttpResponse, TransportError};
use crate::time::{Instant, Now};

/// `Send` on native targets; nothing on wasm, where JS values are not `Send`.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSend: Send {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + ?Sized> MaybeSend for T {}
/// `Send` on native targets; nothing on wasm, where JS values are not `Send`.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSend {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSend for T {}

/// `Sync` on native targets; nothing on wasm.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSync: Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Sync + ?Sized> MaybeSync for T {}
/// `Sync` on native targets; nothing on wasm.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSync {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSync for T {}

/// The host's clocks. One call reads both, so they describe the same moment.
pub trait Clock {
    /// Monotonic time (lock decisions) and wall time (signing, stored times, TTL).
    fn now(&self) -> Now;
}

/// The host's timers.
pub trait Timer {
    /// A future that completes at or after a deadline.
    type Sleep: Future<Output = ()> + MaybeSend;
    /// Completes once the host's monotonic clock has reached `deadline`.
    fn sleep_until(&self, deadline: Instant) -> Self::Sleep;
}

/// The host's HTTP client.
pub trait Transport {
    /// The pending response.
    type Response: Future<Output = Result<HttpResponse, TransportError>> + MaybeSend;
    /// POSTs `request`. The client bounds every request with its own timeout, so a
    /// transport need not (but may).
    fn send(&self, request: HttpRequest) -> Self::Response;
}

/// The host's randomness (owner ids, record versions, jitter).
pub trait Entropy {
    /// Fills `buf` with unpredictable bytes.
    fn fill(&self, buf: &mut [u8]);
}

/// Running a task in the background (automatic lease renewal).
pub trait Spawn {
    /// Runs `task` to completion in the background.
    fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + MaybeSend + 'static;
}

/// Everything the lock client needs from its host.
pub trait Host:
    Clock + Timer + Transport + Entropy + Spawn + Clone + MaybeSend + MaybeSync + 'static
{
}

impl<T> Host for T where
    T: Clock + Timer + Transport + Entropy + Spawn + Clone + MaybeSend + MaybeSync + 'static
{
}
