#!/usr/bin/env python3
"""The mutation check: re-introduces known defects one at a time and requires the tests to
catch each. Run by scripts/mutants.sh (which builds nothing itself: see there).

Each mutant is a list of exact text replacements (each must match exactly once, so a mutant
never silently stops applying) and the checks expected to catch it:
  lib  the core's and client's unit tests (cargo test --lib)
  sim  the deterministic simulation of the shipped client (fail fast, SIM_MUTANT_SEEDS)
A mutant is caught when any of its checks fails. Exit status 1 if one survives.

  python3 scripts/mutants.py [NAME...]      (default: all)

Environment: SIM_MUTANT_SEEDS (default 3000), MUTANT_CHECKS=lib|sim (only those checks),
MUTANT_TIMEOUT (seconds per check, default 900).
"""

import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (name, what it re-introduces, [(file, old, new)], checks)
MUTANTS = [
    (
        "cancelled-lock-leaves-orphan",
        "defect 1: a dropped lock() is not cancelled: what it wrote stays, unknown to the client",
        [("src/client/driver.rs", "        if self.armed {\n            let now = self.client.host().now();\n            self.shared.command(|m| m.release(now));",
          "        if false && self.armed {\n            let now = self.client.host().now();\n            self.shared.command(|m| m.release(now));")],
        ["sim"],
    ),
    (
        "dropped-request-hangs",
        "defect 1: a dropped request is not fed back and waiters wait for a notification only",
        [("src/client/driver.rs", "    fn drop(&mut self) {\n        if self.armed {\n            self.feed(",
          "    fn drop(&mut self) {\n        if false && self.armed {\n            self.feed("),
         ("src/client/driver.rs", "                let sleep = pin!(host.sleep_until(deadline));\n                select(sleep, changed).await;",
          "                let _ = deadline;\n                changed.await;")],
        ["sim"],
    ),
    (
        "give-up-without-cleanup",
        "defect 2: a timed-out acquisition leaves its unreconciled write behind",
        [("src/core/machine.rs", "Some(sent) if unreconciled =>", "Some(sent) if unreconciled && false =>")],
        ["lib", "sim"],
    ),
    (
        "late-write-returned-as-held",
        "defect 3: a write recognised late is returned held without renewing it first",
        [("src/core/acquire.rs", "if left < self.opts.lease / 2 {", "if left < self.opts.lease / 2 && false {")],
        ["lib", "sim"],
    ),
    (
        "ttl-not-checked",
        "defect 4: a TTL DynamoDB may act on while the lock lives is accepted",
        [("src/options.rs", "if table.ttl < least {", "if table.ttl < least && false {")],
        ["lib"],
    ),
    (
        "suspend-unbounded",
        "defect 5: the held time is bounded by the monotonic clock only",
        [("src/core/acquire.rs", "    by_mono.min(by_wall)\n", "    let _ = by_wall;\n    by_mono\n")],
        ["lib", "sim"],
    ),
    (
        "try-lock-unbounded",
        "defect 6: try_lock retries without end while DynamoDB throttles",
        [("src/core/acquire.rs", "if self.try_only && self.transient >= TRY_ATTEMPTS {",
          "if self.try_only && self.transient >= TRY_ATTEMPTS && false {")],
        ["lib"],
    ),
    (
        "memory-cleared-wholesale",
        "defect 7: the per-key memory is cleared wholesale when full",
        [("src/client/glue.rs", "                self.entries.remove(&first);", "                let _ = first;\n                self.entries.clear();")],
        ["lib"],
    ),
    (
        "conflict-is-final",
        "defect 8: TransactionConflictException is final",
        [("src/dynamodb/error.rs", "Error::Throttled { .. } | Error::TransactionConflict { .. }", "Error::Throttled { .. }")],
        ["lib", "sim"],
    ),
    (
        "renewal-timeout-uncapped",
        "defect 9: a renewal's timeout is not capped by the validity left",
        [("src/core/held.rs", "        (self.remaining(now) / 2)\n            .min(request_timeout)",
          "        request_timeout\n            .min(request_timeout)")],
        ["lib"],
    ),
    (
        "release-gives-up-early",
        "defect 10: a release answered 500 gives up at once, not while the lease could block",
        [("src/core/held.rs", "                if !lease_over {\n", "                if !lease_over && false {\n")],
        ["lib"],
    ),
    (
        "release-after-expiry-answers-gone",
        "defect 11: a release after the client saw Lost(Expired) answers the delete's outcome",
        [("src/core/held.rs", "            (Some(reason), _) => Err(ReleaseError::AlreadyLost(reason.clone())),",
          "            (Some(LossReason::Expired { .. }), result) => result,\n            (Some(reason), _) => Err(ReleaseError::AlreadyLost(reason.clone())),")],
        ["lib"],
    ),
    (
        "expire-before-first-renewal",
        "defect 12: options whose margin + renewal period reach the lease are accepted",
        [("src/options.rs", "if every + self.margin() >= self.lease {", "if every + self.margin() >= self.lease && false {")],
        ["lib"],
    ),
    (
        "fixed-renewal-period",
        "defect 12: the renewal period is 5 s whatever the lease",
        [("src/options.rs", "            .unwrap_or_else(|| (self.lease / 4).min(Duration::from_secs(5)))",
          "            .unwrap_or(Duration::from_secs(5))")],
        ["lib"],
    ),
    (
        "registry-never-forgets",
        "driver: an ended lock stays in the client's registry",
        [("src/client/driver.rs", "            if matches!(out, Output::Ended) {\n                client.forget(shared);\n            }",
          "            let _ = Output::Ended;")],
        ["sim"],
    ),
    (
        "drop-does-not-release",
        "driver: dropping a Lock stops nothing (renewals go on, nothing released)",
        [("src/client/handle.rs", "            if m.phase() == Phase::Held {\n                m.release(now);\n            }",
          "            let _ = now;")],
        ["sim"],
    ),
    (
        "lock-runs-a-renewal",
        "driver: lock() goes on driving after the acquisition (it may run a renewal first)",
        [("src/core/machine.rs", "                            return Output::PhaseChanged(self.phase());", "                            continue;")],
        ["sim"],
    ),
    (
        "release-forgets-unconfirmed-renewal",
        "core: a release gives up by the confirmed lease though a later unconfirmed renewal may hold",
        [("src/core/held.rs", "            .uncertain_sent\n            .into_iter()", "            .uncertain_sent\n            .filter(|_| false)\n            .into_iter()")],
        ["lib"],
    ),
    (
        "own-orphan-not-recognised",
        "core: an item left by this client's own unfinished acquisition is watched for a lease",
        [("src/core/acquire.rs", "record.lease.is_zero() || (record.owner == self.owner && self.own.contains(&record.rvn))",
          "record.lease.is_zero()")],
        ["lib", "sim"],
    ),
]


def run(cmd, env=None):
    e = dict(os.environ)
    e.update(env or {})
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=int(os.environ.get("MUTANT_TIMEOUT", "900")))
    except subprocess.TimeoutExpired as t:
        # A test that hangs under a mutant caught it too.
        return 124, (t.stdout or b"").decode(errors="replace") if isinstance(t.stdout, bytes) else (t.stdout or "")
    return p.returncode, p.stdout


def check(kind):
    seeds = os.environ.get("SIM_MUTANT_SEEDS", "3000")
    if kind == "lib":
        return run(["cargo", "test", "--quiet", "--lib"])
    return run(
        ["cargo", "test", "--profile", "sim", "--no-default-features", "--test", "simulation", "--", "--exact", "simulate"],
        {"SIM_SEEDS": seeds, "SIM_FAIL_FAST": "1"},
    )


def main():
    wanted = set(sys.argv[1:])
    unknown = wanted - {m[0] for m in MUTANTS}
    if unknown:
        sys.exit(f"unknown mutants: {sorted(unknown)}")
    survived = []
    for name, what, edits, checks in MUTANTS:
        if wanted and name not in wanted:
            continue
        saved = {}
        try:
            for path, old, new in edits:
                full = os.path.join(ROOT, path)
                text = saved.get(path) or open(full).read()
                saved.setdefault(path, text)
                current = open(full).read()
                if current.count(old) != 1:
                    sys.exit(f"mutant {name}: the text to replace occurs {current.count(old)} times in {path}")
                open(full, "w").write(current.replace(old, new))
            t0 = time.time()
            caught = []
            only = os.environ.get("MUTANT_CHECKS")
            for kind in [k for k in checks if not only or k in only.split(",")]:
                code, out = check(kind)
                if code != 0:
                    if "error[E" in out and "could not compile" in out:
                        sys.exit(f"mutant {name} does not compile:\n{out[-3000:]}")
                    caught.append(kind)
                    break
            verdict = f"caught by {caught[0]}" if caught else "SURVIVED"
            print(f"{name:<38} {verdict:<14} {time.time() - t0:6.0f}s  {what}", flush=True)
            if not caught:
                survived.append(name)
        finally:
            for path, text in saved.items():
                open(os.path.join(ROOT, path), "w").write(text)
    if survived:
        print(f"mutants survived: {survived}")
        sys.exit(1)
    print("every mutant was caught")


if __name__ == "__main__":
    main()
