#!/usr/bin/env bash
# Peak memory (RSS) and wall time of examples/minimal.rs (take one lock, release it, exit;
# current-thread tokio) against a fresh DynamoDB Local.
#
#   bash scripts/rss.sh [RUNS]      # default 5 runs
#
# Builds the example in release, starts DynamoDB Local (scripts/ddb-local.sh run), runs the
# binary RUNS times and prints each run's peak RSS and wall time, then the median and the
# maximum. Peak RSS comes from GNU time (`/usr/bin/time -f %M`); without it, from
# getrusage(RUSAGE_CHILDREN) through python3. Target: peak RSS <= 8 MB.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN=target/release/examples/minimal
TARGET_KB=$((8 * 1024))

die() { printf 'rss.sh: %s\n' "$*" >&2; exit 1; }

# One run of $BIN: prints "<peak RSS KB> <wall ms>".
measure_once() {
  local out t0 t1 kb
  out="$(mktemp)"
  t0=$(date +%s%N)
  if [[ -x /usr/bin/time ]]; then
    /usr/bin/time -f '%M' -o "$out" "$BIN" >/dev/null || { cat "$out" >&2; rm -f "$out"; die "$BIN failed"; }
    t1=$(date +%s%N)
    kb="$(tail -n1 "$out")"
  else
    python3 - "$BIN" >"$out" <<'PY' || { rm -f "$out"; die "$BIN failed"; }
import resource, subprocess, sys
subprocess.run([sys.argv[1]], stdout=subprocess.DEVNULL, check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # KB on Linux
PY
    t1=$(date +%s%N)
    kb="$(tail -n1 "$out")"
  fi
  rm -f "$out"
  printf '%s %s\n' "$kb" "$(( (t1 - t0) / 1000000 ))"
}

mb() { awk -v kb="$1" 'BEGIN { printf "%.2f", kb / 1024 }'; }

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Runs under DynamoDB Local (re-invoked by ddb-local.sh run).
cmd_measure() {
  local runs="$1" i kb ms rss=() wall=()
  [[ -n "${DDB_LOCAL_ENDPOINT:-}" ]] || die "DDB_LOCAL_ENDPOINT is not set"
  # AWS_ENDPOINT_URL_DYNAMODB wins over DDB_LOCAL_ENDPOINT in the example: point it here too.
  export AWS_ENDPOINT_URL_DYNAMODB="$DDB_LOCAL_ENDPOINT"
  if [[ -x /usr/bin/time ]]; then
    echo "peak RSS from /usr/bin/time (max resident set size); wall time from date(1)"
  else
    echo "peak RSS from getrusage(RUSAGE_CHILDREN) via python3; wall time from date(1)"
  fi
  for i in $(seq 1 "$runs"); do
    read -r kb ms < <(measure_once)
    rss+=("$kb")
    wall+=("$ms")
    printf '  run %d: peak RSS %6d KB (%s MB)   wall %5d ms\n' "$i" "$kb" "$(mb "$kb")" "$ms"
  done
  local rss_med rss_max wall_med wall_max
  rss_med="$(printf '%s\n' "${rss[@]}" | median)"
  rss_max="$(printf '%s\n' "${rss[@]}" | sort -n | tail -n1)"
  wall_med="$(printf '%s\n' "${wall[@]}" | median)"
  wall_max="$(printf '%s\n' "${wall[@]}" | sort -n | tail -n1)"
  printf 'minimal example, %d runs (binary %s, %d KB on disk)\n' "$runs" "$BIN" "$(( $(stat -c %s "$BIN") / 1024 ))"
  printf '  peak RSS   median %s KB, max %s KB (%s MB)   [target <= 8 MB: %s]\n' \
    "$rss_med" "$rss_max" "$(mb "$rss_max")" \
    "$( ((rss_max <= TARGET_KB)) && echo ok || echo MISSED)"
  printf '  wall time  median %s ms, max %s ms (process start to exit, incl. table check)\n' \
    "$wall_med" "$wall_max"
}

main() {
  if [[ "${1:-}" == "__measure" ]]; then
    cmd_measure "${2:-5}"
    return
  fi
  local runs="${1:-5}"
  [[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive number (got '$runs')"
  if [[ ! -x /usr/bin/time ]] && command -v apt-get >/dev/null && [[ $(id -u) == 0 ]]; then
    echo "installing GNU time (apt-get install -y time) ..." >&2
    apt-get install -y -q time >/dev/null 2>&1 || echo "could not install GNU time; using python3" >&2
  fi
  [[ -x /usr/bin/time ]] || command -v python3 >/dev/null || die "need /usr/bin/time or python3"
  cargo build --quiet --release --example minimal
  exec bash scripts/ddb-local.sh run -- bash "${BASH_SOURCE[0]}" __measure "$runs"
}

main "$@"
