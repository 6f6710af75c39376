#!/usr/bin/env bash
# Create the Python venv that runs scripts/sigv4_reference.py (botocore's SigV4 signer, the
# independent reference that tests/sigv4_reference.rs checks our signatures against).
#
#   scripts/sigv4-setup.sh           # install if needed; prints the venv's python path
#   scripts/sigv4-setup.sh --force   # recreate the venv
#
# The venv lives in target/pyenv (override with DDB_LOCK_PYENV). Idempotent: when the venv
# already holds exactly the pinned packages (a stamp file records them) it only prints the
# path. Logs go to stderr; stdout is the python path alone, so callers can do
#   export DDB_LOCK_PYTHON="$(bash scripts/sigv4-setup.sh)"
# Needs python3 (>= 3.9) with the venv module and access to PyPI on the first run.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DDB_LOCK_PYENV:-$REPO_ROOT/target/pyenv}"
PY="$VENV/bin/python"
# Pinned: botocore and its dependencies (pure Python), so the reference never moves under us.
PACKAGES=(
  botocore==1.44.8
  jmespath==1.1.0
  python-dateutil==2.9.0.post0
  six==1.17.0
  urllib3==2.8.0
)

log() { printf '[sigv4-setup] %s\n' "$*" >&2; }
die() { printf '[sigv4-setup] error: %s\n' "$*" >&2; exit 1; }

force=0
case "${1:-}" in
  --force) force=1 ;;
  "") ;;
  *) die "unknown argument '$1' (usage: $0 [--force])" ;;
esac

PYTHON3="${PYTHON3:-python3}"
command -v "$PYTHON3" >/dev/null || die "$PYTHON3 is required to build the SigV4 reference venv"

mkdir -p "$(dirname "$VENV")"
# Several test processes may ask at once: one installs, the others wait for it.
exec 9>"$VENV.lock"
if command -v flock >/dev/null; then
  flock 9
fi

stamp="$VENV/.ddb-lock-sigv4.stamp"
want="$(printf '%s\n' "${PACKAGES[@]}" "python $("$PYTHON3" -c 'import sys; print(sys.version.split()[0])')")"
if [[ $force == 0 && -x "$PY" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  printf '%s\n' "$PY"
  exit 0
fi

t0=$(date +%s%3N)
log "creating $VENV with ${PACKAGES[0]} ..."
rm -rf "$VENV"
"$PYTHON3" -m venv "$VENV" >&2 || die "'$PYTHON3 -m venv' failed (on Debian: apt-get install python3-venv)"
"$PY" -m pip install --quiet --disable-pip-version-check --no-input "${PACKAGES[@]}" >&2 \
  || die "pip install ${PACKAGES[*]} failed"
# Smoke check: the pinned botocore imports and has the signer the reference uses.
"$PY" -c '
import sys, botocore, botocore.auth
want = sys.argv[1].split("==")[1]
assert botocore.__version__ == want, (botocore.__version__, want)
botocore.auth.SigV4Auth
' "${PACKAGES[0]}" >&2 || die "botocore does not import in $VENV"
printf '%s\n' "$want" >"$stamp"
log "installed in $(($(date +%s%3N) - t0)) ms"
printf '%s\n' "$PY"
