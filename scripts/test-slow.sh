#!/usr/bin/env bash
# The long-running tests that scripts/test.sh leaves out (`@pytest.mark.slow`): stress runs, 1e7-row
# splits, every benchmark's --quick run. Installs what it needs first, as test.sh does.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/bootstrap.sh bench ray || exit 1
.venv/bin/python -m pytest -m slow --timeout 1200 "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "test-slow.sh: pytest collected no slow tests; that is a failure." >&2
  exit 1
fi
exit $rc
