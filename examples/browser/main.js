// The page: short-lived credentials from the page's own backend, then the Rust module
// (src/lib.rs, built with `wasm-bindgen --target web --out-dir pkg`, see README.md).
import init, { runDemo } from "./pkg/ddb_lock_browser.js";

const out = document.getElementById("out");

function show(status, text) {
  out.textContent = text;
  document.body.dataset.status = status; // "ok" or "error": for tests
  document.title = `ddb-lock: ${status}`;
}

async function getJson(path) {
  const res = await fetch(path, { cache: "no-store" });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return res.json();
}

async function main() {
  // Where DynamoDB is and which table to use: not secret. `endpoint` empty = AWS for `region`.
  const { endpoint = "", region, table } = await getJson("/config");
  // Temporary credentials (STS / Cognito identity pool via the backend), never a long-term
  // key in the page. Fetch new ones before `expiration`.
  const creds = await getJson("/credentials");
  await init();
  const summary = await runDemo(
    endpoint,
    region,
    creds.accessKeyId,
    creds.secretAccessKey,
    creds.sessionToken ?? "",
    creds.expiration ?? "",
    table,
  );
  show("ok", JSON.stringify(summary, null, 2));
}

main().catch((err) => {
  console.error(err);
  show("error", `error: ${err?.message ?? err}`);
});
