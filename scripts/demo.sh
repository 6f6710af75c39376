#!/usr/bin/env bash
# The demo: starts DynamoDB Local, then several workers race for one lock.
#   bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --example demo
exec bash scripts/ddb-local.sh run -- cargo run --quiet --release --example demo
