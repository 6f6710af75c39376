#!/usr/bin/env bash
# The whole test suite; .ci/run execs this. Each step is a function so that steps can be
# added or run alone:  scripts/test.sh [STEP...]   (default: all steps, in order)
#
# Steps:
#   toolchain  rustup target wasm32-unknown-unknown
#   interop    npm-install the TypeScript lock client into tests/interop/node_modules
#   native     cargo test --all-targets against a fresh DynamoDB Local
#              (DDB_LOCAL_ENDPOINT + dummy AWS_* exported by scripts/ddb-local.sh run)
#
# TODO(rust engineers): extend as the crate grows, e.g.
#   - lint:   cargo fmt --check; cargo clippy --all-targets -- -D warnings
#   - wasm:   cargo build --target wasm32-unknown-unknown --no-default-features
#             + wasm-bindgen-test-runner (cargo install wasm-bindgen-cli --version <from Cargo.lock>)
#   - browser: apt-get install -y chromium chromium-driver; run with
#             scripts/ddb-local.sh run --cors 'http://127.0.0.1:8830,http://localhost:8830' -- ...
#   - docs:   cargo doc --no-deps
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step_toolchain() {
  step "toolchain: wasm32-unknown-unknown target"
  if ! rustup target list --installed | grep -qx 'wasm32-unknown-unknown'; then
    rustup target add wasm32-unknown-unknown
  fi
  rustc --version >&2
  cargo --version >&2
}

step_interop() {
  step "interop: TypeScript lock client (tests/interop)"
  bash scripts/interop-setup.sh
}

step_native() {
  step "native: cargo test --all-targets with DynamoDB Local"
  DDB_LOCK_PYTHON="$(bash scripts/sigv4-setup.sh)"
  export DDB_LOCK_PYTHON
  bash scripts/ddb-local.sh run -- cargo test --all-targets
  # TODO: add feature combinations here (e.g. --no-default-features) as they appear.
}

ALL_STEPS=(toolchain interop native)

main() {
  local steps=("$@")
  ((${#steps[@]})) || steps=("${ALL_STEPS[@]}")
  local s t0
  for s in "${steps[@]}"; do
    declare -F "step_$s" >/dev/null || { echo "unknown step: $s (have: ${ALL_STEPS[*]})" >&2; exit 2; }
    t0=$SECONDS
    "step_$s"
    printf '==> %s done in %ss\n' "$s" "$((SECONDS - t0))" >&2
  done
}

main "$@"
