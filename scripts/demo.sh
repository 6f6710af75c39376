#!/usr/bin/env bash
# The demo: starts DynamoDB Local, then several workers race for one lock.
#   bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --quiet --release --example demo
# shellcheck disable=SC2016 # expanded by the inner shell, once DynamoDB Local is up
exec bash scripts/ddb-local.sh run -- bash -c \
  'AWS_ENDPOINT_URL_DYNAMODB="$DDB_LOCAL_ENDPOINT" exec cargo run --quiet --release --example demo'
