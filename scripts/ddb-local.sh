#!/usr/bin/env bash
# Fetch, start and stop DynamoDB Local (the Java jar) for tests.
#
#   scripts/ddb-local.sh fetch
#   scripts/ddb-local.sh start [--cors ORIGINS]     # prints http://127.0.0.1:PORT on stdout
#   scripts/ddb-local.sh stop [PORT]                # all instances when no PORT
#   scripts/ddb-local.sh status
#   scripts/ddb-local.sh run [--cors ORIGINS] -- CMD ARGS...
#
# The jar comes from the npm package amplify-dynamodb-simulator (it ships
# emulator/DynamoDBLocal.jar + emulator/DynamoDBLocal_lib/). It needs Java >= 17.
#
# Environment:
#   DDB_LOCK_CACHE          cache/state dir (default: <repo>/target/ddb-local)
#   DDB_LOCAL_START_TIMEOUT seconds to wait for the server to answer (default: 60)
#   DDB_LOCAL_JAVA_OPTS     extra JVM options (word-split)
#
# Notes:
#   - DynamoDB Local has no bind-address option (it calls Jetty's new Server(port), i.e. all
#     interfaces). We always hand out the loopback endpoint.
#   - It does not verify SigV4 signatures; tests against it prove nothing about signing.
#   - `-cors '*'` only matches the literal origin `*`: pass exact origins, comma-separated.
#   - Runs with -inMemory -sharedDb -disableTelemetry.
set -euo pipefail

# Pinned: 2.9.30 ships DynamoDB Local 1.25.1 and works with Java 17 here.
SIM_PACKAGE="amplify-dynamodb-simulator"
SIM_VERSION="2.9.30"
# npm registry dist.integrity of amplify-dynamodb-simulator@2.9.30
SIM_INTEGRITY="sha512-xTeeRLvzEfqyd5lh3bH4c0kHvSHHmmhD5ZDsHFKAQ5g2Zl6JqlFdutaQhCLHzxEp6Ry1o7TB6niIoXuQAnSewQ=="
JAVA_MIN_MAJOR=17
JAVA_APT_PACKAGE="openjdk-17-jre-headless"

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${DDB_LOCK_CACHE:-$REPO_ROOT/target/ddb-local}"
DIST_DIR="$CACHE_DIR/$SIM_PACKAGE-$SIM_VERSION"
STATE_DIR="$CACHE_DIR/instances"
START_TIMEOUT="${DDB_LOCAL_START_TIMEOUT:-60}"

log() { printf '[ddb-local] %s\n' "$*" >&2; }
die() { printf '[ddb-local] error: %s\n' "$*" >&2; exit 1; }

usage() {
  sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
}

now_ms() { date +%s%3N; }

# ---------------------------------------------------------------------------------------- fetch

jar_present() {
  [[ -f "$DIST_DIR/DynamoDBLocal.jar" && -d "$DIST_DIR/DynamoDBLocal_lib" && -f "$DIST_DIR/.complete" ]]
}

cmd_fetch() {
  if jar_present; then
    log "DynamoDB Local already in $DIST_DIR"
    return 0
  fi
  command -v npm >/dev/null || die "npm is required to fetch $SIM_PACKAGE"
  command -v tar >/dev/null || die "tar is required"
  mkdir -p "$CACHE_DIR"
  # Serialize concurrent fetches (several test runs starting at once).
  exec 8>"$CACHE_DIR/.fetch.lock"
  if command -v flock >/dev/null; then flock 8; fi
  if jar_present; then
    exec 8>&-
    log "DynamoDB Local already in $DIST_DIR"
    return 0
  fi
  local tmp t0
  tmp="$(mktemp -d "$CACHE_DIR/.fetch.XXXXXX")"
  t0=$(now_ms)
  log "npm pack $SIM_PACKAGE@$SIM_VERSION ..."
  local tgz
  if ! tgz="$(cd "$tmp" && npm pack --silent "$SIM_PACKAGE@$SIM_VERSION" 2>"$tmp/npm.log" | tail -n1)"; then
    cat "$tmp/npm.log" >&2 || true
    rm -rf "$tmp"
    die "npm pack $SIM_PACKAGE@$SIM_VERSION failed"
  fi
  [[ -f "$tmp/$tgz" ]] || { rm -rf "$tmp"; die "npm pack did not produce a tarball (got '$tgz')"; }
  local got
  got="sha512-$(openssl dgst -sha512 -binary "$tmp/$tgz" 2>/dev/null | base64 -w0 || true)"
  if [[ "$got" != "$SIM_INTEGRITY" ]]; then
    if command -v openssl >/dev/null; then
      rm -rf "$tmp"
      die "integrity mismatch for $tgz: got $got, want $SIM_INTEGRITY"
    fi
    log "openssl missing: skipping integrity check"
  fi
  mkdir -p "$tmp/x"
  tar -xzf "$tmp/$tgz" -C "$tmp/x" package/emulator
  [[ -f "$tmp/x/package/emulator/DynamoDBLocal.jar" ]] || { rm -rf "$tmp"; die "jar missing from $tgz"; }
  touch "$tmp/x/package/emulator/.complete"
  rm -rf "$DIST_DIR"
  mv "$tmp/x/package/emulator" "$DIST_DIR"
  rm -rf "$tmp"
  exec 8>&-
  log "fetched DynamoDB Local into $DIST_DIR in $(( $(now_ms) - t0 )) ms"
}

# ----------------------------------------------------------------------------------------- java

java_major() {
  # Prints the major version of `java` on PATH, or nothing.
  command -v java >/dev/null || return 0
  local v
  v="$(java -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)"
  [[ -n "$v" ]] || return 0
  if [[ "$v" == 1.* ]]; then
    v="${v#1.}"
  fi
  printf '%s\n' "${v%%[.+_-]*}"
}

ensure_java() {
  local major
  major="$(java_major)"
  if [[ -n "$major" && "$major" =~ ^[0-9]+$ && "$major" -ge $JAVA_MIN_MAJOR ]]; then
    return 0
  fi
  log "java ${major:-missing} found; need >= $JAVA_MIN_MAJOR: installing $JAVA_APT_PACKAGE"
  local sudo=()
  if [[ "$(id -u)" != 0 ]]; then
    command -v sudo >/dev/null || die "need root (or sudo) to apt-get install $JAVA_APT_PACKAGE"
    sudo=(sudo)
  fi
  command -v apt-get >/dev/null || die "apt-get not available: install Java >= $JAVA_MIN_MAJOR yourself"
  "${sudo[@]}" apt-get update >&2
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends "$JAVA_APT_PACKAGE" >&2
  hash -r
  major="$(java_major)"
  [[ -n "$major" && "$major" -ge $JAVA_MIN_MAJOR ]] \
    || die "java still ${major:-missing} after installing $JAVA_APT_PACKAGE (check update-alternatives)"
}

# ---------------------------------------------------------------------------------------- ports

free_port() {
  if command -v python3 >/dev/null && python3 -c 'pass' 2>/dev/null; then
    python3 - <<'PY'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
    return 0
  fi
  # Fallback: random high ports until nothing answers on loopback.
  local p
  for _ in $(seq 1 200); do
    p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      printf '%s\n' "$p"
      return 0
    fi
  done
  die "could not find a free port"
}

# ---------------------------------------------------------------------------------- start / stop

list_tables() {
  # Real DynamoDB ListTables request; prints the HTTP status code.
  local port="$1"
  curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
    -X POST "http://127.0.0.1:$port/" \
    -H 'Content-Type: application/x-amz-json-1.0' \
    -H 'X-Amz-Target: DynamoDB_20120810.ListTables' \
    -H 'Authorization: AWS4-HMAC-SHA256 Credential=x/20200101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0' \
    --data '{}' 2>/dev/null || true
}

is_our_java() {
  # True when PID is alive and is a DynamoDB Local JVM (guards against recycled pids).
  local pid="$1"
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'DynamoDBLocal.jar'
}

# Starts one instance on a fresh port; sets STARTED_PORT (as soon as the JVM is spawned, so
# a signal handler can clean up). Runs in the calling shell, not a subshell. Returns 2 when
# the port was taken under us (caller retries), 1 on other failures.
STARTED_PORT=""
start_once() {
  local cors="$1" port pid logf t0 code
  port="$(free_port)"
  mkdir -p "$STATE_DIR"
  logf="$STATE_DIR/$port.log"
  local args=(-Djava.library.path="$DIST_DIR/DynamoDBLocal_lib")
  if [[ -n "${DDB_LOCAL_JAVA_OPTS:-}" ]]; then
    # shellcheck disable=SC2206
    args+=($DDB_LOCAL_JAVA_OPTS)
  fi
  args+=(-jar "$DIST_DIR/DynamoDBLocal.jar" -inMemory -sharedDb -disableTelemetry -port "$port")
  if [[ -n "$cors" ]]; then
    args+=(-cors "$cors")
  fi
  t0=$(now_ms)
  # Own session, stdin closed, all output to the log: never holds the caller's stdout
  # (so `endpoint=$(ddb-local.sh start)` returns) and survives this script.
  (cd "$DIST_DIR" && exec setsid java "${args[@]}" </dev/null >"$logf" 2>&1) &
  pid=$!
  printf '%s\n' "$pid" >"$STATE_DIR/$port.pid"
  STARTED_PORT="$port"
  log "started java pid $pid on port $port (log: $logf)"

  local deadline=$(( $(date +%s) + START_TIMEOUT ))
  while :; do
    code="$(list_tables "$port")"
    if [[ "$code" == 200 ]]; then
      log "DynamoDB Local answering on port $port after $(( $(now_ms) - t0 )) ms"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null || true
      STARTED_PORT=""
      rm -f "$STATE_DIR/$port.pid"
      if grep -q -i -E 'BindException|Address already in use' "$logf" 2>/dev/null; then
        log "port $port was taken; retrying on another port"
        rm -f "$logf"
        return 2
      fi
      log "java exited before answering; its log ($logf):"
      cat "$logf" >&2 || true
      return 1
    fi
    if (( $(date +%s) >= deadline )); then
      log "no ListTables answer on port $port after ${START_TIMEOUT}s (last HTTP status: ${code:-none}); java log:"
      cat "$logf" >&2 || true
      STARTED_PORT=""
      stop_port "$port"
      return 1
    fi
    sleep 0.2
  done
}

# Fetch, check Java, start one instance; sets STARTED_PORT.
start_instance() {
  local cors="$1" rc
  command -v curl >/dev/null || die "curl is required"
  cmd_fetch
  ensure_java
  for _ in 1 2 3; do
    rc=0
    start_once "$cors" || rc=$?
    [[ $rc == 0 ]] && return 0
    [[ $rc == 2 ]] || die "DynamoDB Local failed to start"
  done
  die "DynamoDB Local failed to start (ports kept being taken)"
}

parse_cors() {
  # Sets CORS and REST (remaining args) from: [--cors ORIGINS] [--] ...
  CORS=""
  REST=()
  while (($#)); do
    case "$1" in
      --cors) [[ $# -ge 2 ]] || die "--cors needs a value"; CORS="$2"; shift 2 ;;
      --cors=*) CORS="${1#--cors=}"; shift ;;
      --) shift; break ;;
      *) break ;;
    esac
  done
  REST=("$@")
}

cmd_start() {
  parse_cors "$@"
  ((${#REST[@]} == 0)) || die "start: unknown argument '${REST[0]}'"
  # A signal while starting must not leak the JVM.
  trap 'stop_started' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  start_instance "$CORS"
  local port="$STARTED_PORT"
  STARTED_PORT=""
  trap - EXIT INT TERM
  printf 'http://127.0.0.1:%s\n' "$port"
}

stop_started() {
  if [[ -n "$STARTED_PORT" ]]; then
    stop_port "$STARTED_PORT"
    STARTED_PORT=""
  fi
}

stop_port() {
  local port="$1" pidf pid
  pidf="$STATE_DIR/$port.pid"
  if [[ ! -f "$pidf" ]]; then
    log "no instance recorded on port $port"
    return 0
  fi
  pid="$(cat "$pidf")"
  if is_our_java "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      is_our_java "$pid" || break
      sleep 0.1
    done
    if is_our_java "$pid"; then
      log "pid $pid did not exit on TERM; sending KILL"
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 1 20); do
        is_our_java "$pid" || break
        sleep 0.1
      done
    fi
    log "stopped DynamoDB Local pid $pid (port $port)"
  else
    log "instance on port $port (pid $pid) was not running"
  fi
  rm -f "$pidf" "$STATE_DIR/$port.log"
}

cmd_stop() {
  if (($# > 1)); then die "stop takes at most one PORT"; fi
  if (($# == 1)); then
    [[ "$1" =~ ^[0-9]+$ ]] || die "stop: '$1' is not a port"
    stop_port "$1"
    return 0
  fi
  local f any=0
  shopt -s nullglob
  for f in "$STATE_DIR"/*.pid; do
    any=1
    stop_port "$(basename "$f" .pid)"
  done
  shopt -u nullglob
  [[ $any == 1 ]] || log "no instances recorded in $STATE_DIR"
}

cmd_status() {
  local f port pid
  shopt -s nullglob
  for f in "$STATE_DIR"/*.pid; do
    port="$(basename "$f" .pid)"
    pid="$(cat "$f")"
    if is_our_java "$pid"; then
      printf 'http://127.0.0.1:%s pid=%s running\n' "$port" "$pid"
    else
      printf 'http://127.0.0.1:%s pid=%s dead\n' "$port" "$pid"
    fi
  done
  shopt -u nullglob
}

CHILD=""
on_signal() {
  # Forward to the command if it runs; otherwise (still starting) exit, which stops the JVM.
  local sig="$1" code="$2"
  if [[ -n "$CHILD" ]]; then
    kill -s "$sig" "$CHILD" 2>/dev/null || true
  else
    exit "$code"
  fi
}

cmd_run() {
  parse_cors "$@"
  ((${#REST[@]} > 0)) || die "run: no command given (usage: run [--cors ORIGINS] -- CMD ARGS...)"
  trap 'stop_started' EXIT
  trap 'on_signal INT 130' INT
  trap 'on_signal TERM 143' TERM
  trap 'on_signal HUP 129' HUP
  start_instance "$CORS"
  export DDB_LOCAL_ENDPOINT="http://127.0.0.1:$STARTED_PORT"
  export AWS_REGION="${AWS_REGION:-us-east-1}"
  export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-local}"
  export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-local}"
  log "running with DDB_LOCAL_ENDPOINT=$DDB_LOCAL_ENDPOINT: ${REST[*]}"
  # In the background (keeping our stdin) so that signals reach us while it runs; we forward
  # them. Background jobs of a non-interactive bash ignore SIGINT/SIGQUIT; `env
  # --default-signal` (coreutils >= 8.31) restores them so Ctrl-C / forwarded INT work.
  local launcher=()
  if env --default-signal=INT,QUIT true 2>/dev/null; then
    launcher=(env '--default-signal=INT,QUIT')
  fi
  "${launcher[@]}" "${REST[@]}" <&0 &
  CHILD=$!
  local rc
  while :; do
    rc=0
    wait "$CHILD" || rc=$?
    # wait returns > 128 when a trapped signal interrupted it: keep waiting while the child lives.
    if ((rc <= 128)) || ! kill -0 "$CHILD" 2>/dev/null; then
      break
    fi
  done
  CHILD=""
  exit "$rc"
}

main() {
  local sub="${1:-}"
  (($#)) && shift
  case "$sub" in
    fetch) cmd_fetch "$@"; ensure_java ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    run) cmd_run "$@" ;;
    -h|--help|help) usage ;;
    *) usage; exit 2 ;;
  esac
}

main "$@"
