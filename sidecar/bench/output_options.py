"""What each Parquet output option costs: one ~1e7-row join written with every codec, by plain DuckDB.

    python -m sidecar.bench.output_options [--rows 10000000] [--threads 2] [--repeat 3] [--dir /tmp/bmad-out]
                                           [--brotli]

Issue 11: the sidecar wrote zstd where DuckDB's COPY defaults to snappy, and a user could not choose.
The join (`x` of `--rows` rows with a 1e5-row dimension, every column of both sides) runs in one
DuckDB at `--threads` threads with no memory limit below the machine's; each codec is written
`--repeat` times and the table shows the fastest wall time, the file's size and the time relative
to snappy (DuckDB's default, and the sidecar's default now). Brotli runs only with `--brotli`: it took 9.2 s
for a 2e5-row join that snappy wrote in 0.06 s, so at 1e7 rows it would take minutes. The options are the sidecar's own
(`sidecar.engine.outputs.copy_options`), so the figures are what `output.compression` costs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import get_args

import duckdb

from sidecar.engine.outputs import copy_options
from sidecar.jobs.types import OutputSpec, ParquetCompression

__all__ = ["JOIN", "main", "measure"]

JOIN = "SELECT x.*, y.* EXCLUDE (id2) FROM x JOIN y ON x.id2 = y.id2"
"""All columns of both sides, as db-benchmark's join questions write them."""


def prepare(con: duckdb.DuckDBPyConnection, rows: int) -> None:
    """`x`: `rows` rows of keys, integers, doubles and strings; `y`: 1e5 rows keyed by id2."""
    con.execute(
        "CREATE TABLE x AS SELECT i AS id1, (hash(i) % 100000)::INTEGER AS id2, 'id' || (i % 1000) AS id3, "
        f"(hash(i + 1) % 100)::INTEGER AS v1, (hash(i + 2) % 10000) / 100.0 AS v2 FROM range({rows}) t(i)"
    )
    con.execute(
        "CREATE TABLE y AS SELECT i::INTEGER AS id2, 'name' || i AS name, (hash(i) % 1000) / 10.0 AS v3 "
        "FROM range(100000) t(i)"
    )


def measure(con: duckdb.DuckDBPyConnection, directory: Path, spec: OutputSpec, repeat: int) -> tuple[float, int]:
    """The fastest of `repeat` writes of the join with `spec`'s options: (seconds, bytes)."""
    best, size = float("inf"), 0
    target = directory / "join.parquet"
    for _ in range(repeat):
        target.unlink(missing_ok=True)
        start = time.perf_counter()
        con.execute(f"COPY ({JOIN}) TO '{target}' ({copy_options(spec)})")
        best = min(best, time.perf_counter() - start)
        size = target.stat().st_size
    target.unlink(missing_ok=True)
    return best, size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--brotli", action="store_true", help="also measure brotli (very slow)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        directory = Path(scratch)
        con = duckdb.connect(str(directory / "data.duckdb"))
        con.execute(f"SET threads = {args.threads}")
        prepare(con, args.rows)
        cases = [("snappy (default)", OutputSpec("x")), *[
            (codec, OutputSpec("x", compression=codec)) for codec in get_args(ParquetCompression)
            if codec != "snappy" and (args.brotli or codec != "brotli")
        ], ("zstd level 1", OutputSpec("x", compression="zstd", compression_level=1)),
            ("zstd level 9", OutputSpec("x", compression="zstd", compression_level=9)),
            ("snappy, 1M-row groups", OutputSpec("x", row_group_size=1_000_000))]
        results = [(name, *measure(con, directory, spec, args.repeat)) for name, spec in cases]
    base = results[0][1]
    lines = [
        f"{args.rows:,}-row join written to Parquet, DuckDB {duckdb.__version__}, {args.threads} threads, "
        f"fastest of {args.repeat}",
        "",
        "| output options | seconds | x snappy | MiB |",
        "| --- | ---: | ---: | ---: |",
        *[f"| {name} | {secs:.2f} | {secs / base:.2f} | {size / 1024**2:.0f} |" for name, secs, size in results],
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
