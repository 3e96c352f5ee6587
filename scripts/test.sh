#!/usr/bin/env bash
# The whole test suite: installs what it needs, then runs pytest and the Node bridge's tests.
# pytest's exit code 5 (no tests collected) is a failure here, never a silent pass.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/bootstrap.sh bench ray browser || exit 1

.venv/bin/python -m pytest "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "test.sh: pytest collected no tests; that is a failure." >&2
  exit 1
fi
[ $rc -eq 0 ] || exit $rc

if [ -f bmad_bridge/package.json ]; then
  (cd bmad_bridge && BMAD_DATA_PYTHON="$root/.venv/bin/python" npm test --silent)
  rc=$?
  [ $rc -eq 0 ] || exit $rc
fi
