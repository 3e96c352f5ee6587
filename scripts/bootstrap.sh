#!/usr/bin/env bash
# Installs what the project needs, reproducibly, into ./.venv and bmad_bridge/node_modules.
# Idempotent and cheap when nothing changed: a stamp records the lock files' hash.
# `bootstrap.sh bench` adds the bench extra (requirements-bench.lock: report charts, TPC-H data),
# which the test suite needs and the demo does not.
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

locks=(requirements.lock)
[ "${1:-}" = bench ] && locks+=(requirements-bench.lock)
stamp=.venv/.lock-sha256
want="$(cat "${locks[@]}" | sha256sum | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"  # no stamp yet on a fresh clone: set -e must not end the script here
# A stamp of the bench install also covers the plain one: the demo after the tests installs nothing.
bench_stamp=.venv/.lock-sha256-bench
if [ "$have" != "$want" ] && ! { [ ${#locks[@]} = 1 ] && [ -f "$bench_stamp" ] && [ "$(cat "$bench_stamp")" = "$(sha256sum requirements.lock | cut -d' ' -f1)" ]; }; then
  echo "bootstrap: installing Python dependencies from ${locks[*]}" >&2
  args=()
  for lock in "${locks[@]}"; do args+=(-r "$lock"); done
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes "${args[@]}"
  echo "$want" > "$stamp"
  if [ ${#locks[@]} = 2 ]; then sha256sum requirements.lock | cut -d' ' -f1 > "$bench_stamp"; else rm -f "$bench_stamp"; fi
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
