#!/usr/bin/env bash
# The thorough run: every test, including those scripts/test.sh leaves out (`@pytest.mark.slow`: stress
# runs, 1e7-row splits, every benchmark's --quick run), with the heaviest property tests drawing their full
# number of examples (BMAD_DATA_TEST_THOROUGH=1, tests/conftest.py `examples`). About an hour on 2 cores.
# Installs what it needs first, as test.sh does. Extra arguments go to pytest (e.g. `-m slow` for the slow ones only).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/bootstrap.sh bench ray browser || exit 1
BMAD_DATA_TEST_THOROUGH=1 .venv/bin/python -m pytest -m "" --timeout 1200 "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "test-slow.sh: pytest collected no tests; that is a failure." >&2
  exit 1
fi
exit $rc
