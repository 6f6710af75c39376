#!/usr/bin/env node
// Acquire, hold and release one lock with the TypeScript client @deliveryhero/dynamodb-lock, for
// interop tests with the ddb-lock crate. Prints one JSON object per line on stdout:
//
//   {"event":"start","t":<ms>,...}        before the first request
//   {"event":"acquired","t":<ms>,"owner":..,"rvn":..}
//   {"event":"prolonged","t":<ms>}         each successful lease renewal (from the client's log)
//   {"event":"released","t":<ms>,"deleted":true|false}   after the DeleteItem (unless --no-release);
//                                          deleted=false when its condition failed (the client
//                                          swallows that: item gone, or stolen meanwhile)
//   {"event":"abandoned","t":<ms>}         with --no-release: renewals stopped, item left as is
//   {"event":"error","t":<ms>,"name":..,"message":..,"phase":..}
//
// Exit status 0 on success, 1 on any error (including a failed renewal, which the TS client
// leaves as an unhandled rejection). Client logs go to stderr with --verbose.
//
// Usage:
//   node ts-lock.mjs --endpoint URL --table NAME --group G --id I --lease MS --hold MS
//     [--prolong-every MS] [--no-prolong] [--no-release] [--trust-local-time] [--wait MS]
//     [--max-retry N] [--attrs JSON] [--ttl-key NAME] [--ttl-ms MS] [--verbose]
//
// Options not given are not passed to the client, so its own defaults apply (lease 20000,
// prolongEveryMs 5000 which must be < lease/2, no retry limit, additionalAttributes {}).

import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocument } from "@aws-sdk/lib-dynamodb";
import { dynamoDBLockClientFactory } from "@deliveryhero/dynamodb-lock";

// Node 20 is supported by these pinned SDK versions; silence the "upgrade to Node 22" notice.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

function emit(obj) {
  // process.stdout is synchronous for files and (on Linux) pipes, so lines are not lost on exit.
  process.stdout.write(JSON.stringify(obj) + "\n");
}

let phase = "args";

function fail(err) {
  emit({
    event: "error",
    t: Date.now(),
    phase,
    name: err?.constructor?.name ?? err?.name ?? "Error",
    message: String(err?.message ?? err),
  });
  process.exit(1);
}

process.on("unhandledRejection", (err) => {
  // The TS client renews from a setTimeout callback; a failed renewal (lock stolen, item gone)
  // surfaces only here.
  phase = "prolong";
  fail(err);
});
process.on("uncaughtException", fail);

const FLAGS = new Set(["--no-prolong", "--no-release", "--trust-local-time", "--verbose"]);
const VALUED = new Set([
  "--endpoint", "--table", "--group", "--id", "--lease", "--hold", "--prolong-every", "--wait",
  "--max-retry", "--attrs", "--ttl-key", "--ttl-ms",
]);

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    let v;
    const eq = a.indexOf("=");
    if (a.startsWith("--") && eq > 0) {
      v = a.slice(eq + 1);
      a = a.slice(0, eq);
    }
    if (FLAGS.has(a)) {
      if (v !== undefined) throw new Error(`${a} takes no value`);
      out[a.slice(2)] = true;
    } else if (VALUED.has(a)) {
      if (v === undefined) {
        if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
        v = argv[++i];
      }
      out[a.slice(2)] = v;
    } else {
      throw new Error(`unknown argument: ${a}`);
    }
  }
  for (const req of ["endpoint", "table", "group", "id", "lease", "hold"]) {
    if (out[req] === undefined) throw new Error(`--${req} is required`);
  }
  return out;
}

function int(name, s) {
  if (!/^\d+$/.test(String(s))) throw new Error(`--${name} must be a non-negative integer, got ${s}`);
  return Number(s);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const lease = int("lease", args.lease);
  const hold = int("hold", args.hold);

  const lockOptions = { leaseDurationInMs: lease };
  if (args["prolong-every"] !== undefined) lockOptions.prolongEveryMs = int("prolong-every", args["prolong-every"]);
  if (args["no-prolong"]) lockOptions.prolongLeaseEnabled = false;
  if (args["trust-local-time"]) lockOptions.trustLocalTime = true;
  if (args.wait !== undefined) lockOptions.waitDurationInMs = int("wait", args.wait);
  if (args["max-retry"] !== undefined) lockOptions.maxRetryCount = int("max-retry", args["max-retry"]);
  if (args.attrs !== undefined) lockOptions.additionalAttributes = JSON.parse(args.attrs);

  const tableConfig = { tableName: args.table, partitionKey: "lockId", sortKey: "lockGroup" };
  if (args["ttl-key"] !== undefined) tableConfig.ttlKey = args["ttl-key"];
  if (args["ttl-ms"] !== undefined) tableConfig.ttlInMs = int("ttl-ms", args["ttl-ms"]);

  const ddb = new DynamoDBClient({
    endpoint: args.endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
  });
  const doc = DynamoDBDocument.from(ddb);
  let releaseFoundNothing = false;
  const log = (severity, message) => {
    if (message.startsWith("Lease prolonged/renewed for:")) emit({ event: "prolonged", t: Date.now() });
    if (message.startsWith("Tried to remove the lock but it is already released")) releaseFoundNothing = true;
    if (args.verbose) process.stderr.write(`[ts-lock ${Date.now()} ${severity}] ${message}\n`);
  };
  const client = dynamoDBLockClientFactory(doc, tableConfig, log);

  emit({ event: "start", t: Date.now(), pid: process.pid, owner: client.ownerName });
  phase = "acquire";
  const lock = await client.lock(args.group, args.id, lockOptions);
  emit({ event: "acquired", t: Date.now(), owner: lock.ownerName, rvn: lock.recordVersionNumber });

  phase = "hold";
  await sleep(hold);

  if (args["no-release"]) {
    lock.released(); // stops the renewal timer only; the item stays in the table
    emit({ event: "abandoned", t: Date.now(), rvn: lock.recordVersionNumber });
  } else {
    phase = "release";
    await client.releaseLock(lock);
    // The client swallows a failed conditional delete (item gone or taken over): deleted=false.
    emit({ event: "released", t: Date.now(), deleted: !releaseFoundNothing });
  }
  ddb.destroy();
  process.exit(0);
}

main().catch(fail);
