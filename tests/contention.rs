//! A short run of the contention driver (examples/contention.rs): 8 workers for 4 s on one
//! lock. Checks correctness only (mutual exclusion, clean releases, no errors); throughput
//! and cost are the example's business, as a debug build on a busy machine says little.

#[allow(dead_code)] // The example's `main` and argument parsing are not used here.
#[path = "../examples/contention.rs"]
mod contention;

use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_workers_never_overlap() {
    let endpoint = std::env::var("DDB_LOCAL_ENDPOINT").expect(
        "DDB_LOCAL_ENDPOINT is not set: run the tests with `bash scripts/test.sh` \
         (or `bash scripts/ddb-local.sh run -- cargo test`)",
    );
    let report = contention::drive(contention::Config {
        endpoint,
        workers: 8,
        duration: Duration::from_secs(4),
        hold: Duration::from_millis(50),
        pause: Duration::from_millis(100),
        poll: Duration::from_millis(100),
        lease: Duration::from_secs(2),
        stagger: Duration::ZERO,
    })
    .await;
    report.print();
    assert!(report.exclusive(), "mutual exclusion violated");
    assert!(report.acquisitions >= 8, "too few acquisitions");
    let s = &report.stats;
    assert_eq!((s.errors, s.throttled), (0, 0), "{s:?}");
    assert_eq!(s.delete_item.requests, report.acquisitions as u64);
}
