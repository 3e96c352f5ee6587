#!/usr/bin/env bash
# Installs what the project needs, reproducibly, into ./.venv and bmad_bridge/node_modules.
# Idempotent and cheap when nothing changed: a stamp records the lock files' hash.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

python="${BMAD_DATA_BOOTSTRAP_PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "bootstrap: Python >= 3.11 is required ($python is $("$python" --version 2>&1))." >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv" >&2
  "$python" -m venv .venv
fi

# Each extra named on the command line adds its lock: `bench` (report charts, TPC-H data) and `ray` (the
# distributed executor), which the test suite needs and the demo does not. `browser` installs Debian's
# Chromium for the dashboard's browser test (bmad_bridge/tests/monitor-browser.test.js).
locks=(requirements.lock)
browser=0
for extra in "$@"; do
  if [ "$extra" = browser ]; then browser=1; continue; fi  # not a Python extra: Chromium, below
  [ -f "requirements-$extra.lock" ] || { echo "bootstrap: no lock file for extra '$extra'" >&2; exit 1; }
  locks+=("requirements-$extra.lock")
done
# One stamp per lock: the demo after the tests installs nothing, the tests after the demo only the extras.
stale=0
for lock in "${locks[@]}"; do
  want="$(sha256sum "$lock" | cut -d' ' -f1)"
  have="$(cat ".venv/.stamp-$lock" 2>/dev/null || true)"  # no stamp on a fresh clone: set -e must not end the script
  [ "$want" = "$have" ] || stale=1
done
if [ $stale = 1 ]; then
  echo "bootstrap: installing Python dependencies from ${locks[*]}" >&2
  args=()
  for lock in "${locks[@]}"; do args+=(-r "$lock"); done
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes "${args[@]}"
  for lock in "${locks[@]}"; do sha256sum "$lock" | cut -d' ' -f1 > ".venv/.stamp-$lock"; done
fi

if [ -f bmad_bridge/package-lock.json ] && command -v npm >/dev/null 2>&1; then
  nstamp=bmad_bridge/node_modules/.lock-sha256
  nwant="$(sha256sum bmad_bridge/package-lock.json | cut -d' ' -f1)"
  if [ "$(cat "$nstamp" 2>/dev/null)" != "$nwant" ]; then
    echo "bootstrap: installing Node dependencies from bmad_bridge/package-lock.json" >&2
    (cd bmad_bridge && npm ci --no-audit --no-fund --loglevel=error >&2)
    echo "$nwant" > "$nstamp"
  fi
fi

# Chromium from the system's packages, never a downloaded browser; the test fails saying what to run if this could not.
chromium="${BMAD_DATA_CHROMIUM:-/usr/bin/chromium}"
if [ $browser = 1 ] && [ ! -x "$chromium" ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: no $chromium and no apt-get: install Chromium and set BMAD_DATA_CHROMIUM to it" >&2
  else
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo -n"
    echo "bootstrap: installing chromium (apt-get) for the dashboard's browser test" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -qq chromium >/dev/null 2>&1 \
      || { $sudo apt-get update -qq >/dev/null 2>&1 && $sudo apt-get install -y -qq chromium >/dev/null 2>&1; } \
      || echo "bootstrap: could not install chromium; run: sudo apt-get install -y chromium" >&2
  fi
fi
