//! Mutual exclusion with the TypeScript client (`@deliveryhero/dynamodb-lock` 2.0.0) on one
//! table, both ways. Its process is driven through `tests/interop/ts-lock.mjs`.
#![allow(clippy::disallowed_methods)] // Tests compare wall-clock event times.

mod common;

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use ddb_lock::LockOptions;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

struct Ts {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Ts {
    fn spawn(table: &str, id: &str, args: &[&str]) -> Ts {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop");
        if !std::path::Path::new(dir)
            .join("node_modules/@deliveryhero")
            .exists()
        {
            let ok = std::process::Command::new("bash")
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/scripts/interop-setup.sh"
                ))
                .status()
                .expect("run interop-setup.sh");
            assert!(ok.success(), "interop-setup.sh failed");
        }
        let mut child = Command::new("node")
            .arg(format!("{dir}/ts-lock.mjs"))
            .args([
                "--endpoint",
                &endpoint(),
                "--table",
                table,
                "--group",
                "g",
                "--id",
                id,
            ])
            .args(args)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Ts { child, lines }
    }

    /// The next event named `name` (panics on an error event or a timeout).
    async fn event(&mut self, name: &str, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("no {name:?} event within {within:?}"))
                .expect("read")
                .unwrap_or_else(|| panic!("ts-lock exited before {name:?}"));
            let v: Value = serde_json::from_str(&line).expect("json line");
            match v["event"].as_str() {
                Some(e) if e == name => return v,
                Some("error") => panic!("TypeScript client failed: {v}"),
                _ => {}
            }
        }
    }

    /// No `name` event for `during`.
    async fn not_before(&mut self, name: &str, during: Duration) {
        let r = tokio::time::timeout(during, self.event(name, during + ms(10_000))).await;
        assert!(
            r.is_err(),
            "TypeScript client got {name:?} too early: {r:?}"
        );
    }

    async fn exit_ok(mut self) {
        let status = tokio::time::timeout(ms(30_000), self.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(status.success(), "ts-lock exit {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn their_lock_blocks_ours_until_released() {
    let (t, c) = fresh("interop1").await;
    let mut ts = Ts::spawn(
        t.name(),
        "k",
        &[
            "--lease",
            "3000",
            "--prolong-every",
            "1000",
            "--hold",
            "2500",
        ],
    );
    let acquired = ts.event("acquired", ms(15_000)).await;
    let lock = c
        .lock("g", "k", &LockOptions::new().poll_interval(ms(100)))
        .await
        .unwrap();
    let ours = wall_ms();
    let released = ts.event("released", ms(1000)).await;
    assert!(
        ours >= released["t"].as_u64().unwrap(),
        "we acquired before they released"
    );
    assert!(ours >= acquired["t"].as_u64().unwrap() + 2500);
    assert_eq!(
        c.stats().update_item.requests,
        0,
        "no takeover of a live lock"
    );
    assert_eq!(released["deleted"], Value::Bool(true));
    lock.release().await.unwrap();
    ts.exit_ok().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn their_abandoned_lock_is_taken_over_after_its_lease() {
    let (t, c) = fresh("interop2").await;
    let mut ts = Ts::spawn(
        t.name(),
        "k",
        &[
            "--lease",
            "1500",
            "--no-prolong",
            "--hold",
            "0",
            "--no-release",
        ],
    );
    let acquired = ts.event("acquired", ms(15_000)).await["t"]
        .as_u64()
        .unwrap();
    let lock = c
        .lock("g", "k", &LockOptions::new().poll_interval(ms(100)))
        .await
        .unwrap();
    assert!(
        wall_ms() >= acquired + 1500,
        "took over before their lease ran out"
    );
    assert_eq!(c.stats().update_item.requests, 1, "one takeover write");
    lock.release().await.unwrap();
    ts.exit_ok().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_renewed_lock_blocks_theirs_until_released() {
    let (t, c) = fresh("interop3").await;
    let lock = c
        .lock(
            "g",
            "k",
            &LockOptions::new().lease(ms(2000)).prolong_every(ms(500)),
        )
        .await
        .unwrap();
    let mut ts = Ts::spawn(
        t.name(),
        "k",
        &["--lease", "2000", "--prolong-every", "500", "--hold", "0"],
    );
    ts.event("start", ms(15_000)).await;
    // They wait our stored lease, then try a takeover that fails: we renewed meanwhile.
    ts.not_before("acquired", ms(3500)).await;
    assert!(lock.is_held());
    lock.release().await.unwrap();
    let released = wall_ms();
    let theirs = ts.event("acquired", ms(6000)).await["t"].as_u64().unwrap();
    assert!(theirs >= released, "they acquired before we released");
    ts.exit_ok().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_abandoned_lock_is_taken_over_by_theirs_after_the_lease() {
    let (t, c) = fresh("interop4").await;
    let lock = c
        .lock("g", "k", &LockOptions::new().lease(ms(1500)).prolong(false))
        .await
        .unwrap();
    let written = lock.record().last_updated.as_millis();
    let mut ts = Ts::spawn(
        t.name(),
        "k",
        &["--lease", "3000", "--no-prolong", "--hold", "1000"],
    );
    let theirs = ts.event("acquired", ms(15_000)).await["t"]
        .as_u64()
        .unwrap();
    assert!(theirs >= written + 1500, "they took over inside our lease");
    // While they hold it, our late release says our lock was already lost (it expired) and
    // leaves their item alone.
    assert!(matches!(
        lock.release().await,
        Err(ddb_lock::ReleaseError::AlreadyLost(
            ddb_lock::LossReason::Expired { .. }
        ))
    ));
    assert_eq!(
        ts.event("released", ms(5000)).await["deleted"],
        Value::Bool(true)
    );
    ts.exit_ok().await;
}
