"""The README's first command: the demo runs end to end against a real sidecar."""

from __future__ import annotations

import os
import subprocess
import sys

from sidecar.client import REPO_ROOT


def test_the_demo_runs_end_to_end(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BMAD_DATA_")}
    env.update(PYTHONPATH=str(REPO_ROOT), BMAD_DATA_STATE_DIR=str(tmp_path / "state"))
    done = subprocess.run(
        [sys.executable, "-m", "sidecar.demo", "--rows", "20000", "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "wrote 20,000 rows" in out
    assert "parquet: 20,000 rows (exact)" in out
    for region in ("north", "south", "east", "west", "central"):
        assert region in out
    assert "refused: ACCESS_DENIED" in out
    assert "shut down cleanly (exit 0)" in out
    assert (tmp_path / "demo" / "sales.parquet").stat().st_size > 0
