// The Worker: routes requests to the Rust module (src/lib.rs), built by
// `wasm-bindgen --target web --out-dir pkg` (see README.md).
//
//   GET /hold?group=G&id=I&lease=MS&hold=MS[&timeout=MS]  take the lock, answer at once, keep it
//                                                         (renewed) for `hold` ms inside
//                                                         ctx.waitUntil, then release it
//   GET /try?group=G&id=I&lease=MS                        one attempt: the holder, or acquire +
//                                                         release
//   GET /read?group=G&id=I                                the current record or null
import wasmModule from "./pkg/ddb_lock_cloudflare_worker_bg.wasm";
import { initSync, acquire, tryLock, read } from "./pkg/ddb_lock_cloudflare_worker.js";

// Instantiated on the first request, not at global scope (where Workers allow no timers,
// random values or I/O; instantiating does none of these, but nothing is gained by doing it
// early).
let ready = false;
function init() {
  if (!ready) {
    initSync({ module: wasmModule });
    ready = true;
  }
}

const json = (body, status = 200) =>
  new Response(typeof body === "string" ? body : JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });

export default {
  async fetch(request, env, ctx) {
    init();
    const url = new URL(request.url);
    const q = url.searchParams;
    const group = q.get("group") ?? "worker";
    const id = q.get("id") ?? "job";
    const lease = Number(q.get("lease") ?? 10000);
    try {
      switch (url.pathname) {
        case "/hold": {
          const held = await acquire(env, group, id, lease, Number(q.get("timeout") ?? 5000));
          const info = held.info();
          // Renewals run as long as this request does: waitUntil keeps it alive past the
          // response until the lock is released.
          ctx.waitUntil(
            held.holdThenRelease(Number(q.get("hold") ?? 1000)).then(
              (report) => console.log(`ddb-lock: ${group}/${id} done: ${report}`),
              (err) => console.error(`ddb-lock: ${group}/${id} failed: ${err}`),
            ),
          );
          return json(info);
        }
        case "/try":
          return json(await tryLock(env, group, id, lease));
        case "/read":
          return json(await read(env, group, id));
        default:
          return json({ error: "not found" }, 404);
      }
    } catch (err) {
      return json({ error: String(err?.message ?? err) }, 500);
    }
  },
};
