"""Every benchmark that has a `--quick` run passes it: `python -m sidecar.bench.<x> --quick` exits 0
and prints its table. Slow (minutes each: the data is written first); `bash scripts/test-slow.sh`
runs them. The benchmarks are found by their source, so one that gains `--quick` is run here too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QUICK = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts)
    for path in (ROOT / "sidecar" / "bench").rglob("*.py")
    if '"--quick"' in path.read_text()
)


def test_the_quick_benchmarks_are_found() -> None:
    assert {"sidecar.bench.headroom", "sidecar.bench.h2o", "sidecar.bench.h2o_partitioned"} <= set(QUICK)


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory for all of them: the H2O benchmarks share the table they write once."""
    return tmp_path_factory.mktemp("bench")


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.parametrize("module", QUICK)
def test_the_quick_run_passes(module: str, bench_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", module, "--quick", "--dir", str(bench_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3500,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "|" in done.stdout, f"no table printed: {done.stdout[-1000:]}\n{done.stderr[-1000:]}"
