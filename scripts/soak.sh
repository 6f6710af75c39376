#!/usr/bin/env bash
# Long soak of the deterministic lock simulation (tests/simulation.rs).
#
#   scripts/soak.sh [TOTAL_SEEDS] [CHUNK]        (defaults: 100000 seeds, chunks of 10000)
#
# Environment: SIM_START (first seed, default 0), SIM_THREADS (default: all cores).
# Builds the test once (profile `sim`), runs it chunk by chunk, prints seeds/s per chunk and the
# totals at the end. A failing seed prints its report (seed, scenario, last events, the rerun
# command); the soak goes on and exits 1 at the end if any seed failed. Rerun one seed with
#   SIM_SEED=<n> SIM_TRACE=1 cargo test --profile sim --no-default-features --test simulation -- --nocapture simulate
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

total=${1:-${SIM_SEEDS:-100000}}
chunk=${2:-10000}
start=${SIM_START:-0}
[[ $total =~ ^[0-9]+$ && $chunk =~ ^[0-9]+$ && $start =~ ^[0-9]+$ && $chunk -gt 0 ]] || {
  echo "usage: $0 [TOTAL_SEEDS] [CHUNK]  (numbers; SIM_START=<first seed>)" >&2
  exit 2
}

echo "==> building the simulation (profile sim)" >&2
bin=$(cargo test --profile sim --no-default-features --test simulation --no-run 2>&1 |
  sed -n 's/.*Executable tests\/simulation\.rs (\(.*\))$/\1/p' | tail -1)
[[ -n $bin && -x $bin ]] || { echo "could not find the simulation test binary" >&2; exit 1; }

log=$(mktemp -t ddb-lock-soak.XXXXXX)
trap 'rm -f "$log"' EXIT
failed=0
done_seeds=0
t0=$(date +%s.%N)
echo "==> soak: seeds $start..$((start + total)) in chunks of $chunk (binary $bin)" >&2

while ((done_seeds < total)); do
  n=$((total - done_seeds < chunk ? total - done_seeds : chunk))
  s=$((start + done_seeds))
  out=$(SIM_START=$s SIM_SEEDS=$n "$bin" --exact simulate --nocapture 2>&1) || {
    failed=1
    echo "$out" | grep -v '^\s*[0-9]*: \|^ *at ' | sed -n '/VIOLATION/,$p' | head -120 || true
  }
  echo "$out" >>"$log"
  line=$(echo "$out" | grep -m1 '^simulation: ' || true)
  done_seeds=$((done_seeds + n))
  printf 'seeds %8d..%-8d %s\n' "$s" "$((s + n))" "${line#simulation: }"
done

secs=$(echo "$(date +%s.%N) - $t0" | bc)
echo
printf 'soak: %d seeds in %.0fs (%.0f seeds/s overall)\n' "$total" "$secs" \
  "$(echo "$total / $secs" | bc -l)"
# Totals: sum every counter over the chunks (maxima for the max_* / *_max_* ones).
awk '
  /^  [a-z]+ +[a-z_]+=/ {
    group = $1
    if (!(group in seen)) { seen[group] = 1; order[++ng] = group }
    for (i = 2; i <= NF; i++) {
      split($i, kv, "=")
      key = group SUBSEP kv[1]
      if (!(key in val)) { keys[group] = keys[group] " " kv[1]; val[key] = 0 }
      if (kv[1] ~ /max/) { if (kv[2] + 0 > val[key] + 0) val[key] = kv[2] + 0 }
      else val[key] += kv[2]
    }
  }
  END {
    for (g = 1; g <= ng; g++) {
      group = order[g]; n = split(keys[group], ks, " "); line = sprintf("  %-10s", group)
      for (i = 1; i <= n; i++) line = line sprintf(" %s=%s", ks[i], val[group SUBSEP ks[i]])
      print line
    }
  }' "$log"
grep -h '^known core issue' "$log" | head -1 || true
if ((failed)); then
  echo "soak: FAILED (see the reports above)" >&2
  exit 1
fi
echo "soak: ok"
