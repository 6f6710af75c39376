//! The Rust half of the browser example: `main.js` fetches short-lived credentials from the
//! page's backend and calls [`run_demo`].
//!
//! Nothing runs at module load: the client (which draws a random owner name and reads the
//! clocks) is made inside the call.

use std::time::Duration;

use ddb_lock::rt::WasmHost;
use ddb_lock::table::CreateTableOptions;
use ddb_lock::{
    ClientConfig, Credentials, CredentialsError, CredentialsProvider, LockClient, LockOptions,
    LockRecord, TableOptions,
};
use serde_json::{Value, json};
use wasm_bindgen::prelude::*;

/// Temporary credentials handed to the page, refused once they expire (so a request is never
/// signed with stale keys; fetch new ones from the backend and make a new client, or keep them
/// in a provider that your page refreshes before `expiration`).
struct PageCredentials {
    credentials: Credentials,
    /// Milliseconds since the epoch (`NaN`: no expiry given).
    expires_at_ms: f64,
}

impl CredentialsProvider for PageCredentials {
    fn credentials(&self) -> Result<Credentials, CredentialsError> {
        if js_sys::Date::now() >= self.expires_at_ms {
            return Err(CredentialsError(
                "the page's temporary credentials expired: fetch new ones".into(),
            ));
        }
        Ok(self.credentials.clone())
    }
}

fn err(e: impl std::fmt::Display) -> JsValue {
    JsError::new(&e.to_string()).into()
}

fn record_json(r: &LockRecord) -> Value {
    json!({
        "holder": r.owner,
        "recordVersion": r.rvn,
        "leaseMs": r.lease.as_millis() as u64,
        "lastUpdatedMs": r.last_updated.as_millis(),
        // A string: tokens exceed 2^53, beyond what a JS number holds exactly.
        "fencingToken": r.fence.map(|f| f.to_string()),
    })
}

/// Creates the table `table` if missing, takes the lock `("browser-demo", "job")`, reads it
/// back, releases it, and resolves to a summary object. `endpoint` empty: AWS's endpoint for
/// `region`; `session_token` empty: none; `expiration`: an ISO 8601 time or empty.
#[wasm_bindgen(js_name = runDemo)]
pub async fn run_demo(
    endpoint: String,
    region: String,
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: String,
    table: String,
) -> Result<JsValue, JsValue> {
    let non_empty = |s: String| Some(s).filter(|s| !s.is_empty());
    let credentials = PageCredentials {
        credentials: Credentials::new(access_key_id, secret_access_key, non_empty(session_token)),
        expires_at_ms: if expiration.is_empty() {
            f64::INFINITY
        } else {
            js_sys::Date::parse(&expiration)
        },
    };
    let mut config =
        ClientConfig::new(region, credentials).table(TableOptions::new().table_name(table.clone()));
    if let Some(url) = non_empty(endpoint) {
        config = config.endpoint_url(url);
    }
    let client = LockClient::new(WasmHost::new(), config).map_err(err)?;

    let created = client
        .create_table(&CreateTableOptions::new().wait(Duration::from_secs(60)))
        .await
        .map_err(err)?;

    let (group, id) = ("browser-demo", "job");
    let lease = Duration::from_secs(10);
    let opts = LockOptions::new()
        .lease(lease)
        .prolong_every(lease / 4)
        .acquire_timeout(Duration::from_secs(15))
        .poll_interval(Duration::from_millis(250));
    let lock = client.lock(group, id, &opts).await.map_err(err)?;
    let held = record_json(&lock.record());
    let fencing_token = lock.fencing_token().map(|f| f.to_string());
    let stored = client.read(group, id).await.map_err(err)?;
    let released = lock.release().await.map_err(err)?;
    let after = client.read(group, id).await.map_err(err)?;

    let summary = json!({
        "table": table,
        "tableCreated": format!("{created:?}"),
        "lock": { "group": group, "id": id },
        "owner": client.owner(),
        "fencingToken": fencing_token,
        "held": held,
        "storedWhileHeld": stored.as_ref().map_or(Value::Null, record_json),
        "released": format!("{released:?}"),
        "storedAfterRelease": after.as_ref().map_or(Value::Null, record_json),
    });
    js_sys::JSON::parse(&summary.to_string())
}
