#!/usr/bin/env bash
# The long protocol fuzz run (docs/protocol.md, "Malformed input"). CI runs a short, seeded one
# (tests/test_fuzz_protocol.py); this one is for a developer, or a nightly job.
#
#   scripts/fuzz.sh [SECONDS] [CASES]
#
# 1. Coverage-guided, for SECONDS (default 600): atheris drives the sidecar's own reader and
#    dispatcher in-process (scripts/fuzz_atheris.py), with raw bytes and with structured requests.
# 2. Structure-aware at volume: CASES (default 20000) generated cases with a random seed against
#    one real `python -m sidecar` over pipes (python -m sidecar.fuzz); the seed is printed.
#
# atheris is not a dependency of the sidecar and never goes into .venv: this script makes its own
# venv (BMAD_FUZZ_VENV, default ~/.cache/bmad-data/fuzz-venv) with requirements.lock plus atheris.
# The corpus and any crash input live in BMAD_FUZZ_DIR (default ~/.cache/bmad-data/fuzz); replay a
# crash with: PYTHONPATH=. "$BMAD_FUZZ_VENV/bin/python" scripts/fuzz_atheris.py <crash-file>.
# Every crash found becomes a case in tests/test_protocol.py before it is fixed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-600}"
cases="${2:-20000}"
venv="${BMAD_FUZZ_VENV:-$HOME/.cache/bmad-data/fuzz-venv}"
work="${BMAD_FUZZ_DIR:-$HOME/.cache/bmad-data/fuzz}"

if ! "$venv/bin/python" -c "import atheris, duckdb, msgspec" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --require-hashes -r "$root/requirements.lock"
  "$venv/bin/pip" install --quiet atheris
fi
mkdir -p "$work/corpus"
cd "$root"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"

echo "fuzz.sh: coverage-guided for ${seconds}s (corpus $work/corpus)" >&2
"$venv/bin/python" scripts/fuzz_atheris.py "$work/corpus" \
  -max_total_time="$seconds" -max_len=8192 -timeout=120 -print_final_stats=1 \
  -dict="$root/scripts/fuzz.dict" -artifact_prefix="$work/"

echo "fuzz.sh: $cases structure-aware cases against a real sidecar" >&2
"$venv/bin/python" -m sidecar.fuzz --cases "$cases"
