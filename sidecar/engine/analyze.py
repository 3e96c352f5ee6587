"""`dataset.analyze`: a profile of a file, glob or directory in interactive time (< 3 s).

A full `SUMMARIZE` of a 1 GB Parquet file takes ~35 s on two cores, so by default the cheap,
exact facts come from where they are already written down and only the rest is sampled:

- Parquet: row count, null counts and min/max from the footers (exact, ~0.05 s); mean, std
  and distinct counts from evenly spread row-group slices (estimated).
- CSV/JSON up to 512 MiB: one full scan (exact). Larger: the head of each file is sampled and
  the row count estimated from the bytes per line.
- `exact=True`: one full scan for everything, however long it takes.

Distinct counts are always estimates (HyperLogLog over a scan, Haas-Stokes over a sample).
DuckDB errors are left to the engine's mapping boundary, except read failures of the named
files, which are the user's input problem and become `InputError` naming the file.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import time
from typing import IO, Iterator, Literal, NoReturn, Sequence

import duckdb
import msgspec

from sidecar.engine import dataset_stats as stats
from sidecar.engine.dataset_reader import (
    CsvDialect,
    CsvOptions,
    Finding,
    Reader,
    check_csv_options,
    csv_findings,
    schema_findings,
    sniff_csv,
)
from sidecar.engine.errors import map_duckdb_error
from sidecar.errors import InputError, InvalidParams, OutOfMemory
from sidecar.units import parse_size

log = logging.getLogger(__name__)

__all__ = [
    "ColumnAnalysis",
    "CsvOptions",
    "DatasetAnalysis",
    "analyze_dataset",
    "resolve_dataset",
    "DEFAULT_SAMPLE_ROWS",
]

Format = Literal["parquet", "csv", "json"]
JsonScalar = int | float | str | bool | None

DEFAULT_SAMPLE_ROWS = 1_000_000
"""Rows behind the estimated figures: ~0.4 s of work on two cores for ten columns (see
docs/performance/dataset-analyze.md); a standard error of ~0.1% of a std for a mean."""
SMALL_TEXT_BYTES = 512 * 1024**2
"""CSV/JSON datasets up to this size are scanned in full: DuckDB parses ~400 MB/s on two cores, and
a full scan of 276 MB (0.7 s) beat sampling its head (0.9 s), which pays for per-column GROUP BYs."""
_HEAD_BYTES = 8 * 1024**2
_MAX_SAMPLED_FILES = 16
_EXTENSIONS: dict[str, Format] = {
    ".parquet": "parquet", ".pq": "parquet",
    ".csv": "csv", ".tsv": "csv", ".txt": "csv",
    ".json": "json", ".jsonl": "json", ".ndjson": "json",
}  # fmt: skip
_COMPRESSIONS = (".gz", ".zst")


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


class DatasetAnalysis(msgspec.Struct, frozen=True, kw_only=True):
    """The profile of a whole dataset (one format, one or more files)."""

    path: str
    format: Format
    files: list[str]
    bytes: int
    row_count: int
    row_count_exact: bool
    sampled_rows: int | None
    """Rows the estimated figures came from; None when nothing was estimated but distinct counts."""
    elapsed_ms: int
    columns: list[ColumnAnalysis]
    notes: list[str]
    union_by_name: bool = False
    """Whether the files were read by column name (only when asked, as a query would)."""
    csv: CsvDialect | None = None
    """For CSV: what DuckDB's sniffer decided for the first file, under the options given."""
    findings: list[Finding] = []
    """What an agent must know before trusting the profile or a query: schemas that differ
    between files, a sniff that looks failed, empty files."""


def format_of(file: str) -> Format | None:
    """The format a file's extension announces, looking through .gz/.zst (not for Parquet).

    >>> format_of("a/b.CSV.gz"), format_of("x.pq"), format_of("x.parquet.gz"), format_of("README")
    ('csv', 'parquet', None, None)
    """
    name = file.lower()
    compressed = name.endswith(_COMPRESSIONS)
    if compressed:
        name = name.rsplit(".", 1)[0]
    fmt = _EXTENSIONS.get(os.path.splitext(name)[1])
    return None if fmt == "parquet" and compressed else fmt


def resolve_dataset(con: duckdb.DuckDBPyConnection, path: str) -> tuple[Format, list[str]]:
    """The format and sorted files behind a file, glob or directory.

    Listing goes through DuckDB's `glob()` so its allowed-directories restriction applies
    (a PermissionException propagates to the engine's mapping boundary).
    """
    is_glob = any(ch in path for ch in "*?[")
    is_dir = not is_glob and os.path.isdir(path)
    pattern = os.path.join(path, "**") if is_dir else path
    listed = sorted(str(r[0]) for r in con.execute("SELECT file FROM glob(?)", [pattern]).fetchall())
    if not listed:
        if is_dir:
            raise InputError(
                f"directory '{path}' holds no files", hint="Point at a directory with data files."
            )
        what = "no files match" if is_glob else "no such file"
        raise InputError(
            f"{what}: '{path}'", hint="Check the path; a file, a glob or a directory is accepted."
        )
    if not is_dir:
        fmt = format_of(listed[0]) if len(listed) == 1 else None
        if len(listed) == 1 and fmt is None:
            raise InputError(
                f"cannot tell the format of '{listed[0]}' from its extension",
                hint="Use .parquet/.pq, .csv/.tsv/.txt or .json/.jsonl/.ndjson (optionally .gz/.zst for text).",
            )
    by_format: dict[Format, list[str]] = {}
    for file in listed:
        found = format_of(file)
        if found is not None:
            by_format.setdefault(found, []).append(file)
    if not by_format:
        raise InputError(
            f"'{path}' holds no CSV, Parquet or JSON files ({len(listed)} other files)",
            hint="Data files are recognised by extension: .parquet, .csv, .tsv, .txt, .json, .jsonl, .ndjson.",
        )
    if len(by_format) > 1:
        mix = ", ".join(
            f"{fmt} ({files[0]}{' ...' if len(files) > 1 else ''})" for fmt, files in by_format.items()
        )
        raise InputError(
            f"'{path}' mixes formats: {mix}",
            hint="Analyze one format at a time, e.g. with a glob such as dir/**/*.parquet.",
            details={"formats": sorted(by_format)},
        )
    ((fmt, files),) = by_format.items()
    return fmt, files


@contextlib.contextmanager
def _reading(path: str, reader: Reader, findings: Sequence[Finding] = ()) -> Iterator[None]:
    """Turn DuckDB's read failures of the user's files into InputError naming the file, with
    DuckDB's message as text (never its JSON), and a hint that fits the failure."""
    fmt, files = reader.fmt, reader.files
    schema = next((f for f in findings if f.kind == "schema_differs"), None)
    try:
        yield
    except duckdb.ConversionException as exc:
        if schema is None:
            raise
        _schema_error(exc, fmt, files, schema)
    except (duckdb.IOException, duckdb.InvalidInputException, duckdb.BinderException) as exc:
        text = map_duckdb_error(exc).message
        first_line = text.splitlines()[0]
        culprit = next((f for f in files if f in text), files[0] if len(files) == 1 else path)
        if schema is not None and "schema mismatch" in text:
            _schema_error(exc, fmt, files, schema)
        if reader.csv is not None and not any(f in text for f in files):
            raise InvalidParams(
                f"DuckDB refused the csv options: {first_line}",
                hint="Fix the csv options (read_csv's own: delimiter, header, quote, escape, skip, ...).",
                details={"csv": msgspec.to_builtins(reader.csv)},
            ) from exc
        if isinstance(exc, duckdb.BinderException):
            raise
        hint = f"Check that '{culprit}' is a complete, valid {fmt} file (not truncated, not still written)."
        if fmt == "csv":
            hint += " For a CSV that parses badly, pass csv options (delimiter, null_padding, ...)."
        raise InputError(
            f"cannot read '{culprit}' as {fmt}: {first_line}",
            hint=hint,
            details={"file": culprit, "format": fmt},
        ) from exc


def _schema_error(exc: duckdb.Error, fmt: Format, files: Sequence[str], schema: Finding) -> NoReturn:
    text = map_duckdb_error(exc).message
    culprit = next((f for f in files if f in text), files[0])
    raise InputError(
        f"the files' schemas differ, and a query on them fails the same way: {text.splitlines()[0]}",
        hint=schema.hint,
        details={
            "file": culprit,
            "format": fmt,
            "first_file": files[0],
            "differences": msgspec.to_builtins(schema.differences),
        },
    ) from exc


def analyze_dataset(
    con: duckdb.DuckDBPyConnection,
    path: str,
    *,
    sample_rows: int | None = None,
    exact: bool = False,
    union_by_name: bool = False,
    csv: CsvOptions | None = None,
) -> DatasetAnalysis:
    """Profile the dataset at `path` (file, glob or directory) on `con`, as a query reads it.

    Raises InputError for a missing, empty, mixed-format, unreadable or corrupt dataset and
    InvalidParams for a non-positive `sample_rows` or bad csv options; other DuckDB errors propagate.
    """
    started = time.perf_counter()
    if sample_rows is not None and (isinstance(sample_rows, bool) or sample_rows < 1):
        raise InvalidParams(f"sample_rows must be a positive integer, got {sample_rows!r}")
    if csv is not None:
        check_csv_options(csv)
    budget = DEFAULT_SAMPLE_ROWS if sample_rows is None else sample_rows
    fmt, files = resolve_dataset(con, path)
    if csv is not None and fmt != "csv":
        raise InvalidParams(
            f"csv options were given, but '{path}' is {fmt}",
            hint="Drop the csv options, or point at CSV files.",
        )
    reader = Reader(fmt, files, union_by_name, csv)
    size = sum(os.path.getsize(f) for f in files)
    findings: list[Finding] = []
    dialect = None
    footer_rows = 0
    with _reading(path, reader):
        findings += schema_findings(con, reader)
        if fmt == "csv":
            dialect = sniff_csv(con, files[0], csv)
    with _reading(path, reader, findings):
        if fmt == "parquet":
            # The footers first: a truncated or foreign file fails here, naming itself.
            rows = con.execute("SELECT sum(num_rows) FROM parquet_file_metadata(?)", [files]).fetchone()
            footer_rows = int(rows[0] or 0) if rows else 0
        described = con.execute(f"DESCRIBE SELECT * FROM {reader.sql()}").fetchall()
        columns = [(str(r[0]), str(r[1])) for r in described]
        if fmt == "csv":
            findings += csv_findings(files, columns, dialect)
        result = _profile(con, reader, columns, exact, budget, size, footer_rows)
    row_count, row_count_exact, out, sampled, notes = result
    return DatasetAnalysis(
        path=path,
        format=fmt,
        files=files,
        bytes=size,
        row_count=row_count,
        row_count_exact=row_count_exact,
        sampled_rows=sampled,
        elapsed_ms=int((time.perf_counter() - started) * 1000),
        columns=out,
        notes=notes,
        union_by_name=union_by_name,
        csv=dialect,
        findings=findings,
    )


_Result = tuple[int, bool, list[ColumnAnalysis], int | None, list[str]]
_NAN_NOTE = "min/max of FLOAT/DOUBLE columns leave NaN out, as Parquet statistics do"


def _profile(
    con: duckdb.DuckDBPyConnection,
    reader: Reader,
    columns: list[tuple[str, str]],
    exact: bool,
    budget: int,
    size: int,
    footer_rows: int,
) -> _Result:
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
) -> _Result:
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
) -> _Result:
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
) -> _Result:
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
) -> _Result:
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
