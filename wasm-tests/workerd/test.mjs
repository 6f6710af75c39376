// The example Cloudflare Worker (examples/cloudflare-worker) in raw workerd against DynamoDB
// Local, next to a native client (examples/lock_peer.rs) on the same table.
//
//   DDB_LOCAL_ENDPOINT=... WORKERD=.../workerd LOCK_PEER=.../lock_peer node --test test.mjs
//
// Run by scripts/wasm-test.sh workerd, which builds the Worker and the peer first.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const workerDir = path.resolve(here, "../../examples/cloudflare-worker");
const endpoint = need("DDB_LOCAL_ENDPOINT");
const workerdBin = path.resolve(need("WORKERD"));
const peerBin = path.resolve(need("LOCK_PEER"));
const table = `workerd-${randomBytes(4).toString("hex")}`;
const env = {
  ...process.env,
  DDB_LOCAL_ENDPOINT: endpoint,
  LOCK_TABLE: table,
  AWS_REGION: "us-east-1",
  AWS_ACCESS_KEY_ID: "local",
  AWS_SECRET_ACCESS_KEY: "local",
};

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run scripts/wasm-test.sh workerd)`);
  return v;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

let workerd;
let base;
const workerLog = [];

/** Waits until the Worker logged a line matching `re` (renewals end after the response). */
async function logLine(re, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const line = workerLog.find((l) => re.test(l));
    if (line) return line;
    if (Date.now() > deadline) throw new Error(`no log line ${re} in:\n${workerLog.join("\n")}`);
    await sleep(25);
  }
}

async function get(pathAndQuery) {
  const res = await fetch(base + pathAndQuery);
  const body = await res.json();
  return { status: res.status, body };
}

/** Runs the native peer; resolves to its JSON events once it exits with 0. */
function peer(args, onEvent = () => {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(peerBin, args, { env, stdio: ["ignore", "pipe", "inherit"] });
    const events = [];
    createInterface({ input: child.stdout }).on("line", (line) => {
      const e = JSON.parse(line);
      events.push(e);
      onEvent(e);
    });
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve(events) : reject(new Error(`lock_peer ${args.join(" ")} exited ${code}`)),
    );
  });
}

before(async () => {
  await peer(["create"]);
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  workerd = spawn(
    workerdBin,
    ["serve", path.join(workerDir, "workerd.capnp"), "--socket-addr", `http=127.0.0.1:${port}`],
    { env, cwd: workerDir, stdio: ["ignore", "pipe", "pipe"] },
  );
  workerd.on("error", (e) => workerLog.push(`spawn failed: ${e}`));
  for (const stream of [workerd.stdout, workerd.stderr]) {
    createInterface({ input: stream }).on("line", (l) => workerLog.push(l));
  }
  const deadline = Date.now() + 20000;
  for (;;) {
    try {
      const r = await get("/read?group=boot&id=boot");
      assert.equal(r.status, 200, JSON.stringify(r.body));
      break;
    } catch (e) {
      if (workerd.exitCode !== null || Date.now() > deadline) {
        throw new Error(`workerd did not answer: ${e}\n${workerLog.join("\n")}`);
      }
      await sleep(100);
    }
  }
});

after(() => {
  workerd?.kill("SIGTERM");
});

test("the worker holds a lock past its lease (renewed in waitUntil) and a native client waits for its release", async () => {
  const lease = 1000;
  const hold = 2500;
  const r = await get(`/hold?group=g&id=worker-first&lease=${lease}&hold=${hold}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.acquired, true);
  const worker = r.body.record;
  const events = await peer(["lock", "g", "worker-first", String(lease)]);
  const held = events.find((e) => e.event === "held");
  assert.ok(held, `the native client saw the worker's lock: ${JSON.stringify(events)}`);
  assert.equal(held.holder.owner, worker.owner);
  const acquired = events.find((e) => e.event === "acquired");
  assert.equal(acquired.takeovers, 0, "taken after the release, not by a takeover");
  assert.ok(
    acquired.wallMs >= worker.lastUpdatedMs + hold - 100,
    `acquired ${acquired.wallMs - worker.lastUpdatedMs} ms after the worker took it (hold ${hold})`,
  );
  const done = JSON.parse((await logLine(/g\/worker-first done: /)).split(" done: ")[1]);
  assert.equal(done.heldToTheEnd, true);
  assert.equal(done.released, "Ok(Released)");
  assert.ok(done.renewals >= 5, `renewed every ${lease / 4} ms for ${hold} ms: ${done.renewals}`);
  assert.equal((await get("/read?group=g&id=worker-first")).body, null);
});

test("a native holder excludes the worker until it releases", async () => {
  let acquiredBy;
  let onAcquired;
  const acquiredNow = new Promise((r) => (onAcquired = r));
  const native = peer(["hold", "g", "native-first", "1000", "2000"], (e) => {
    if (e.event === "acquired") {
      acquiredBy = e.owner;
      onAcquired();
    }
  });
  await acquiredNow;
  const busy = await get("/try?group=g&id=native-first&lease=1000");
  assert.equal(busy.status, 200, JSON.stringify(busy.body));
  assert.equal(busy.body.acquired, false);
  assert.equal(busy.body.holder.owner, acquiredBy);
  const timedOut = await get("/hold?group=g&id=native-first&lease=1000&hold=0&timeout=300");
  assert.equal(timedOut.status, 500, "the worker gave up waiting");
  assert.match(timedOut.body.error, /time/i);
  const events = await native;
  assert.equal(events.at(-1).heldToTheEnd, true, "the native lock was never taken from it");
  const free = await get("/try?group=g&id=native-first&lease=1000");
  assert.equal(free.body.acquired, true, JSON.stringify(free.body));
  assert.equal(free.body.released, "Ok(Released)");
});

test("two worker requests exclude each other", async () => {
  const first = await get("/hold?group=g&id=worker-pair&lease=1000&hold=1500");
  assert.equal(first.body.acquired, true);
  const second = await get("/hold?group=g&id=worker-pair&lease=1000&hold=0&timeout=5000");
  assert.equal(second.status, 200, JSON.stringify(second.body));
  assert.notEqual(second.body.record.owner, first.body.record.owner);
  assert.ok(
    second.body.record.lastUpdatedMs >= first.body.record.lastUpdatedMs + 1500 - 100,
    "the second request got the lock only after the first released it",
  );
  await logLine(/g\/worker-pair done: .*"renewals":0/);
});
