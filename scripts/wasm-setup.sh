#!/usr/bin/env bash
# Installs what the wasm tests need (idempotent; each part is skipped when already in place):
#   - rustup target wasm32-unknown-unknown
#   - wasm-bindgen-cli (wasm-bindgen, wasm-bindgen-test-runner) at exactly the wasm-bindgen
#     version locked in wasm-tests/Cargo.lock (the runner refuses any other); ~2.5 min to build
#   - Node >= 20 (checked, not installed), npm packages workerd + binaryen in wasm-tests/js
#   - Debian's chromium + chromium-driver (headless browser tests)
#
#   scripts/wasm-setup.sh [--no-browser]
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
JS_DIR="$REPO_ROOT/wasm-tests/js"
NODE_MIN_MAJOR=20

log() { printf '[wasm-setup] %s\n' "$*" >&2; }
die() { printf '[wasm-setup] error: %s\n' "$*" >&2; exit 1; }

browser=1
case "${1:-}" in
  --no-browser) browser=0 ;;
  "") ;;
  *) die "unknown argument '$1' (usage: $0 [--no-browser])" ;;
esac

# The version of package $1 in lock file $2.
locked_version() {
  awk -v name="$1" '
    $0 == "name = \"" name "\"" { found = 1; next }
    found && /^version = / { gsub(/"/, "", $3); print $3; exit }
  ' "$2"
}

t0=$SECONDS
if ! rustup target list --installed | grep -qx 'wasm32-unknown-unknown'; then
  log "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

want="$(locked_version wasm-bindgen "$REPO_ROOT/wasm-tests/Cargo.lock")"
[[ -n "$want" ]] || die "no wasm-bindgen in wasm-tests/Cargo.lock"
worker="$(locked_version wasm-bindgen "$REPO_ROOT/examples/cloudflare-worker/Cargo.lock")"
[[ "$worker" == "$want" ]] ||
  die "examples/cloudflare-worker/Cargo.lock has wasm-bindgen $worker, wasm-tests $want: lock the same version"
have_version() { "$1" --version 2>/dev/null | awk '{print $2}'; }
if [[ "$(have_version wasm-bindgen)" != "$want" || "$(have_version wasm-bindgen-test-runner)" != "$want" ]]; then
  log "cargo install wasm-bindgen-cli --version $want (a few minutes)"
  # Not --locked: a dependency pinned in its lock file is not served by the registry here.
  cargo install wasm-bindgen-cli --version "$want"
fi
log "wasm-bindgen $(have_version wasm-bindgen)"

command -v node >/dev/null || die "node is required (Node >= $NODE_MIN_MAJOR)"
command -v npm >/dev/null || die "npm is required"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
((node_major >= NODE_MIN_MAJOR)) || die "Node $(node --version) is too old: need >= $NODE_MIN_MAJOR"
stamp="$JS_DIR/node_modules/.ddb-lock-stamp"
want_stamp="$(cat "$JS_DIR/package.json" "$JS_DIR/package-lock.json" | sha256sum | cut -d' ' -f1)-node$node_major"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want_stamp" || ! -x "$JS_DIR/node_modules/.bin/workerd" ]]; then
  log "npm ci in wasm-tests/js (workerd, binaryen)"
  (cd "$JS_DIR" && npm ci --no-audit --no-fund --loglevel=error)
  printf '%s\n' "$want_stamp" >"$stamp"
fi
"$JS_DIR/node_modules/.bin/workerd" --version >/dev/null || die "workerd does not run"

if ((browser)) && ! [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
  sudo=()
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || die "need root (or sudo) to apt-get install chromium chromium-driver"
    sudo=(sudo)
  fi
  log "apt-get install chromium chromium-driver"
  "${sudo[@]}" apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq chromium chromium-driver >&2
fi
log "ready in $((SECONDS - t0))s"
