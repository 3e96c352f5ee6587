#!/usr/bin/env bash
# The main job on an embedded default: installs what it needs, then starts a real sidecar over
# stdio, generates sample data with DuckDB, analyzes it and queries it (see sidecar/demo.py).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/bootstrap.sh
exec env PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" .venv/bin/python -m sidecar.demo "$@"
