// A local backend for the page (Node >= 18, no dependencies). It serves index.html, main.js
// and pkg/, plus:
//   GET /config       {endpoint, region, table}
//   GET /credentials  {accessKeyId, secretAccessKey, sessionToken, expiration}
//
// LOCAL ONLY: /credentials answers fixed dummy keys, which only DynamoDB Local accepts (it
// does not check signatures). A real backend authenticates the user and returns temporary
// credentials from STS AssumeRole or a Cognito identity pool, scoped to the lock table.
//
//   node serve.mjs [--port 8840] [--endpoint http://127.0.0.1:8000] [--region us-east-1]
//                  [--table browserLocks]
// or the environment: PORT, DDB_ENDPOINT (or DDB_LOCAL_ENDPOINT), AWS_REGION, LOCK_TABLE.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { dirname, extname, join, normalize, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    port: { type: "string" },
    endpoint: { type: "string" },
    region: { type: "string" },
    table: { type: "string" },
  },
});
const env = process.env;
const port = Number(args.port ?? env.PORT ?? 8840);
const endpoint = args.endpoint ?? env.DDB_ENDPOINT ?? env.DDB_LOCAL_ENDPOINT ?? "";
const region = args.region ?? env.AWS_REGION ?? "us-east-1";
const table = args.table ?? env.LOCK_TABLE ?? "browserLocks";
if (!endpoint) {
  console.error("serve.mjs: give the DynamoDB Local endpoint (--endpoint URL or DDB_ENDPOINT)");
  process.exit(2);
}

const root = dirname(fileURLToPath(import.meta.url));
const types = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".ts": "text/plain; charset=utf-8",
};
// Only these are served: the page, its script and the wasm-bindgen output.
const servable = (rel) => rel === "index.html" || rel === "main.js" || rel.startsWith(`pkg${sep}`);

function json(res, body) {
  res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
  res.end(JSON.stringify(body));
}

const server = createServer(async (req, res) => {
  const path = new URL(req.url, "http://x").pathname;
  if (req.method !== "GET") {
    res.writeHead(405).end();
    return;
  }
  if (path === "/config") return json(res, { endpoint, region, table });
  if (path === "/credentials") {
    // LOCAL ONLY: dummy static keys for DynamoDB Local. Never put real long-term keys here.
    return json(res, {
      accessKeyId: "local",
      secretAccessKey: "local",
      sessionToken: "local-session",
      expiration: new Date(Date.now() + 15 * 60 * 1000).toISOString(),
    });
  }
  const rel = normalize(decodeURIComponent(path === "/" ? "/index.html" : path)).slice(1);
  if (!servable(rel)) {
    res.writeHead(404).end("not found");
    return;
  }
  try {
    const body = await readFile(join(root, rel));
    res.writeHead(200, { "content-type": types[extname(rel)] ?? "application/octet-stream" });
    res.end(body);
  } catch {
    res.writeHead(404).end("not found");
  }
});

server.listen(port, "127.0.0.1", () => {
  console.log(`serve.mjs: http://127.0.0.1:${port}/ (DynamoDB at ${endpoint}, table ${table})`);
});
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(0));
