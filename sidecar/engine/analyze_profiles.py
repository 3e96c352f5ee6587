"""How `dataset.analyze` gets its figures: the cheapest strategy that fits in memory.

- a full scan: one streaming pass, exact but for distinct counts (HyperLogLog);
- Parquet past the sample budget: the footers' exact figures, row-group slices for the rest;
- CSV/JSON past SMALL_TEXT_BYTES: the heads of up to 16 files, rows from the bytes per line.

`sidecar.engine.analyze` resolves the dataset, reads its schema and hands the columns here.
"""

from __future__ import annotations

import gzip
import logging
import os
from typing import IO, Sequence

import duckdb
import msgspec

from sidecar.engine import dataset_stats as stats
from sidecar.engine.dataset_reader import Format, Reader
from sidecar.engine.errors import map_duckdb_error
from sidecar.errors import OutOfMemory
from sidecar.units import parse_size

log = logging.getLogger(__name__)

__all__ = ["ColumnAnalysis", "ProfileFigures", "SMALL_TEXT_BYTES", "profile"]

JsonScalar = int | float | str | bool | None

SMALL_TEXT_BYTES = 512 * 1024**2
"""CSV/JSON datasets up to this size are scanned in full: DuckDB parses ~400 MB/s on two cores, and
a full scan of 276 MB (0.7 s) beat sampling its head (0.9 s), which pays for per-column GROUP BYs."""
_HEAD_BYTES = 8 * 1024**2
_MAX_SAMPLED_FILES = 16


class ColumnAnalysis(msgspec.Struct, frozen=True, kw_only=True):
    """One column's profile. Each `*_exact` flag says whether its figures came from every row
    (or a footer that vouches for every row), or from a sample."""

    name: str
    type: str
    null_count: int | None
    null_count_exact: bool
    approx_distinct: int | None
    """Always an estimate, even with `exact=True`."""
    min: JsonScalar
    max: JsonScalar
    min_max_exact: bool
    mean: float | None
    std: float | None
    mean_std_exact: bool


ProfileFigures = tuple[int, bool, list[ColumnAnalysis], int | None, list[str]]
"""(row count, row count exact, columns, sampled rows or None, notes)."""
_NAN_NOTE = "min/max of FLOAT/DOUBLE columns leave NaN out, as Parquet statistics do"


def profile(
    con: duckdb.DuckDBPyConnection,
    reader: Reader,
    columns: list[tuple[str, str]],
    exact: bool,
    budget: int,
    size: int,
    footer_rows: int,
) -> ProfileFigures:
    """The cheapest strategy that fits in memory. A sample is materialized and grouped once per
    column, so it needs memory for all its rows, where a full scan streams with one sketch per
    column: a Parquet sample that would not fit in half of `memory_limit` is not tried, and a
    sample that runs out of memory anyway falls back to the full scan. Only a full scan out of
    memory is an error, with a hint that fits analyze."""
    try:
        if reader.fmt == "parquet" and not exact and footer_rows > budget:
            need = _parquet_sample_bytes(con, reader.files, footer_rows, budget)
            limit = _memory_limit(con)
            if limit is None or need <= limit // 2:
                return _parquet_estimated(con, reader, columns, footer_rows, budget)
            why = (
                f"a sample of {budget} rows (~{need // 2**20} MiB held at once) would not fit in half of "
                f"memory_limit ({limit // 2**20} MiB), and a scan streams"
            )
            return _scan_within_memory(con, reader, columns, why)
        if reader.fmt != "parquet" and not exact and size > SMALL_TEXT_BYTES:
            return _text_estimated(con, reader, columns, budget)
    except duckdb.OutOfMemoryException:
        log.info("analyze: the sample ran out of memory; scanning every row instead", exc_info=True)
        return _scan_within_memory(con, reader, columns, "the sample ran out of memory, and a scan streams")
    return _scan_within_memory(con, reader, columns, "exact=true" if exact else "the dataset is small enough")


_SAMPLE_OVERHEAD = 3
"""A materialized sample's bytes per uncompressed Parquet byte: the rows, plus one column's
GROUP BY hash table at a time (measured: 3M rows of five columns, 268 MB uncompressed, ran out of
memory at 40 MB and spilled for 10 s at 150 MB, where the 3 s full scan fit in both)."""


def _parquet_sample_bytes(
    con: duckdb.DuckDBPyConnection, files: Sequence[str], rows: int, budget: int
) -> int:
    total_sql = "SELECT sum(total_uncompressed_size) FROM parquet_metadata(?)"
    row = con.execute(total_sql, [list(files)]).fetchone()
    total = int(row[0] or 0) if row else 0
    return int(total / max(rows, 1) * min(budget, rows) * _SAMPLE_OVERHEAD)


def _memory_limit(con: duckdb.DuckDBPyConnection) -> int | None:
    row = con.execute("SELECT value FROM duckdb_settings() WHERE name = 'memory_limit'").fetchone()
    try:
        return parse_size(str(row[0])) if row else None
    except ValueError:
        return None


def _scan_within_memory(
    con: duckdb.DuckDBPyConnection, reader: Reader, columns: list[tuple[str, str]], why: str
) -> ProfileFigures:
    try:
        return _full_scan(con, reader, columns, why)
    except duckdb.OutOfMemoryException as exc:
        more = f" and {len(reader.files) - 1} more file(s)" if len(reader.files) > 1 else ""
        raise OutOfMemory(
            f"dataset.analyze ran out of memory scanning '{reader.files[0]}'{more}: "
            + map_duckdb_error(exc).message.splitlines()[0],
            hint=(
                "Analyze holds one distinct-count sketch and a min/max per column while it scans. Raise "
                "memory_limit in the request's settings, or analyze fewer files (a narrower glob) at a time."
            ),
            details={"files": len(reader.files), "columns": len(columns)},
        ) from exc


def _full_scan(
    con: duckdb.DuckDBPyConnection,
    reader: Reader,
    columns: list[tuple[str, str]],
    why: str,
) -> ProfileFigures:
    """Everything from one pass over every row; only distinct counts stay approximate."""
    row_count, figures = stats.scan_figures(con, reader.sql(), columns)
    notes = [
        f"full scan of every row ({why}): row count, null counts, min/max, mean and std are exact",
        "approx_distinct is an estimate (HyperLogLog approx_count_distinct, typically within a few %)",
    ]
    if any(t in ("FLOAT", "DOUBLE") for _, t in columns):
        notes.append(_NAN_NOTE)
    out = [
        ColumnAnalysis(
            name=name,
            type=duck_type,
            null_count=None if f.non_null is None else row_count - f.non_null,
            null_count_exact=True,
            approx_distinct=f.approx_distinct,
            min=f.min,
            max=f.max,
            min_max_exact=True,
            mean=f.mean,
            std=f.std,
            mean_std_exact=True,
        )  # fmt: skip
        for (name, duck_type), f in zip(columns, figures)
    ]
    return row_count, True, out, None, notes


def _from_sample(
    columns: list[tuple[str, str]],
    row_count: int,
    n: int,
    figures: list[stats.ColumnFigures],
    distincts: list[stats.DistinctSample],
    footers: dict[str, stats.FooterFigures],
) -> list[ColumnAnalysis]:
    """Columns from sample figures, taking a footer's exact figure wherever it has one."""
    out = []
    for (name, duck_type), f, freq in zip(columns, figures, distincts):
        foot = footers.get(name)
        nulls_exact = foot is not None and foot.null_count is not None
        if foot is not None and foot.null_count is not None:
            null_count = foot.null_count
        else:
            null_count = round((n - (f.non_null or 0)) / n * row_count) if n else 0
        minmax_exact = foot is not None and foot.min_max_exact
        out.append(
            ColumnAnalysis(
                name=name,
                type=duck_type,
                null_count=null_count,
                null_count_exact=nulls_exact,
                approx_distinct=stats.estimate_distinct(freq, max(row_count - null_count, freq.n)),
                min=foot.min if foot is not None and minmax_exact else f.min,
                max=foot.max if foot is not None and minmax_exact else f.max,
                min_max_exact=minmax_exact,
                mean=f.mean,
                std=f.std,
                mean_std_exact=False,
            )  # fmt: skip
        )
    return out


def _parquet_estimated(
    con: duckdb.DuckDBPyConnection,
    reader: Reader,
    columns: list[tuple[str, str]],
    row_count: int,
    budget: int,
) -> ProfileFigures:
    """Footers for the exact figures, row-group slices for the rest."""
    files = reader.files
    footers = stats.footer_figures(con, files, row_count, columns)
    slices = stats.plan_row_group_sample(con, files, budget)
    if len(files) == 1:
        source = reader.sql(extra=", file_row_number = true")
        where = " OR ".join(f"file_row_number BETWEEN {s.first_row} AND {s.last_row}" for s in slices)
        hidden = "file_row_number"
    else:
        source = reader.sql(extra=", file_row_number = true, filename = '__analyze_file'")
        where = " OR ".join(
            f"(__analyze_file = {stats.quote_str(s.file)} AND file_row_number BETWEEN {s.first_row} AND {s.last_row})"
            for s in slices
        )
        hidden = "file_row_number, __analyze_file"
    sample_sql = f"SELECT * EXCLUDE ({hidden}) FROM {source} WHERE {where}"
    n, figures, distincts = stats.sample_figures(con, sample_sql, columns)
    out = _from_sample(columns, row_count, n, figures, distincts, footers)
    notes = ["row count from Parquet footers (exact)"]
    from_footer = [c.name for c in out if c.null_count_exact and c.min_max_exact]
    if from_footer:
        notes.append(f"null counts and min/max from Parquet footers (exact) for {len(from_footer)} column(s)")
    guessed = [c.name for c in out if not (c.null_count_exact and c.min_max_exact)]
    if guessed:
        notes.append(
            "footers carry no usable statistics (nested type, missing, or truncated) for: "
            + ", ".join(guessed) + "; their null counts or min/max are estimated from the sample"
        )  # fmt: skip
    spread = len({s.file for s in slices})
    notes.append(
        f"mean, std and approx_distinct from a sample of {n} rows: {len(slices)} row-group slices "
        f"spread evenly over {spread} of {len(files)} file(s)"
    )
    notes.append("approx_distinct is an estimate (Haas-Stokes Duj1 from the sample's value frequencies)")
    if any(t in ("FLOAT", "DOUBLE") for _, t in columns):
        notes.append(_NAN_NOTE)
    return row_count, True, out, n, notes


def _open_text(file: str) -> tuple[IO[bytes], IO[bytes]] | None:
    """The file decompressed, and the raw file (whose position tells the compressed bytes read).
    None for zstd, which the standard library cannot decompress before Python 3.14."""
    raw = open(file, "rb")
    lowered = file.lower()
    if lowered.endswith(".zst"):
        raw.close()
        return None
    if lowered.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw), raw
    return raw, raw


def _estimate_rows(file: str, fmt: Format) -> int | None:
    """Rows in a text file from the line density of its first 8 MiB; None when lines do not map
    to rows (a JSON array) or the file cannot be decompressed here."""
    opened = _open_text(file)
    if opened is None:
        return None
    stream, raw = opened
    with raw, stream:
        head = stream.read(_HEAD_BYTES)
        consumed = raw.tell()
    if fmt == "json" and head.lstrip()[:1] == b"[":
        return None
    lines = head.count(b"\n") + (1 if head and not head.endswith(b"\n") else 0)
    if consumed == 0 or lines == 0:
        return 0
    header = 1 if fmt == "csv" else 0
    return max(0, round(lines * os.path.getsize(file) / consumed) - header)


def _text_estimated(
    con: duckdb.DuckDBPyConnection, reader: Reader, columns: list[tuple[str, str]], budget: int
) -> ProfileFigures:
    """The head of up to 16 files spread over the list; row count from bytes per line."""
    fmt, files = reader.fmt, reader.files
    notes: list[str] = []
    row_count, estimated, counted = 0, False, []
    for file in files:
        guess = _estimate_rows(file, fmt)
        if guess is None:
            row = con.execute(f"SELECT count(*) FROM {reader.sql([file])}").fetchone()
            row_count += int(row[0]) if row else 0
            counted.append(file)
        else:
            row_count += guess
            estimated = True
    k = min(len(files), _MAX_SAMPLED_FILES)
    picked = [files[int((i + 0.5) * len(files) / k)] for i in range(k)]
    per_file = max(1, -(-budget // k))
    # Every head is read through the same multi-file reader so that all share one schema;
    # the filename filter prunes the other files.
    source = reader.sql(extra=", filename = '__analyze_file'") if len(files) > 1 else reader.sql()
    heads = [
        f"(SELECT * EXCLUDE (__analyze_file) FROM {source} WHERE __analyze_file = {stats.quote_str(f)} LIMIT {per_file})"
        if len(files) > 1 else f"(SELECT * FROM {source} LIMIT {per_file})"
        for f in picked
    ]  # fmt: skip
    n, figures, distincts = stats.sample_figures(con, " UNION ALL ".join(heads), columns)
    complete = len(files) == 1 and n < per_file
    if complete:  # the head was the whole file: every figure is exact after all
        row_count, estimated = n, False
    out = _from_sample(columns, row_count, n, figures, distincts, {})
    if complete:
        out = [
            msgspec.structs.replace(c, null_count_exact=True, min_max_exact=True, mean_std_exact=True)
            for c in out
        ]
        notes.append(
            f"the whole file ({n} rows) fit in the sample: every figure but approx_distinct is exact"
        )
        return row_count, True, out, None, notes
    if estimated:
        notes.append("row count estimated from the line density of the first 8 MiB of each file")
    if counted:
        notes.append(
            f"rows counted by a full scan (no line-based estimate possible) in: {', '.join(counted)}"
        )
    notes.append(
        f"null counts, min/max, mean, std and approx_distinct from the first rows of {k} of {len(files)} "
        f"file(s), {n} rows in all: biased if the files are ordered; pass exact=true for exact figures"
    )
    notes.append("approx_distinct is an estimate (Haas-Stokes Duj1 from the sample's value frequencies)")
    return row_count, not estimated, out, n, notes
