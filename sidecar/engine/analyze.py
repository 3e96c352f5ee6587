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
import os
import time
from typing import Iterator, NoReturn, Sequence

import duckdb
import msgspec

from sidecar.engine.analyze_profiles import ColumnAnalysis, profile
from sidecar.engine.dataset_reader import (
    CsvDialect,
    CsvOptions,
    Finding,
    Format,
    Reader,
    check_csv_options,
    csv_findings,
    schema_findings,
    sniff_csv,
)
from sidecar.engine.errors import map_duckdb_error
from sidecar.errors import InputError, InvalidParams

__all__ = [
    "ColumnAnalysis",
    "CsvOptions",
    "DatasetAnalysis",
    "analyze_dataset",
    "resolve_dataset",
    "DEFAULT_SAMPLE_ROWS",
]

DEFAULT_SAMPLE_ROWS = 1_000_000
"""Rows behind the estimated figures: ~0.4 s of work on two cores for ten columns (see
docs/performance/dataset-analyze.md); a standard error of ~0.1% of a std for a mean."""
_EXTENSIONS: dict[str, Format] = {
    ".parquet": "parquet", ".pq": "parquet",
    ".csv": "csv", ".tsv": "csv", ".txt": "csv",
    ".json": "json", ".jsonl": "json", ".ndjson": "json",
}  # fmt: skip
_COMPRESSIONS = (".gz", ".zst")


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
        result = profile(con, reader, columns, exact, budget, size, footer_rows)
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


