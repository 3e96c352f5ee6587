"""DuckDB values as JSON, faithfully and predictably.

The rules (docs/protocol.md repeats them):
- integers within ±(2^53−1) are JSON numbers; wider ones (BIGINT, HUGEINT, UBIGINT, ...)
  outside that range are decimal strings, so JavaScript never rounds them;
- DECIMAL is a string with every digit ("12.30"); DOUBLE and FLOAT are numbers, except
  NaN, Infinity and -Infinity, which JSON cannot hold: they are the strings "NaN",
  "Infinity", "-Infinity";
- DATE, TIME, TIMESTAMP are ISO 8601 strings (TIMESTAMPTZ with its offset); INTERVAL is an
  ISO 8601 duration ("P1DT2H"); BLOB is base64; UUID is its canonical string;
- LIST and ARRAY are arrays, STRUCT and MAP objects, with the same rules inside;
- NULL is null.
Columns that need no conversion (most of them) cost nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from decimal import Decimal
from typing import Any, Callable, Sequence
from uuid import UUID

__all__ = ["convert_rows", "json_value", "iso_duration", "MAX_SAFE_INTEGER"]

MAX_SAFE_INTEGER = 2**53 - 1

_PLAIN = {
    "BOOLEAN",
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "VARCHAR",
    "DATE",
    "TIME",
    "TIMESTAMP",
    "TIMESTAMP_S",
    "TIMESTAMP_MS",
    "TIMESTAMP_NS",
    "TIMESTAMP WITH TIME ZONE",
    "TIME WITH TIME ZONE",
    "UUID",
    "BLOB",
}


def iso_duration(value: dt.timedelta) -> str:
    """An ISO 8601 duration.

    >>> iso_duration(dt.timedelta(days=1, hours=2, microseconds=500))
    'P1DT2H0.0005S'
    >>> iso_duration(dt.timedelta(0))
    'PT0S'
    """
    sign = "-" if value < dt.timedelta(0) else ""
    value = abs(value)
    days, seconds, micros = value.days, value.seconds, value.microseconds
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = f"{sign}P" + (f"{days}D" if days else "")
    time_part = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if secs or micros:
        time_part += f"{secs}.{micros:06d}".rstrip("0").rstrip(".") + "S"
    if time_part:
        out += "T" + time_part
    return out if out not in ("P", "-P") else "PT0S"


def _int(value: int) -> int | str:
    return value if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else str(value)


def _float(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def json_value(value: Any) -> Any:
    """Any DuckDB value as a JSON-ready Python value (the general, recursive path)."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return _int(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.timedelta):
        return iso_duration(value)
    if isinstance(value, (dt.date, dt.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    return str(value)


def _converter(type_name: str) -> Callable[[Any], Any] | None:
    if type_name in _PLAIN or type_name.startswith("ENUM"):
        return None
    if type_name in ("BIGINT", "UBIGINT", "HUGEINT", "UHUGEINT", "VARINT", "BIGNUM"):
        return lambda v: v if v is None else _int(v)
    if type_name in ("DOUBLE", "FLOAT", "REAL"):
        return lambda v: v if v is None else _float(v)
    if type_name.startswith("DECIMAL"):
        return lambda v: v if v is None else str(v)
    return json_value


def convert_rows(
    rows: Sequence[tuple[Any, ...]], type_names: Sequence[str]
) -> list[list[Any]] | Sequence[tuple[Any, ...]]:
    """Rows ready for msgspec's JSON encoder; untouched when no column needs converting."""
    converters = [(i, c) for i, t in enumerate(type_names) if (c := _converter(t)) is not None]
    if not converters:
        return rows
    out = []
    for row in rows:
        values = list(row)
        for i, convert in converters:
            values[i] = convert(values[i])
        out.append(values)
    return out
