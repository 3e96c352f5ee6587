"""Benchmark data: written once per (dataset, size, seed), deterministically, and cached.

Datasets:
- `h2o`: db-benchmark's groupby table (K=100) plus two join tables, as Parquet, by DuckDB SQL;
- `load`: the same groupby table as CSV and as NDJSON (the inputs of the load questions);
- `tpch`: TPC-H's eight tables as Parquet, by `tpchgen-cli` (the optional `bench` extra).

A size is the input's size in bytes as CSV: an H2O row is ~50 bytes of CSV, so 1 MB is 20,000
rows and 1 GB 20 million; TPC-H's scale factor is size / 1 GB (SF 1 is ~1 GB of CSV). Files
are written by a child process to a `.partial` directory that is renamed when complete, so a
killed generator never leaves a cache that looks done. `cleanup {aggressive: true}` removes it all.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sidecar.errors import InputError

__all__ = [
    "BYTES_PER_ROW",
    "DATASETS",
    "DIMENSIONS_SQL",
    "Dataset",
    "cache_root",
    "groupby_sql",
    "prepare",
    "remove_cache",
    "rows_for",
]

BYTES_PER_ROW = 50
"""CSV bytes of one H2O groupby row (measured: `test_bench_data.py::test_size_is_csv_bytes`)."""
DATASETS = ("h2o", "load", "tpch")
SEED_STRIDE = 1 << 40
"""Seed s draws row r from hash((r + s * 2^40) * 16 + column): seed 0 is the table headroom.py has always used."""

# H2O db-benchmark groupby data (K=100): id1-id3 strings, id4-id6 integers, v1-v3 measures.
# hash() keeps it deterministic; each column has its own salt, the seed shifts the rows drawn.
_GROUPBY = """
COPY (
    SELECT
        printf('id%03d', 1 + hash(r * 16 + 1) % 100) AS id1,
        printf('id%03d', 1 + hash(r * 16 + 2) % 100) AS id2,
        printf('id%010d', 1 + hash(r * 16 + 3) % {groups}) AS id3,
        (1 + hash(r * 16 + 4) % 100)::INTEGER AS id4,
        (1 + hash(r * 16 + 5) % 100)::INTEGER AS id5,
        (1 + hash(r * 16 + 6) % {groups})::INTEGER AS id6,
        (1 + hash(r * 16 + 7) % 5)::INTEGER AS v1,
        (1 + hash(r * 16 + 8) % 15)::INTEGER AS v2,
        round((hash(r * 16 + 9) % 100000000) / 1000000.0, 6)::DOUBLE AS v3
    FROM (SELECT range + {offset} AS r FROM range({rows}))
) TO '{target}' (FORMAT parquet)
"""

DIMENSIONS_SQL = """
COPY (SELECT id1, avg(v2) AS s1 FROM read_parquet('{x}') GROUP BY id1) TO '{small}' (FORMAT parquet);
COPY (SELECT id3, any_value(id6) AS id6m, min(v3) AS m1 FROM read_parquet('{x}') GROUP BY id3) TO '{medium}' (FORMAT parquet);
"""
"""The two join tables of h2o.py and of the `h2o` dataset: `small` (100 rows by id1), `medium` (one row per id3)."""

_LOAD = """
COPY (SELECT * FROM read_parquet('{x}')) TO '{csv}' (FORMAT csv, HEADER true);
COPY (SELECT * FROM read_parquet('{x}')) TO '{ndjson}' (FORMAT json);
"""

FILES = {
    "h2o": {"x": "x.parquet", "small": "small.parquet", "medium": "medium.parquet"},
    "load": {"csv": "x.csv", "ndjson": "x.ndjson"},
}
TPCH_TABLES = ("customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier")


def rows_for(size_bytes: int) -> int:
    """H2O rows whose CSV is about `size_bytes`.

    >>> rows_for(1_000_000), rows_for(1_000_000_000)
    (20000, 20000000)
    """
    return max(100, size_bytes // BYTES_PER_ROW)


def groupby_sql(rows: int, target: str | Path, seed: int = 0) -> str:
    """The COPY statement that writes the H2O groupby table of `rows` rows to `target` (Parquet)."""
    return _GROUPBY.format(rows=rows, groups=max(1, rows // 100), target=target, offset=seed * SEED_STRIDE)


class Dataset:
    """Where one (dataset, size, seed) lives; `files` maps a name (`x`, `csv`, `lineitem`, ...) to a path."""

    def __init__(self, root: Path, name: str, size_bytes: int, seed: int) -> None:
        self.name, self.size_bytes, self.seed = name, size_bytes, seed
        self.directory = root / name / f"{size_bytes}-seed{seed}"

    @property
    def files(self) -> dict[str, Path]:
        if self.name == "tpch":
            return {t: self.directory / f"{t}.parquet" for t in TPCH_TABLES}
        return {k: self.directory / v for k, v in FILES[self.name].items()}

    @property
    def ready(self) -> bool:
        return (self.directory / "done").exists()

    @property
    def input_bytes(self) -> int:
        """Bytes of the files the questions read (after `prepare`)."""
        return sum(p.stat().st_size for p in self.files.values() if p.exists())


def cache_root(state_directory: str | Path) -> Path:
    return Path(state_directory) / "bench" / "data"


def remove_cache(state_directory: str | Path) -> tuple[int, int]:
    """Remove every cached dataset: (bytes freed, files removed)."""
    root = cache_root(state_directory)
    files = [f for f in root.rglob("*") if f.is_file()] if root.is_dir() else []
    freed = sum(f.stat().st_size for f in files)
    shutil.rmtree(root, ignore_errors=True)
    return freed, len(files)


def tpchgen_command() -> str:
    """The `tpchgen-cli` executable (beside this Python first), or INPUT_ERROR saying how to install it."""
    beside = Path(sys.executable).with_name("tpchgen-cli")
    found = str(beside) if beside.exists() else shutil.which("tpchgen-cli")
    if found is None:
        raise InputError(
            "TPC-H data needs `tpchgen-cli`, which is not installed",
            hint="Install the bench extra: pip install 'bmad-data-sidecar[bench]' (or pip install tpchgen-cli).",
            details={"missing_extra": "bench", "package": "tpchgen-cli"},
        )
    return found


def _write(dataset: Dataset, partial: Path) -> None:
    """In the child: write the files of `dataset` into `partial`."""
    import duckdb

    config: dict[str, str | bool | int | float | list[str]] = {"memory_limit": "2GB", "threads": 2, "preserve_insertion_order": False,
              "temp_directory": str(partial / "spill")}  # fmt: skip
    rows = rows_for(dataset.size_bytes)
    if dataset.name == "tpch":
        sf = dataset.size_bytes / 1e9
        subprocess.run([tpchgen_command(), "parquet", "--scale-factor", f"{sf:g}",
                        "--output-dir", str(partial)], check=True, capture_output=True)  # fmt: skip
        return
    with duckdb.connect(config=config) as con:
        x = partial / "x.parquet"
        con.execute(groupby_sql(rows, x, dataset.seed))
        if dataset.name == "h2o":
            con.execute(
                DIMENSIONS_SQL.format(x=x, small=partial / "small.parquet", medium=partial / "medium.parquet")
            )
        else:
            con.execute(_LOAD.format(x=x, csv=partial / "x.csv", ndjson=partial / "x.ndjson"))
            x.unlink()
    shutil.rmtree(partial / "spill", ignore_errors=True)


def prepare(dataset: Dataset, cancelled: Callable[[], bool] = lambda: False) -> Dataset:
    """Write `dataset` once, in a child process; a cached one is returned at once.

    The child is killed when `cancelled()` turns true; its `.partial` directory is removed.
    """
    if dataset.ready:
        return dataset
    if dataset.name == "tpch":
        tpchgen_command()  # the clear error before any process starts
    partial = dataset.directory.with_name(dataset.directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    spec = {
        "name": dataset.name,
        "size_bytes": dataset.size_bytes,
        "seed": dataset.seed,
        "partial": str(partial),
    }
    proc = subprocess.Popen([sys.executable, "-m", "sidecar.bench.suite.data", json.dumps(spec)],
                            stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parents[3])  # fmt: skip
    while proc.poll() is None:
        if cancelled():
            proc.kill()
            proc.communicate()
            shutil.rmtree(partial, ignore_errors=True)
            return dataset
        time.sleep(0.05)
    err = proc.communicate()[1].decode("utf-8", "replace")
    if proc.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise InputError(
            f"writing the benchmark data {dataset.name} {dataset.size_bytes} B failed (exit {proc.returncode})",
            hint="Check free disk space in the state directory; the generator's last words are in details.",
            details={"stderr_tail": err[-1000:]},
        )
    (partial / "done").write_text(json.dumps(spec))
    shutil.rmtree(dataset.directory, ignore_errors=True)
    os.replace(partial, dataset.directory)
    return dataset


if __name__ == "__main__":
    _spec = json.loads(sys.argv[1])
    _write(Dataset(Path("."), _spec["name"], _spec["size_bytes"], _spec["seed"]), Path(_spec["partial"]))
