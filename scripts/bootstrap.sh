#!/usr/bin/env bash
# Installs what the project needs, reproducibly, into ./.venv and bmad_bridge/node_modules.
# Idempotent and cheap when nothing changed: a stamp records the lock file's hash.
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

stamp=.venv/.lock-sha256
want="$(sha256sum requirements.lock | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "bootstrap: installing Python dependencies from requirements.lock" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
  echo "$want" > "$stamp"
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
