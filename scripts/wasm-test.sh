#!/usr/bin/env bash
# The lock on wasm hosts, against DynamoDB Local (scripts/ddb-local.sh). Needs
# scripts/wasm-setup.sh first.
#
#   scripts/wasm-test.sh [PART...]     (default: all parts, in order)
#
# Parts:
#   lint     clippy of the wasm adapter (feature wasm), wasm-tests and the example Worker
#   node     wasm-tests (tests/scenarios/mod.rs, shared with the native suite) in Node
#   browser  the same in headless Chromium (DynamoDB Local with CORS for the test page)
#   worker   builds the example Worker (release, wasm-bindgen --target web, wasm-opt -Oz)
#   imports  no wasm module (tests, Worker) imports anything from "env"
#   workerd  the Worker in raw workerd, beside a native client (wasm-tests/workerd/test.mjs)
#   size     the Worker's module size (wasm + JS glue), raw and gzip
#   browser-example  builds examples/browser/ and loads its page in headless Chromium against
#                    DynamoDB Local (CORS origin http://127.0.0.1:8840): status ok + a token
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$PWD"

JS_BIN="$ROOT/wasm-tests/js/node_modules/.bin"
WORKER_DIR="$ROOT/examples/cloudflare-worker"
WORKER_CRATE="ddb_lock_cloudflare_worker"
# The page wasm-bindgen-test-runner serves in the browser; DynamoDB Local allows its origin
# (it matches exact origins only: `-cors '*'` does not work).
BROWSER_ADDR="127.0.0.1:8830"
BROWSER_ORIGINS="http://127.0.0.1:8830,http://localhost:8830"
# wasm-opt must come from npm binaryen (Debian's wasm-opt 108 produces broken modules).
WASM_OPT_FEATURES=(--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext
  --enable-reference-types --enable-mutable-globals --enable-multivalue)

part() { printf '\n--> wasm %s\n' "$*" >&2; }

part_lint() {
  part "lint: clippy (wasm adapter, wasm-tests, Worker)"
  cargo clippy --lib --target wasm32-unknown-unknown --no-default-features --features wasm -- -D warnings
  RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet --target wasm32-unknown-unknown \
    --no-default-features --features wasm
  # A native build with the feature compiles no wasm-bindgen (its dependencies are wasm32-only).
  if cargo tree --no-default-features --features wasm -e normal --prefix none |
    grep -Eq '^(wasm-bindgen|js-sys|web-sys|wasm-bindgen-futures) '; then
    echo "feature wasm pulls wasm-bindgen into a native build" >&2
    exit 1
  fi
  # ...and a wasm build compiles no tokio runtime, hyper or native reqwest.
  if cargo tree --target wasm32-unknown-unknown --no-default-features --features wasm -e normal,features -i tokio 2>/dev/null |
    grep -Eq 'tokio feature "(rt|rt-multi-thread|net|time)"' ||
    cargo tree --target wasm32-unknown-unknown --no-default-features --features wasm -e normal --prefix none |
    grep -Eq '^(hyper|rustls|aws-lc-sys) '; then
    echo "feature wasm compiles a tokio runtime, hyper or rustls on wasm32" >&2
    exit 1
  fi
  (cd wasm-tests && cargo fmt --check &&
    DDB_LOCAL_ENDPOINT=http://127.0.0.1:1 cargo clippy --all-targets -- -D warnings &&
    DDB_LOCAL_ENDPOINT=http://127.0.0.1:1 cargo clippy --all-targets --features browser -- -D warnings)
  (cd "$WORKER_DIR" && cargo fmt --check && cargo clippy -- -D warnings)
}

part_node() {
  part "node: scenarios under wasm-bindgen-test-runner in Node"
  # DDB_LOCAL_ENDPOINT (exported by ddb-local.sh run) is compiled into the tests.
  bash scripts/ddb-local.sh run -- bash -c 'cd wasm-tests && cargo test'
}

part_browser() {
  part "browser: scenarios in headless Chromium"
  if (exec 3<>"/dev/tcp/${BROWSER_ADDR%:*}/${BROWSER_ADDR#*:}") 2>/dev/null; then
    echo "$BROWSER_ADDR is taken: the browser tests need it (DynamoDB Local's CORS origin)" >&2
    exit 1
  fi
  WASM_BINDGEN_TEST_ADDRESS="$BROWSER_ADDR" CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}" \
    WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-120}" \
    bash scripts/ddb-local.sh run --cors "$BROWSER_ORIGINS" -- \
    bash -c 'cd wasm-tests && cargo test --features browser'
}

part_worker() {
  part "worker: release build, wasm-bindgen --target web, wasm-opt -Oz"
  (cd "$WORKER_DIR" && cargo build --release)
  local out="$WORKER_DIR/pkg"
  rm -rf "$out"
  wasm-bindgen --target web --out-dir "$out" \
    "$WORKER_DIR/target/wasm32-unknown-unknown/release/$WORKER_CRATE.wasm"
  "$JS_BIN/wasm-opt" -Oz "${WASM_OPT_FEATURES[@]}" --strip-debug --strip-producers \
    "$out/${WORKER_CRATE}_bg.wasm" -o "$out/${WORKER_CRATE}_bg.wasm"
}

part_imports() {
  part "imports: nothing from \"env\""
  [[ -f "$WORKER_DIR/pkg/${WORKER_CRATE}_bg.wasm" ]] || part_worker
  (cd wasm-tests && DDB_LOCAL_ENDPOINT=http://127.0.0.1:1 cargo test --no-run --quiet --message-format=json |
    node -e '
      let s = "";
      process.stdin.on("data", (d) => (s += d)).on("end", () => {
        for (const line of s.split("\n")) {
          if (!line) continue;
          const m = JSON.parse(line);
          if (m.reason === "compiler-artifact" && m.executable) console.log(m.executable);
        }
      });' >"$ROOT/target/wasm-test-artifacts.txt")
  mapfile -t tests <"$ROOT/target/wasm-test-artifacts.txt"
  ((${#tests[@]})) || { echo "no wasm test artifacts found" >&2; exit 1; }
  node scripts/wasm-imports.mjs "${tests[@]}" \
    "$WORKER_DIR/target/wasm32-unknown-unknown/release/$WORKER_CRATE.wasm" \
    "$WORKER_DIR/pkg/${WORKER_CRATE}_bg.wasm"
}

part_workerd() {
  part "workerd: the example Worker beside a native client"
  [[ -f "$WORKER_DIR/pkg/${WORKER_CRATE}_bg.wasm" ]] || part_worker
  cargo build --quiet --example lock_peer
  WORKERD="$JS_BIN/workerd" LOCK_PEER="$ROOT/target/debug/examples/lock_peer" \
    bash scripts/ddb-local.sh run -- node --test wasm-tests/workerd/test.mjs
}

part_size() {
  part "size: the Worker module (after wasm-bindgen + wasm-opt -Oz)"
  [[ -f "$WORKER_DIR/pkg/${WORKER_CRATE}_bg.wasm" ]] || part_worker
  local wasm="$WORKER_DIR/pkg/${WORKER_CRATE}_bg.wasm" js="$WORKER_DIR/pkg/${WORKER_CRATE}.js"
  local w j wg jg
  w=$(stat -c %s "$wasm")
  j=$(stat -c %s "$js")
  wg=$(gzip -9c "$wasm" | wc -c)
  jg=$(gzip -9c "$js" | wc -c)
  printf 'worker module: wasm %d B (gzip %d B) + glue %d B (gzip %d B) = %d B raw, %d B gzip (%.1f KiB)\n' \
    "$w" "$wg" "$j" "$jg" "$((w + j))" "$((wg + jg))" "$(echo "($wg + $jg) / 1024" | bc -l)"
}

# examples/browser/: the page, served by its serve.mjs on this address (DynamoDB Local's CORS
# origin for it: exact, like BROWSER_ORIGINS).
PAGE_DIR="$ROOT/examples/browser"
PAGE_ADDR="127.0.0.1:8840"

part_browser-example() {
  part "browser-example: examples/browser/ in headless Chromium"
  if (exec 3<>"/dev/tcp/${PAGE_ADDR%:*}/${PAGE_ADDR#*:}") 2>/dev/null; then
    echo "$PAGE_ADDR is taken: the page needs it (DynamoDB Local's CORS origin)" >&2
    exit 1
  fi
  (cd "$PAGE_DIR" && cargo build --release --target wasm32-unknown-unknown)
  rm -rf "$PAGE_DIR/pkg"
  wasm-bindgen --target web --out-dir "$PAGE_DIR/pkg" \
    "$PAGE_DIR/target/wasm32-unknown-unknown/release/ddb_lock_browser.wasm"
  # In a subshell so that its EXIT trap stops DynamoDB Local and the server whatever happens.
  (
    endpoint="" server="" profile="$(mktemp -d)"
    cleanup() {
      [[ -z "$server" ]] || kill "$server" 2>/dev/null || true
      [[ -z "$endpoint" ]] || bash scripts/ddb-local.sh stop "${endpoint##*:}"
      rm -rf "$profile"
    }
    trap cleanup EXIT
    endpoint="$(bash scripts/ddb-local.sh start --cors "http://$PAGE_ADDR")"
    node "$PAGE_DIR/serve.mjs" --port "${PAGE_ADDR#*:}" --endpoint "$endpoint" \
      --table "browserExample$RANDOM" >&2 &
    server=$!
    for _ in $(seq 50); do
      curl -sf -o /dev/null "http://$PAGE_ADDR/config" && break
      sleep 0.1
    done
    dom="$(timeout 60 "${CHROMIUM:-/usr/bin/chromium}" --headless --no-sandbox --disable-gpu \
      --disable-background-networking --disable-component-update --disable-sync --no-first-run \
      --user-data-dir="$profile" --virtual-time-budget=15000 --dump-dom "http://$PAGE_ADDR/" \
      2>"$profile/chromium.log")" || { cat "$profile/chromium.log" >&2; exit 1; }
    printf '%s\n' "$dom" | sed -n '/<pre id="out">/,/<\/pre>/p' >&2
    if ! grep -q 'data-status="ok"' <<<"$dom" ||
      ! grep -Eq '"fencingToken": "[0-9]+"' <<<"$dom"; then
      echo "the page did not report status ok with a fencing token" >&2
      exit 1
    fi
    echo "browser example: status ok, fencing token shown" >&2
  )
}

ALL_PARTS=(lint node browser worker imports workerd size browser-example)

main() {
  local parts=("$@")
  ((${#parts[@]})) || parts=("${ALL_PARTS[@]}")
  local p t0
  for p in "${parts[@]}"; do
    declare -F "part_$p" >/dev/null || { echo "unknown part: $p (have: ${ALL_PARTS[*]})" >&2; exit 2; }
    t0=$SECONDS
    "part_$p"
    printf -- '--> wasm %s done in %ss\n' "$p" "$((SECONDS - t0))" >&2
  done
}

main "$@"
