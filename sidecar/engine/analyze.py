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
import os
import time
from typing import IO, Iterator, Literal, Sequence

import duckdb
import msgspec

from sidecar.engine import dataset_stats as stats
from sidecar.errors import InputError, InvalidParams

__all__ = ["ColumnAnalysis", "DatasetAnalysis", "analyze_dataset", "resolve_dataset", "DEFAULT_SAMPLE_ROWS"]

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
def _reading(path: str, fmt: Format, files: Sequence[str]) -> Iterator[None]:
    """Turn DuckDB's read failures of the user's files into InputError naming the file."""
    try:
        yield
    except (duckdb.IOException, duckdb.InvalidInputException) as exc:
        text = str(exc)
        culprit = next((f for f in files if f in text), files[0] if len(files) == 1 else path)
        raise InputError(
            f"cannot read '{culprit}' as {fmt}: {text.splitlines()[0]}",
            hint=f"Check that '{culprit}' is a complete, valid {fmt} file (not truncated or still being written).",
            details={"file": culprit, "format": fmt},
        ) from exc


def _reader(fmt: Format, files: Sequence[str], extra: str = "") -> str:
    """The table function reading every file; union_by_name tolerates files with column subsets."""
    options = (", union_by_name = true" if len(files) > 1 else "") + extra
    function = {"parquet": "read_parquet", "csv": "read_csv", "json": "read_json"}[fmt]
    return f"{function}({stats.sql_list(files)}{options})"


def analyze_dataset(
    con: duckdb.DuckDBPyConnection, path: str, *, sample_rows: int | None = None, exact: bool = False
) -> DatasetAnalysis:
    """Profile the dataset at `path` (file, glob or directory) on `con`.

    Raises InputError for a missing, empty, mixed-format, unreadable or corrupt dataset and
    InvalidParams for a non-positive `sample_rows`; other DuckDB errors propagate.
    """
    started = time.perf_counter()
    if sample_rows is not None and (isinstance(sample_rows, bool) or sample_rows < 1):
        raise InvalidParams(f"sample_rows must be a positive integer, got {sample_rows!r}")
    budget = DEFAULT_SAMPLE_ROWS if sample_rows is None else sample_rows
    fmt, files = resolve_dataset(con, path)
    size = sum(os.path.getsize(f) for f in files)
    with _reading(path, fmt, files):
        if fmt == "parquet":
            # The footers first: a truncated or foreign file fails here, naming itself.
            rows = con.execute("SELECT sum(num_rows) FROM parquet_file_metadata(?)", [files]).fetchone()
            footer_rows = int(rows[0] or 0) if rows else 0
        described = con.execute(f"DESCRIBE SELECT * FROM {_reader(fmt, files)}").fetchall()
        columns = [(str(r[0]), str(r[1])) for r in described]
        if fmt == "parquet" and not exact and footer_rows > budget:
            result = _parquet_estimated(con, files, columns, footer_rows, budget)
        elif fmt != "parquet" and not exact and size > SMALL_TEXT_BYTES:
            result = _text_estimated(con, fmt, files, columns, budget)
        else:
            result = _full_scan(con, fmt, files, columns, exact)
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
    )


_Result = tuple[int, bool, list[ColumnAnalysis], int | None, list[str]]
_NAN_NOTE = "min/max of FLOAT/DOUBLE columns leave NaN out, as Parquet statistics do"


def _full_scan(
    con: duckdb.DuckDBPyConnection,
    fmt: Format,
    files: Sequence[str],
    columns: list[tuple[str, str]],
    exact: bool,
) -> _Result:
    """Everything from one pass over every row; only distinct counts stay approximate."""
    row_count, figures = stats.scan_figures(con, _reader(fmt, files), columns)
    why = "exact=true" if exact else "the dataset is small enough"
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
    files: list[str],
    columns: list[tuple[str, str]],
    row_count: int,
    budget: int,
) -> _Result:
    """Footers for the exact figures, row-group slices for the rest."""
    footers = stats.footer_figures(con, files, row_count, columns)
    slices = stats.plan_row_group_sample(con, files, budget)
    if len(files) == 1:
        reader = _reader("parquet", files, ", file_row_number = true")
        where = " OR ".join(f"file_row_number BETWEEN {s.first_row} AND {s.last_row}" for s in slices)
        hidden = "file_row_number"
    else:
        reader = _reader("parquet", files, ", file_row_number = true, filename = '__analyze_file'")
        where = " OR ".join(
            f"(__analyze_file = {stats.quote_str(s.file)} AND file_row_number BETWEEN {s.first_row} AND {s.last_row})"
            for s in slices
        )
        hidden = "file_row_number, __analyze_file"
    sample_sql = f"SELECT * EXCLUDE ({hidden}) FROM {reader} WHERE {where}"
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
    con: duckdb.DuckDBPyConnection, fmt: Format, files: list[str], columns: list[tuple[str, str]], budget: int
) -> _Result:
    """The head of up to 16 files spread over the list; row count from bytes per line."""
    notes: list[str] = []
    row_count, estimated, counted = 0, False, []
    for file in files:
        guess = _estimate_rows(file, fmt)
        if guess is None:
            row = con.execute(f"SELECT count(*) FROM {_reader(fmt, [file])}").fetchone()
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
    reader = _reader(fmt, files, ", filename = '__analyze_file'") if len(files) > 1 else _reader(fmt, files)
    heads = [
        f"(SELECT * EXCLUDE (__analyze_file) FROM {reader} WHERE __analyze_file = {stats.quote_str(f)} LIMIT {per_file})"
        if len(files) > 1 else f"(SELECT * FROM {reader} LIMIT {per_file})"
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
