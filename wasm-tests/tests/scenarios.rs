//! The host-generic lock scenarios (`../tests/scenarios/mod.rs`, shared with the native suite)
//! on [`WasmHost`] against DynamoDB Local: in Node by default, in headless Chromium with
//! `--features browser`. Run by `scripts/wasm-test.sh`.
#![cfg(target_arch = "wasm32")]

#[macro_use]
#[path = "../../tests/scenarios/mod.rs"]
mod scenarios;

use ddb_lock::rt::WasmHost;
use scenarios::Env;

#[cfg(feature = "browser")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

/// wasm has no environment: DDB_LOCAL_ENDPOINT is read when the tests are compiled (set by
/// `scripts/ddb-local.sh run`); without it they do not build (never skip).
fn env() -> Env<WasmHost> {
    let endpoint = env!(
        "DDB_LOCAL_ENDPOINT",
        "DDB_LOCAL_ENDPOINT must be set when these tests are compiled: run them with \
         `bash scripts/wasm-test.sh node` (or `bash scripts/test.sh wasm`)"
    );
    Env::new(WasmHost::new(), endpoint)
}

scenario_tests!(
    #[wasm_bindgen_test::wasm_bindgen_test]
    env()
);

/// The host's clocks move and its timers wait (no std::time, which panics on wasm32).
#[wasm_bindgen_test::wasm_bindgen_test]
async fn the_host_clock_and_timer_work() {
    use ddb_lock::host::{Clock, Timer};
    let host = WasmHost::new();
    let a = host.now();
    assert!(a.wall.as_millis() > 1_600_000_000_000, "{a:?}");
    host.sleep_until(a.mono + std::time::Duration::from_millis(50))
        .await;
    let b = host.now();
    assert!(
        b.mono - a.mono >= std::time::Duration::from_millis(50),
        "{a:?} {b:?}"
    );
    assert!(b.wall >= a.wall);
}
