"""The H2O benchmark's data: the groupby table and its two join tables as Parquet, written once by a
guarded child process and cached (sidecar.bench.h2o runs the questions over them)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from sidecar.bench.headroom import GiB, generate
from sidecar.bench.suite.data import DIMENSIONS_SQL

__all__ = ["GEN_GUARD", "data_paths", "generate_child", "prepare"]

GEN_GUARD = 6 * GiB  # the generator's DuckDB runs at a 4GB limit


def data_paths(root: Path, rows: int) -> dict[str, Path]:
    return {"x": root / f"h2o_groupby_{rows}.parquet", "small": root / f"h2o_small_{rows}.parquet",
            "medium": root / f"h2o_medium_{rows}.parquet"}  # fmt: skip


def generate_child(root: Path, rows: int) -> None:
    """In a child process: the groupby table (headroom's generator), then the two join tables."""
    import duckdb

    paths = data_paths(root, rows)
    generate(root, rows)
    if paths["small"].exists() and paths["medium"].exists():
        return
    partial = {k: p.with_name(p.name + ".partial") for k, p in paths.items()}
    config = {"memory_limit": "4GB", "threads": os.cpu_count() or 2, "preserve_insertion_order": False,
              "temp_directory": str(root / "gen-spill")}  # fmt: skip
    with duckdb.connect(config=config) as con:
        con.execute(DIMENSIONS_SQL.format(x=paths["x"], small=partial["small"], medium=partial["medium"]))
    for key in ("small", "medium"):
        os.replace(partial[key], paths[key])


def prepare(root: Path, rows: int) -> dict[str, Path]:
    """Write the data once, in a child the parent samples and kills past GEN_GUARD."""
    import psutil

    paths = data_paths(root, rows)
    if all(p.exists() for p in paths.values()):
        return paths
    sys.stderr.write(f"writing {rows:,} rows to {root} (cached for later runs)\n")
    proc = subprocess.Popen([sys.executable, "-m", "sidecar.bench.h2o", "--generate-child", str(root),
                             "--rows", str(rows)], cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    ps = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            if ps.memory_info().rss > GEN_GUARD:
                proc.kill()
                raise SystemExit(f"the data generator went past {GEN_GUARD / GiB:.0f} GiB RSS and was killed")
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.1)
    if proc.returncode != 0:
        raise SystemExit(f"the data generator failed with exit code {proc.returncode}")
    return paths
