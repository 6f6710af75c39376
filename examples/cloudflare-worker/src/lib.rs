//! The Rust half of the Worker: `worker.mjs` routes requests here.
//!
//! Cloudflare Workers forbid timers, random values and I/O at global scope, so the client is
//! made inside each request ([`acquire`], [`try_lock`], [`read`]). A held lock is renewed by
//! a task that `WasmHost` spawns with `spawn_local`; it runs only while the request is alive,
//! so `worker.mjs` hands [`HeldLock::hold_then_release`]'s promise to `ctx.waitUntil`.

use std::time::Duration;

use ddb_lock::host::{Clock, Timer};
use ddb_lock::rt::WasmHost;
use ddb_lock::{ClientConfig, Lock, LockClient, LockOptions, LockRecord, TableOptions, TryLock};
use js_sys::{Promise, Reflect};
use serde_json::{Value, json};
use wasm_bindgen::prelude::*;

/// A client from the Worker's `env`: `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY` (secrets), optional `AWS_SESSION_TOKEN`, `AWS_ENDPOINT_URL_DYNAMODB`
/// and `LOCK_TABLE` (default `lockTable`).
fn client(env: &JsValue) -> Result<LockClient<WasmHost>, JsError> {
    let var = |k: &str| {
        Reflect::get(env, &JsValue::from_str(k))
            .ok()
            .and_then(|v| v.as_string())
            .filter(|v| !v.is_empty())
    };
    let mut config = ClientConfig::from_vars(var).map_err(|e| JsError::new(&e.to_string()))?;
    if let Some(table) = var("LOCK_TABLE") {
        config = config.table(TableOptions::new().table_name(table));
    }
    LockClient::new(WasmHost::new(), config).map_err(|e| JsError::new(&e.to_string()))
}

fn options(lease_ms: u32) -> LockOptions {
    let lease = Duration::from_millis(lease_ms.into());
    LockOptions::new().lease(lease).prolong_every(lease / 4)
}

fn record_json(r: &LockRecord) -> Value {
    json!({
        "owner": r.owner,
        "rvn": r.rvn,
        "leaseMs": r.lease.as_millis() as u64,
        "lastUpdatedMs": r.last_updated.as_millis(),
    })
}

/// A lock this request holds.
#[wasm_bindgen]
pub struct HeldLock {
    client: LockClient<WasmHost>,
    lock: Lock<WasmHost>,
}

#[wasm_bindgen]
impl HeldLock {
    /// The held record, as JSON.
    pub fn info(&self) -> String {
        json!({ "acquired": true, "record": record_json(&self.lock.record()) }).to_string()
    }

    /// Keeps the lock (renewed in the background) for `hold_ms`, then releases it; resolves to
    /// a JSON report. Give the promise to `ctx.waitUntil`.
    #[wasm_bindgen(js_name = holdThenRelease)]
    pub fn hold_then_release(self, hold_ms: u32) -> Promise {
        wasm_bindgen_futures::future_to_promise(async move {
            let host = self.client.host().clone();
            let start = host.now();
            host.sleep_until(start.mono + Duration::from_millis(hold_ms.into()))
                .await;
            let held = self.lock.is_held();
            let renewals = self.client.stats().update_item.requests;
            let released = self.lock.release().await;
            Ok(JsValue::from_str(
                &json!({
                    "heldToTheEnd": held,
                    "renewals": renewals,
                    "released": format!("{released:?}"),
                    "heldForMs": (host.now().mono - start.mono).as_millis() as u64,
                })
                .to_string(),
            ))
        })
    }
}

/// Takes the lock `(group, id)` with a lease of `lease_ms`, waiting at most `timeout_ms`.
#[wasm_bindgen]
pub async fn acquire(
    env: JsValue,
    group: String,
    id: String,
    lease_ms: u32,
    timeout_ms: u32,
) -> Result<HeldLock, JsError> {
    let client = client(&env)?;
    let opts = options(lease_ms)
        .acquire_timeout(Duration::from_millis(timeout_ms.into()))
        .poll_interval(Duration::from_millis(100));
    let lock = client
        .lock(&group, &id, &opts)
        .await
        .map_err(|e| JsError::new(&e.to_string()))?;
    Ok(HeldLock { client, lock })
}

/// One attempt: `{"acquired":true,...}` (then released at once) or
/// `{"acquired":false,"holder":...}`.
#[wasm_bindgen(js_name = tryLock)]
pub async fn try_lock(
    env: JsValue,
    group: String,
    id: String,
    lease_ms: u32,
) -> Result<String, JsError> {
    let client = client(&env)?;
    let out = match client
        .try_lock(&group, &id, &options(lease_ms))
        .await
        .map_err(|e| JsError::new(&e.to_string()))?
    {
        TryLock::Acquired(lock) => {
            let record = record_json(&lock.record());
            let released = lock.release().await;
            json!({ "acquired": true, "record": record, "released": format!("{released:?}") })
        }
        TryLock::Held(busy) => json!({
            "acquired": false,
            "holder": record_json(&busy.holder),
            "retryAfterMs": busy.retry_after.as_millis() as u64,
        }),
    };
    Ok(out.to_string())
}

/// The lock's current record (`null` when free).
#[wasm_bindgen]
pub async fn read(env: JsValue, group: String, id: String) -> Result<String, JsError> {
    let client = client(&env)?;
    let record = client
        .read(&group, &id)
        .await
        .map_err(|e| JsError::new(&e.to_string()))?;
    Ok(record.as_ref().map_or(Value::Null, record_json).to_string())
}
