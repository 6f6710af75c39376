//! The host-generic lock scenarios (`tests/scenarios/mod.rs`) on native tokio. The same
//! scenarios run in Node and headless Chromium from `wasm-tests/`.

#[macro_use]
#[path = "scenarios/mod.rs"]
mod scenarios;

use ddb_lock::rt::TokioHost;
use scenarios::Env;

fn env() -> Env<TokioHost> {
    let endpoint = std::env::var("DDB_LOCAL_ENDPOINT").expect(
        "DDB_LOCAL_ENDPOINT is not set: run the tests with `bash scripts/test.sh` \
         (or `bash scripts/ddb-local.sh run -- cargo test`)",
    );
    Env::new(TokioHost::new(), endpoint)
}

scenario_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    env()
);
