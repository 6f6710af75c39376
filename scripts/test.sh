#!/usr/bin/env bash
# The whole test suite; .ci/run execs this. Each step is a function so that steps can be
# added or run alone:  scripts/test.sh [STEP...]   (default: all steps, in order)
#
# Steps:
#   toolchain  rustup target wasm32-unknown-unknown
#   lint       fmt, clippy (native + wasm32), docs, no tokio runtime without the feature,
#              wasm32 build
#   interop    npm-install the TypeScript lock client into tests/interop/node_modules
#   native     cargo test --all-targets against a fresh DynamoDB Local
#              (DDB_LOCAL_ENDPOINT + dummy AWS_* exported by scripts/ddb-local.sh run);
#              the simulation runs a smoke test here (debug build)
#   sim        the deterministic simulation of the shipped client, optimized build,
#              10,000 seeds (SIM_SEEDS to change)
#   mutants    the mutation check: each known defect re-introduced must be caught by the
#              unit tests or the simulation (scripts/mutants.py)
#   wasm       the same scenarios on wasm32 in Node and headless Chromium, the example
#              Cloudflare Worker in raw workerd beside a native client, its module size
#              (scripts/wasm-setup.sh installs the tools; scripts/wasm-test.sh runs the parts)
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

step_lint() {
  step "lint: fmt, clippy (native + wasm32), docs, feature hygiene"
  cargo fmt --check
  cargo clippy --all-targets -- -D warnings
  cargo clippy --lib --target wasm32-unknown-unknown --no-default-features -- -D warnings
  cargo clippy --lib --target wasm32-unknown-unknown --no-default-features --features wasm -- -D warnings
  RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
  # Without the tokio feature no tokio runtime, reqwest or hyper may be compiled. (aws-sigv4
  # pulls in tokio with only its "sync" feature, through aws-smithy-async: no runtime.)
  if cargo tree --no-default-features -e normal --prefix none | grep -Eq '^(reqwest|hyper) ' ||
    cargo tree --no-default-features -e normal,features -i tokio 2>/dev/null |
    grep -Eq 'tokio feature "(rt|rt-multi-thread|net|time|process|fs|io-util)"'; then
    echo "a tokio runtime, reqwest or hyper is compiled without the tokio feature" >&2
    exit 1
  fi
  # ...and with it, it is (so the check above can fail).
  cargo tree -e normal,features -i tokio | grep -q 'tokio feature "rt"'
  # The crate builds for wasm32-unknown-unknown even before the wasm adapters exist.
  cargo build --quiet --target wasm32-unknown-unknown --no-default-features
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

step_sim() {
  step "sim: deterministic simulation of the shipped client (${SIM_SEEDS:-10000} seeds)"
  SIM_SEEDS="${SIM_SEEDS:-10000}" cargo test --profile sim --no-default-features \
    --test simulation -- --nocapture
}

step_mutants() {
  step "mutants: known defects re-introduced one at a time must be caught"
  python3 scripts/mutants.py
}

step_wasm() {
  step "wasm: Node, headless Chromium, workerd (wasm-tests/, examples/cloudflare-worker/)"
  bash scripts/wasm-setup.sh
  bash scripts/wasm-test.sh
}

ALL_STEPS=(toolchain lint interop native sim mutants wasm)

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
