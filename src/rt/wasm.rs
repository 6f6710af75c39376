//! The wasm32 host (feature `wasm`): for browsers, Node and Cloudflare Workers alike.
//!
//! Everything comes from the JS global object, never `window`, so one build runs in every
//! host: `performance.now()` (monotonic clock, falling back to `Date.now()`), `Date.now()`
//! (wall clock), `setTimeout` / `clearTimeout` (timers), `fetch` with an `AbortController`
//! (HTTP; called directly: reqwest's wasm backend would add ~75 KB gzip to a Worker,
//! mostly URL/IDNA tables, for one kind of POST), `crypto.getRandomValues` through getrandom
//! (randomness) and `wasm_bindgen_futures::spawn_local` (renewal tasks).
//!
//! Nothing is read at module load: clocks and randomness are touched only when the client
//! calls the host. Cloudflare Workers require it (no timers, random values or I/O at global
//! scope), so create the client inside a handler.
//!
//! Its futures are not `Send` (JS values live on one thread), which the host traits allow on
//! wasm32 ([`MaybeSend`](crate::host::MaybeSend)).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use js_sys::{Function, Object, Promise, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::LockClient;
use crate::config::{ClientConfig, ConfigError};
use crate::dynamodb::{HttpRequest, HttpResponse, TransportError};
use crate::host::{Clock, Entropy, Spawn, Timer, Transport};
use crate::time::{Instant, Now, WallTime};

use getrandom_wasm as getrandom;

#[wasm_bindgen]
extern "C" {
    /// The global `setTimeout` (browsers, Node, workerd). Node returns an object, browsers a
    /// number: kept as an opaque handle.
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(handler: &Function, millis: f64) -> JsValue;
    /// The global `clearTimeout`.
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(handle: &JsValue);
}

/// The longest delay `setTimeout` accepts (2^31 - 1 ms); longer sleeps re-arm.
const MAX_TIMEOUT_MS: f64 = 2_147_483_647.0;

/// Runs the lock client on a JS host: browsers, Node, Cloudflare Workers.
///
/// Cheap to clone; clones share the monotonic clock's floor.
#[derive(Clone, Debug, Default)]
pub struct WasmHost {
    /// The latest monotonic reading handed out, so readings never go backwards (even on the
    /// `Date.now()` fallback).
    floor: Rc<Cell<u64>>,
}

impl WasmHost {
    /// A host on the JS global object. Reads no clock and touches no JS value until used.
    pub fn new() -> Self {
        Self::default()
    }

    fn mono_nanos(&self) -> u64 {
        let millis = performance_now().unwrap_or_else(js_sys::Date::now);
        let nanos = millis_to_nanos(millis);
        let floor = self.floor.get().max(nanos);
        self.floor.set(floor);
        floor
    }
}

/// `globalThis.performance.now()`, if the host has it.
fn performance_now() -> Option<f64> {
    let performance = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("performance"))
        .ok()
        .filter(|p| p.is_object())?;
    let now = js_sys::Reflect::get(&performance, &JsValue::from_str("now"))
        .ok()?
        .dyn_into::<Function>()
        .ok()?;
    now.call0(&performance).ok()?.as_f64()
}

fn millis_to_nanos(millis: f64) -> u64 {
    if millis.is_finite() && millis > 0.0 {
        // `as` saturates for floats; sub-nanosecond digits are noise anyway.
        (millis * 1_000_000.0) as u64
    } else {
        0
    }
}

impl Clock for WasmHost {
    fn now(&self) -> Now {
        let wall = js_sys::Date::now();
        let wall = if wall.is_finite() && wall > 0.0 {
            wall as u64
        } else {
            0
        };
        Now::new(
            Instant::from_nanos(self.mono_nanos()),
            WallTime::from_millis(wall),
        )
    }
}

impl Timer for WasmHost {
    type Sleep = Sleep;
    fn sleep_until(&self, deadline: Instant) -> Sleep {
        Sleep {
            host: self.clone(),
            deadline,
            armed: None,
        }
    }
}

/// A future completing once the host's monotonic clock has reached its deadline. The JS
/// timer is set on the first poll and cleared when the future is dropped early.
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    host: WasmHost,
    deadline: Instant,
    armed: Option<Armed>,
}

impl std::fmt::Debug for Sleep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("armed", &self.armed.is_some())
            .finish()
    }
}

/// One pending `setTimeout`: its handle, its callback (kept alive until it fires or is
/// cleared) and the state the callback shares with the future.
struct Armed {
    handle: JsValue,
    _callback: Closure<dyn FnMut()>,
    state: Rc<RefCell<TimerState>>,
}

#[derive(Default)]
struct TimerState {
    fired: bool,
    waker: Option<Waker>,
}

impl Armed {
    fn new(millis: f64, waker: Waker) -> Self {
        let state = Rc::new(RefCell::new(TimerState {
            fired: false,
            waker: Some(waker),
        }));
        let shared = state.clone();
        let callback = Closure::<dyn FnMut()>::new(move || {
            let waker = {
                let mut s = shared.borrow_mut();
                s.fired = true;
                s.waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        });
        let handle = set_timeout(callback.as_ref().unchecked_ref(), millis);
        Armed {
            handle,
            _callback: callback,
            state,
        }
    }
}

impl Drop for Armed {
    fn drop(&mut self) {
        if !self.state.borrow().fired {
            clear_timeout(&self.handle);
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let Some(armed) = &this.armed {
            let mut state = armed.state.borrow_mut();
            if !state.fired {
                state.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
        }
        // Not armed yet, or the timer fired: done if the clock agrees, else (timers may fire
        // a little early against a coarsened clock, or the delay was capped) arm again.
        let now = this.host.mono_nanos();
        let left = this.deadline.as_nanos().saturating_sub(now);
        if left == 0 {
            this.armed = None;
            return Poll::Ready(());
        }
        let millis = (left.div_ceil(1_000_000) as f64).min(MAX_TIMEOUT_MS);
        this.armed = Some(Armed::new(millis, cx.waker().clone()));
        Poll::Pending
    }
}

impl Transport for WasmHost {
    type Response = Pin<Box<dyn Future<Output = Result<HttpResponse, TransportError>>>>;

    fn send(&self, request: HttpRequest) -> Self::Response {
        Box::pin(fetch(request))
    }
}

/// POSTs `request` with the global `fetch`. Dropped early (the client's request timeout), it
/// aborts the request through an `AbortController`.
async fn fetch(request: HttpRequest) -> Result<HttpResponse, TransportError> {
    let global = js_sys::global();
    let fetch: Function = get(&global, "fetch")?
        .dyn_into()
        .map_err(|_| TransportError::new("this host has no global fetch"))?;
    let headers = Object::new();
    for (name, value) in &request.headers {
        set(&headers, name, &JsValue::from_str(value))?;
    }
    let init = Object::new();
    set(&init, "method", &JsValue::from_str("POST"))?;
    set(&init, "headers", &headers)?;
    set(&init, "body", &Uint8Array::from(request.body.as_slice()))?;
    let abort = AbortOnDrop::new(&global);
    if let Some(a) = &abort {
        set(&init, "signal", &a.signal()?)?;
    }
    let pending = fetch
        .call2(&global, &JsValue::from_str(&request.url), &init)
        .map_err(js_error)?;
    let response = JsFuture::from(Promise::from(pending))
        .await
        .map_err(js_error)?;
    let status = get(&response, "status")?
        .as_f64()
        .ok_or_else(|| TransportError::new("fetch: a response without a status"))?;
    let read: Function = get(&response, "arrayBuffer")?
        .dyn_into()
        .map_err(|_| TransportError::new("fetch: a response without arrayBuffer()"))?;
    let body = JsFuture::from(Promise::from(read.call0(&response).map_err(js_error)?))
        .await
        .map_err(js_error)?;
    if let Some(a) = abort {
        a.done();
    }
    Ok(HttpResponse {
        status: status as u16,
        body: Uint8Array::new(&body).to_vec(),
    })
}

fn get(target: &JsValue, key: &str) -> Result<JsValue, TransportError> {
    js_sys::Reflect::get(target, &JsValue::from_str(key)).map_err(js_error)
}

fn set(target: &JsValue, key: &str, value: &JsValue) -> Result<(), TransportError> {
    js_sys::Reflect::set(target, &JsValue::from_str(key), value)
        .map(drop)
        .map_err(js_error)
}

/// A JS exception or rejection (fetch rejects with a `TypeError` on network failure).
fn js_error(e: JsValue) -> TransportError {
    let message = e
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"));
    TransportError::new(format!("fetch: {message}"))
}

/// An `AbortController` that aborts its request when dropped before [`done`](Self::done).
struct AbortOnDrop(Option<JsValue>);

impl AbortOnDrop {
    /// `None` when the host has no `AbortController` (the request then runs to its end).
    fn new(global: &JsValue) -> Option<Self> {
        let class: Function = get(global, "AbortController").ok()?.dyn_into().ok()?;
        let controller = js_sys::Reflect::construct(&class, &js_sys::Array::new()).ok()?;
        Some(AbortOnDrop(Some(controller)))
    }

    fn signal(&self) -> Result<JsValue, TransportError> {
        match &self.0 {
            Some(c) => get(c, "signal"),
            None => Ok(JsValue::UNDEFINED),
        }
    }

    fn done(mut self) {
        self.0 = None;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(controller) = self.0.take()
            && let Ok(abort) = get(&controller, "abort").and_then(|f| {
                f.dyn_into::<Function>()
                    .map_err(|_| TransportError::new("no abort()"))
            })
        {
            let _ = abort.call0(&controller);
        }
    }
}

impl Entropy for WasmHost {
    fn fill(&self, buf: &mut [u8]) {
        if let Err(e) = getrandom::fill(buf) {
            // No `crypto.getRandomValues` (or called at global scope in a Worker): owner ids
            // and record versions must not repeat, so this is fatal.
            wasm_bindgen::throw_str(&format!("ddb-lock: no randomness from the host: {e}"));
        }
    }
}

impl Spawn for WasmHost {
    fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + 'static,
    {
        wasm_bindgen_futures::spawn_local(task);
    }
}

impl LockClient<WasmHost> {
    /// A client on a new [`WasmHost`]. In a Cloudflare Worker, call it inside a handler (it
    /// draws a random owner name).
    pub fn new_wasm(config: ClientConfig) -> Result<Self, ConfigError> {
        LockClient::new(WasmHost::new(), config)
    }
}

// The wasm client builds without `Send`: its lock, release and renewal futures are local.
#[allow(dead_code)]
fn assert_wasm_client_builds(client: LockClient<WasmHost>, options: crate::LockOptions) {
    wasm_bindgen_futures::spawn_local(async move {
        if let Ok(lock) = client.lock("g", "i", &options).await {
            let _ = lock.release().await;
        }
        let _ = client.release_all().await;
    });
}
