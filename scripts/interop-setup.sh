#!/usr/bin/env bash
# Install the TypeScript lock client used by the interop tests into tests/interop/node_modules.
# Idempotent: skips when node_modules matches package.json + package-lock.json already.
#
#   scripts/interop-setup.sh           # install if needed
#   scripts/interop-setup.sh --force   # reinstall
#
# Pinned in tests/interop/package.json (+ package-lock.json): @deliveryhero/dynamodb-lock 2.0.0,
# @aws-sdk/client-dynamodb and @aws-sdk/lib-dynamodb 3.1169.0 (these run on Node 20; newer SDK
# releases may need Node 22).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$REPO_ROOT/tests/interop"
NODE_MIN_MAJOR=20

log() { printf '[interop-setup] %s\n' "$*" >&2; }
die() { printf '[interop-setup] error: %s\n' "$*" >&2; exit 1; }

force=0
case "${1:-}" in
  --force) force=1 ;;
  "") ;;
  *) die "unknown argument '$1' (usage: $0 [--force])" ;;
esac

command -v node >/dev/null || die "node is required (Node >= $NODE_MIN_MAJOR)"
command -v npm >/dev/null || die "npm is required"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if ((node_major < NODE_MIN_MAJOR)); then
  die "Node $(node --version) is too old: need >= $NODE_MIN_MAJOR"
fi

[[ -f "$DIR/package.json" ]] || die "$DIR/package.json missing"

hash_inputs() {
  # The stamp covers the manifest, the lock file and the Node major version.
  {
    cat "$DIR/package.json"
    [[ -f "$DIR/package-lock.json" ]] && cat "$DIR/package-lock.json"
    printf 'node %s\n' "$node_major"
  } | sha256sum | cut -d' ' -f1
}

stamp="$DIR/node_modules/.ddb-lock-interop.stamp"
want="$(hash_inputs)"
if [[ $force == 0 && -f "$stamp" && "$(cat "$stamp")" == "$want" \
      && -f "$DIR/node_modules/@deliveryhero/dynamodb-lock/package.json" ]]; then
  log "tests/interop/node_modules is up to date"
  exit 0
fi

t0=$(date +%s%3N)
cd "$DIR"
if [[ -f package-lock.json ]]; then
  log "npm ci in tests/interop ..."
  npm ci --no-audit --no-fund >&2
else
  log "npm install in tests/interop (no package-lock.json yet) ..."
  npm install --no-audit --no-fund >&2
fi
# Smoke check: the client and the SDK load under this Node.
node --input-type=module -e '
  await import("@deliveryhero/dynamodb-lock");
  await import("@aws-sdk/client-dynamodb");
  await import("@aws-sdk/lib-dynamodb");
' >&2 || die "installed packages do not load under Node $(node --version)"
hash_inputs >"$stamp"
log "installed in $(( $(date +%s%3N) - t0 )) ms"
