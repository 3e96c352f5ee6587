"""How `dataset.analyze` reads a dataset: the same reader a query would use, with the reader
options a query can pass, and what that reader decided (the CSV sniffer's dialect, schemas that
differ between files) reported as findings rather than left for the user to discover.

A query on a glob of files reads them with DuckDB's defaults: the first file's columns, unless
`union_by_name` is asked for. Analyze does the same, so the profile describes what a query sees.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal, Sequence

import duckdb
import msgspec

from sidecar.engine.dataset_stats import quote_ident, quote_str, sql_list
from sidecar.errors import InvalidParams

__all__ = [
    "CsvOptions",
    "CsvDialect",
    "Finding",
    "SchemaDifference",
    "TypeChange",
    "Reader",
    "sniff_csv",
    "schema_findings",
    "csv_findings",
]

Format = Literal["parquet", "csv", "json"]


class CsvOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """CSV reader options, as DuckDB's `read_csv` takes them; any not given is sniffed."""

    delimiter: str | None = None
    """The column separator, 1 to 4 bytes (`read_csv`'s `delim`)."""
    header: bool | None = None
    quote: str | None = None
    """The quote character (one byte; "" for none)."""
    escape: str | None = None
    """The escape character (one byte; "" for none)."""
    comment: str | None = None
    skip: Annotated[int, msgspec.Meta(ge=0)] | None = None
    """Lines to skip at the start of each file."""
    encoding: str | None = None
    """`utf-8` (the default), `utf-16` or `latin-1`."""
    ignore_errors: bool | None = None
    """Skip rows that do not parse instead of failing."""
    null_padding: bool | None = None
    """Pad short rows with NULLs instead of failing."""
    all_varchar: bool | None = None
    nullstr: str | None = None
    dateformat: str | None = None
    timestampformat: str | None = None
    decimal_separator: Literal[".", ","] | None = None
    new_line: Literal["\n", "\r", "\r\n"] | None = None
    strict_mode: bool | None = None


_CSV_NAMES = {"delimiter": "delim"}


def _csv_sql(options: CsvOptions | None) -> str:
    """The options as `read_csv` arguments.

    >>> _csv_sql(CsvOptions(delimiter=";", header=False, skip=2))
    ", delim = ';', header = false, skip = 2"
    """
    if options is None:
        return ""
    out = []
    for name, value in msgspec.structs.asdict(options).items():
        if value is None:
            continue
        literal = ("true" if value else "false") if isinstance(value, bool) else (
            str(value) if isinstance(value, int) else quote_str(value)
        )
        out.append(f", {_CSV_NAMES.get(name, name)} = {literal}")
    return "".join(out)


def check_csv_options(options: CsvOptions) -> None:
    """Refuse what DuckDB would refuse, before any file is read, with a hint."""
    if options.delimiter is not None and not 1 <= len(options.delimiter.encode()) <= 4:
        raise InvalidParams(
            f"csv.delimiter must be 1 to 4 bytes, got {options.delimiter!r}",
            hint="Pass the separator between columns, e.g. ',' or ';' or '\\t' or '|'.",
        )
    for name in ("quote", "escape"):
        value = getattr(options, name)
        if value is not None and len(value.encode()) > 1:
            raise InvalidParams(
                f"csv.{name} must be one byte or empty, got {value!r}",
                hint=f"Pass a single character such as '\"', or '' for no {name} character.",
            )
    if options.encoding is not None and options.encoding.lower() not in _ENCODINGS:
        raise InvalidParams(
            f"csv.encoding {options.encoding!r} is not one DuckDB's CSV reader knows",
            hint="Use 'utf-8', 'utf-16' or 'latin-1', or convert the file to UTF-8 first.",
        )


_ENCODINGS = ("utf-8", "utf8", "utf-16", "utf16", "latin-1", "latin1")


class Reader(msgspec.Struct, frozen=True):
    """The table function reading the dataset, as a query would."""

    fmt: Format
    files: list[str]
    union_by_name: bool = False
    csv: CsvOptions | None = None

    def sql(self, files: Sequence[str] | None = None, extra: str = "") -> str:
        function = {"parquet": "read_parquet", "csv": "read_csv", "json": "read_json"}[self.fmt]
        options = (", union_by_name = true" if self.union_by_name else "") + _csv_sql(self.csv) + extra
        return f"{function}({sql_list(list(self.files if files is None else files))}{options})"


class CsvDialect(msgspec.Struct, frozen=True, kw_only=True):
    """What DuckDB's CSV sniffer decided for the first file (options given are kept as given)."""

    delimiter: str
    quote: str
    escape: str
    new_line: str
    comment: str
    skip_rows: int
    header: bool
    date_format: str | None
    timestamp_format: str | None
    read_csv: str
    """The `read_csv` call with every decision spelled out, to reuse in a query."""


class TypeChange(msgspec.Struct, frozen=True):
    first_file: str
    """The column's type in the first file, which a query reads (without union_by_name)."""
    here: str


class SchemaDifference(msgspec.Struct, frozen=True, kw_only=True):
    """Files sharing one schema that differs from the first file's."""

    files: list[str]
    """Up to 20 of them."""
    file_count: int
    missing: list[str]
    """Columns of the first file these files lack."""
    extra: list[str]
    """Columns these files add (a query without union_by_name does not see them)."""
    types: dict[str, TypeChange]


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    """Something about the data an agent must know before it trusts the profile or a query."""

    kind: Literal["schema_differs", "suspect_sniff", "empty_file"]
    message: str
    hint: str
    files: list[str] = []
    """The files concerned (empty_file), or the first file (schema_differs)."""
    differences: list[SchemaDifference] = []
    """schema_differs: each group of files whose schema differs from the first file's."""
    column: str | None = None
    """suspect_sniff: the one column's name."""


def _unempty(value: str | None) -> str:
    return "" if value in (None, "(empty)") else str(value)


def sniff_csv(con: duckdb.DuckDBPyConnection, file: str, options: CsvOptions | None) -> CsvDialect:
    """DuckDB's sniffer on `file`, under the options the user gave."""
    row = con.execute(
        "SELECT Delimiter, Quote, Escape, NewLineDelimiter, Comment, SkipRows, HasHeader, DateFormat,"
        f" TimestampFormat, Prompt FROM sniff_csv({quote_str(file)}{_csv_sql(options)})"
    ).fetchone()
    if row is None:  # sniff_csv always answers one row
        raise duckdb.InternalException("sniff_csv returned no row")
    delimiter, quote, escape, new_line, comment, skip, header, date_format, ts_format, prompt = row
    return CsvDialect(
        delimiter=_unempty(delimiter),
        quote=_unempty(quote),
        escape=_unempty(escape),
        new_line=_unempty(new_line).replace("\\n", "\n").replace("\\r", "\r"),
        comment=_unempty(comment),
        skip_rows=int(skip or 0),
        header=bool(header),
        date_format=date_format or None,
        timestamp_format=ts_format or None,
        read_csv=str(prompt).strip().removeprefix("FROM ").rstrip(";"),
    )


_SEPARATOR_LIKE = ",;\t|"


def csv_findings(
    files: Sequence[str], columns: Sequence[tuple[str, str]], dialect: CsvDialect | None
) -> list[Finding]:
    """Results that look like a failed sniff: one column whose name holds separators, or the
    placeholder column DuckDB invents for an empty file."""
    findings: list[Finding] = []
    empty = [f for f in files if os.path.getsize(f) == 0]
    phantom = [n for n, _ in columns] == ["column0"]
    if empty:
        findings.append(
            Finding(
                kind="empty_file",
                message=f"{len(empty)} file(s) are empty: {', '.join(empty[:5])}"
                + (" (DuckDB names a placeholder column 'column0' for it)" if phantom else ""),
                hint="Remove the empty files or point at the ones with data; an empty file has no columns.",
                files=empty,
            )
        )
    if len(columns) == 1:
        (name, _), sep = columns[0], dialect.delimiter if dialect else ""
        inside = sorted({ch for ch in name if ch in _SEPARATOR_LIKE and ch != sep})
        if inside:
            shown = ", ".join(repr(ch) for ch in inside)
            findings.append(
                Finding(
                    kind="suspect_sniff",
                    message=(
                        f"the CSV sniffer found a single column named {name!r}, which holds {shown}: "
                        "it probably failed to detect the delimiter (a ragged row or a stray quote can "
                        "cause this)"
                    ),
                    hint=(
                        f"Pass the csv options a query would need, e.g. csv: {{delimiter: {inside[0]!r}, "
                        "null_padding: true} for short rows, or ignore_errors: true to skip rows that "
                        "do not parse."
                    ),
                    column=name,
                )
            )
    return findings


def _describe(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[str, str]]:
    return [(str(r[0]), str(r[1])) for r in con.execute(f"DESCRIBE SELECT * FROM {sql}").fetchall()]


def schema_findings(con: duckdb.DuckDBPyConnection, reader: Reader) -> list[Finding]:
    """Parquet files whose schema differs from the first file's, which a query takes its
    columns from (unless union_by_name). One footer query for every file, then one DESCRIBE
    per distinct schema."""
    if reader.fmt != "parquet" or len(reader.files) < 2:
        return []
    rows = con.execute(
        "SELECT file_name, name, type, logical_type, converted_type, scale, precision, num_children,"
        " repetition_type FROM parquet_schema(?)",
        [reader.files],
    ).fetchall()
    signatures: dict[str, list[Any]] = {}
    for row in rows:
        signatures.setdefault(str(row[0]), []).append(row[1:])
    by_signature: dict[tuple[Any, ...], list[str]] = {}
    for file in reader.files:
        by_signature.setdefault(tuple(signatures.get(file, ())), []).append(file)
    if len(by_signature) < 2:
        return []
    first = reader.files[0]
    base = dict(_describe(con, reader.sql([first])))
    differences = []
    for group in by_signature.values():
        if first in group:
            continue
        cols = dict(_describe(con, Reader("parquet", [group[0]]).sql()))
        differences.append(
            SchemaDifference(
                files=group[:20],
                file_count=len(group),
                missing=[n for n in base if n not in cols],
                extra=[n for n in cols if n not in base],
                types={n: TypeChange(base[n], t) for n, t in cols.items() if n in base and base[n] != t},
            )
        )
    differing = sum(d.file_count for d in differences)
    summary = "; ".join(_describe_difference(d) for d in differences[:5])
    if reader.union_by_name:
        message = (
            f"{differing} of {len(reader.files)} files have a schema different from the first file's "
            f"({first}): "
            f"{summary}. Read with union_by_name, so the columns are the union of every file's, by name"
        )
        hint = "Query these files with read_parquet([...], union_by_name = true) to see the same columns."
    else:
        message = (
            f"{differing} of {len(reader.files)} files have a schema different from the first file's "
            f"({first}), "
            f"whose columns a query on these files sees: {summary}"
        )
        hint = (
            "A query takes the first file's columns and fails on a file that lacks one. Pass "
            "union_by_name: true to analyze (and read_parquet([...], union_by_name = true) in SQL) "
            "to read every file's columns by name."
        )
    return [
        Finding(kind="schema_differs", message=message, hint=hint, files=[first], differences=differences)
    ]


def _describe_difference(d: SchemaDifference) -> str:
    parts = []
    if d.missing:
        parts.append("lacks " + ", ".join(quote_ident(n) for n in d.missing))
    if d.extra:
        parts.append("adds " + ", ".join(quote_ident(n) for n in d.extra))
    for n, t in d.types.items():
        parts.append(f"has {quote_ident(n)} as {t.here} (first file: {t.first_file})")
    more = f" and {d.file_count - 1} more like it" if d.file_count > 1 else ""
    return f"{d.files[0]}{more} " + ", ".join(parts)
