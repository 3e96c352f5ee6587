"""The one place where DuckDB's exceptions become the sidecar's errors.

Job cursors run with `errors_as_json=true`, so DuckDB hands us its error type, message,
position and subtype as data rather than prose; plain-text messages are handled too.
Every `duckdb.*Exception` class has an entry in `_BY_CLASS`
(tests/test_error_mapping.py::test_every_duckdb_exception_class_is_mapped checks).
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping

import duckdb

from sidecar.errors import (
    AccessDenied,
    Cancelled,
    InputError,
    InternalError,
    OutOfMemory,
    SidecarError,
    SpillLimit,
    SqlError,
    Timeout,
)

__all__ = ["map_duckdb_error", "MAPPED_EXCEPTIONS", "caret_snippet"]

_BY_CLASS: dict[type[BaseException], type[SidecarError]] = {
    duckdb.ParserException: SqlError,
    duckdb.SyntaxException: SqlError,
    duckdb.BinderException: SqlError,
    duckdb.CatalogException: SqlError,
    duckdb.ConversionException: SqlError,
    duckdb.TypeMismatchException: SqlError,
    duckdb.InvalidTypeException: SqlError,
    duckdb.ConstraintException: SqlError,
    duckdb.DependencyException: SqlError,
    duckdb.SequenceException: SqlError,
    duckdb.OutOfRangeException: SqlError,
    duckdb.NotImplementedException: SqlError,
    duckdb.TransactionException: SqlError,
    duckdb.SerializationException: SqlError,
    duckdb.InvalidInputException: SqlError,  # refined to InputError below when it is about a file
    duckdb.IOException: InputError,
    duckdb.HTTPException: AccessDenied,
    duckdb.PermissionException: AccessDenied,
    duckdb.OutOfMemoryException: OutOfMemory,
    duckdb.InterruptException: Cancelled,
    duckdb.ResourceInUseException: InputError,
    duckdb.ConnectionException: InternalError,
    duckdb.FatalException: InternalError,
    duckdb.InternalException: InternalError,
    # DB-API base classes, for anything DuckDB raises without a more specific class
    duckdb.IntegrityError: SqlError,
    duckdb.DataError: SqlError,
    duckdb.ProgrammingError: SqlError,
    duckdb.NotSupportedError: SqlError,
    duckdb.OperationalError: SqlError,
    duckdb.InternalError: InternalError,
    duckdb.DatabaseError: SqlError,
    duckdb.Error: SqlError,
}
MAPPED_EXCEPTIONS = frozenset(_BY_CLASS)

_PREFIX = re.compile(r"^(?P<kind>[A-Za-z ]+) Error: ", re.S)
_FILE_WORDS = re.compile(r"file|parquet|csv|json|magic bytes|no files found|sniff|read_", re.I)
_POSSIBLE_SOLUTIONS = re.compile(r"\n+Possible solutions:.*", re.S)


def _parse(exc: BaseException) -> tuple[str, str, dict[str, Any]]:
    """(kind, message, extra) from a DuckDB exception, whether JSON-encoded or plain."""
    text = str(exc)
    kind = ""
    match = _PREFIX.match(text)
    body = text
    if match:
        kind, body = match.group("kind"), text[match.end() :]
    extra: dict[str, Any] = {}
    if body.startswith("{"):
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict):
            kind = str(data.pop("exception_type", kind))
            body = str(data.pop("exception_message", body))
            extra = data
    return kind, body.strip(), extra


def caret_snippet(sql: str, position: int) -> str:
    """The SQL line holding `position`, with a caret under it.

    >>> print(caret_snippet("select x\\nfrom y", 14))
    LINE 2: from y
                 ^
    """
    position = max(0, min(position, len(sql)))
    line_start = sql.rfind("\n", 0, position) + 1
    line_end = sql.find("\n", position)
    line_end = len(sql) if line_end == -1 else line_end
    line_no = sql.count("\n", 0, position) + 1
    prefix = f"LINE {line_no}: "
    return f"{prefix}{sql[line_start:line_end]}\n{' ' * (len(prefix) + position - line_start)}^"


def map_duckdb_error(
    exc: BaseException,
    *,
    sql: str | None = None,
    settings: Mapping[str, Any] | None = None,
    cancel_reason: str | None = None,
) -> SidecarError:
    """Translate a DuckDB exception into the most specific sidecar error, keeping the context."""
    cls = next((c for klass in type(exc).__mro__ if (c := _BY_CLASS.get(klass)) is not None), InternalError)
    kind, message, extra = _parse(exc)
    details: dict[str, Any] = {"duckdb_error": kind or type(exc).__name__}
    for key in ("position", "error_subtype", "candidates", "name", "type"):
        if key in extra:
            details[key] = extra[key]
    if settings:
        details["settings"] = dict(settings)
    hint: str | None = None

    if cls is Cancelled and cancel_reason == "timeout":
        cls, message = Timeout, "the query ran past its timeout and was interrupted"
    elif cls is Cancelled and cancel_reason == "shutdown":
        message, hint = (
            "the sidecar is shutting down; the query was interrupted",
            "Resend it to a running sidecar.",
        )
    elif cls is Cancelled:
        message = "the query was cancelled by the client"
    elif cls is OutOfMemory:
        if "max_temp_directory_size" in message or "temp_directory" in message:
            cls = SpillLimit
        message = _POSSIBLE_SOLUTIONS.sub("", message)
    elif cls is SqlError and isinstance(exc, duckdb.InvalidInputException) and _FILE_WORDS.search(message):
        cls = InputError
    elif cls is InputError and "No space left on device" in message:
        cls, hint = SpillLimit, "The disk is full. Free space, or point temp_directory at a larger disk."
    elif cls is InputError and "Could not set lock" in message:
        hint = "Another process holds this database file open for writing; close it, or use another file."
    elif cls is AccessDenied and "Cannot access file" in message:
        hint = (
            "The file is outside the directories this sidecar may read and write "
            "(config.get -> settings.allowed_directories). Move it inside one, or add its directory to "
            "BMAD_DATA_ALLOWED_DIRECTORIES (separated by ':') and restart the sidecar."
        )
    elif cls is AccessDenied and isinstance(exc, duckdb.HTTPException):
        hint = "The sidecar never reaches for the network; copy remote data to a local file first."

    position = details.get("position")
    if sql is None:
        details.pop("position", None)  # a position in SQL the sidecar wrote means nothing to the user
    elif position is not None and str(position).isdigit():
        details["position"] = int(position)
        details["context"] = caret_snippet(sql, int(position))
        message = f"{message}\n{details['context']}"
    prefix = f"{kind} Error: " if kind and cls is not Cancelled and cls is not Timeout else ""
    if sql is not None:
        details["sql"] = sql if len(sql) <= 2000 else sql[:2000] + "…"
    return cls(prefix + message, hint=hint, details=details)
