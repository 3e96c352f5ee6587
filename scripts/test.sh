#!/usr/bin/env bash
# The whole test suite: installs what it needs, then runs pytest and the Node bridge's tests side by
# side (two processes on two cores: the suite's wall time is the longer of the two, not their sum;
# the Node output is printed after pytest's), then the `exclusive` tests alone (they time threads 1
# against 2 and need both cores). Tests marked `slow` are left out: scripts/test-slow.sh.
# pytest's exit code 5 (no tests collected) is a failure here, never a silent pass.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/bootstrap.sh bench ray browser || exit 1

node_log="$(mktemp)"
trap 'rm -f "$node_log"' EXIT
node_pid=""
if [ -f bmad_bridge/package.json ]; then
  (cd bmad_bridge && BMAD_DATA_PYTHON="$root/.venv/bin/python" npm test --silent) >"$node_log" 2>&1 &
  node_pid=$!
fi

.venv/bin/python -m pytest -m "not slow and not exclusive" "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "test.sh: pytest collected no tests; that is a failure." >&2
  rc=1
fi

node_rc=0
if [ -n "$node_pid" ]; then
  wait "$node_pid"
  node_rc=$?
  echo "---- Node tests (bmad_bridge: npm test) ----"
  cat "$node_log"
  [ $node_rc -eq 0 ] || echo "test.sh: the Node tests failed (exit $node_rc)." >&2
fi
[ $rc -eq 0 ] || exit $rc
[ $node_rc -eq 0 ] || exit $node_rc

.venv/bin/python -m pytest -m "exclusive and not slow" "$@"
rc=$?
if [ $rc -eq 5 ] && [ $# -gt 0 ]; then rc=0; fi  # a selection given on the command line may hold none
exit $rc
