# Raw workerd (npm `workerd`) serving the example Worker, for local tests against DynamoDB
# Local:
#
#   DDB_LOCAL_ENDPOINT=http://127.0.0.1:8000 LOCK_TABLE=locks \
#     workerd serve workerd.capnp --socket-addr http=127.0.0.1:8787
#
# Needs pkg/ from `wasm-bindgen --target web --out-dir pkg ...` (README.md).
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .lockWorker),
    # The Worker's global fetch. workerd refuses private and loopback addresses by default
    # ("connecting to 127.0.0.1 is not allowed"); DynamoDB Local is on loopback.
    (name = "internet", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [(name = "http", address = "127.0.0.1:8787", http = (), service = "main")],
);

const lockWorker :Workerd.Worker = (
  modules = [
    (name = "worker.mjs", esModule = embed "worker.mjs"),
    (name = "pkg/ddb_lock_cloudflare_worker.js", esModule = embed "pkg/ddb_lock_cloudflare_worker.js"),
    (name = "pkg/ddb_lock_cloudflare_worker_bg.wasm", wasm = embed "pkg/ddb_lock_cloudflare_worker_bg.wasm"),
  ],
  compatibilityDate = "2025-01-01",
  bindings = [
    (name = "AWS_REGION", text = "us-east-1"),
    (name = "AWS_ACCESS_KEY_ID", text = "local"),
    (name = "AWS_SECRET_ACCESS_KEY", text = "local"),
    (name = "AWS_ENDPOINT_URL_DYNAMODB", fromEnvironment = "DDB_LOCAL_ENDPOINT"),
    (name = "LOCK_TABLE", fromEnvironment = "LOCK_TABLE"),
  ],
  globalOutbound = "internet",
);
