"""DuckDB values as JSON, faithfully and predictably.

The rules (docs/protocol.md's value table repeats them, tests/test_encode_property.py checks
them against DuckDB's own VARCHAR cast at every nesting depth):
- integers within ±(2^53−1) are JSON numbers; wider ones (BIGINT, HUGEINT, UBIGINT, BIGNUM, ...)
  outside that range are decimal strings, so JavaScript never rounds them;
- DECIMAL is a string with every digit ("12.30"); DOUBLE and FLOAT are numbers, except
  NaN, Infinity and -Infinity, which JSON cannot hold: they are the strings "NaN",
  "Infinity", "-Infinity";
- DATE, TIME and TIMESTAMP are DuckDB's own text with a 'T' between date and time
  ("2024-02-29T12:00:00", "infinity", "-infinity"); TIMESTAMPTZ is in UTC with a 'Z'; INTERVAL
  is an ISO 8601 duration ("P1M2DT3H"); BLOB is base64; UUID is its canonical string;
- LIST and ARRAY are arrays, STRUCT and MAP objects, a UNION its member's value, with the same
  rules inside; NULL is null.

The type of every column decides its encoder (never the Python class of a value, never a
prefix of the type's name), so a DECIMAL inside a LIST is encoded as a top-level one is.
DuckDB's Python conversion loses information on temporal values (DATE 'infinity' becomes
9999-12-31, an INTERVAL's months become 30 days, TIMESTAMP_NS loses its nanoseconds), so
`ResultEncoding.select` has DuckDB cast those leaves to VARCHAR in SQL, and Python only reshapes
the text (`sidecar/engine/temporal_text.py`). Columns that need no conversion (most of them) cost nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from decimal import Decimal
from typing import Any, Callable, Sequence
from uuid import UUID

import duckdb
import msgspec

try:
    from duckdb import _seam
except ImportError:  # not in every DuckDB release: `_bind` falls back to the public API
    _seam = None

from sidecar.engine.temporal_text import (
    interval_text_to_iso,
    iso_duration,
    timestamp_text,
    timestamptz_text_to_utc,
    utc_z,
)

__all__ = [
    "ResultEncoding",
    "execute_encoded",
    "ValueEncoding",
    "result_encoding",
    "convert_rows",
    "json_value",
    "MAX_SAFE_INTEGER",
]

MAX_SAFE_INTEGER = 2**53 - 1

Convert = Callable[[Any], Any]

_IDENTITY_IDS = frozenset(
    {"boolean", "tinyint", "smallint", "integer", "utinyint", "usmallint", "uinteger"}
    | {"varchar", "enum", "bit"}
)
_WIDE_INT_IDS = frozenset({"bigint", "ubigint", "hugeint", "uhugeint", "bignum", "varint"})
_FLOAT_IDS = frozenset({"float", "double"})
_TIMESTAMP_IDS = frozenset({"timestamp", "timestamp_s", "timestamp_ms", "timestamp_ns"})
_RENDERED_IDS = frozenset(
    {"date", "time", "time_ns", "time with time zone", "interval", "timestamp with time zone"}
    | _TIMESTAMP_IDS
)
"""Leaves whose Python conversion loses information: DuckDB renders them as text in SQL."""
_NESTED_IDS = frozenset({"list", "array", "struct", "map", "union"})


def _int(value: int) -> int | str:
    return value if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else str(value)


def _wide_int(value: Any) -> int | str:
    return _int(int(value))  # BIGNUM arrives as its decimal text


def _float(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _decimal(value: Decimal) -> str:
    return format(value, "f")  # str() would write 0.0000000000 as '0E-10'


def _blob(value: Any) -> str:
    return base64.b64encode(bytes(value)).decode("ascii")


def json_value(value: Any) -> Any:
    """A value as JSON by its Python class: the path when no type is known (a UNION's member)."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return _int(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, Decimal):
        return _decimal(value)
    if isinstance(value, dt.timedelta):
        return iso_duration(value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return utc_z(value)
    if isinstance(value, (dt.date, dt.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _blob(value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {_key(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    return str(value)


def _key(value: Any) -> str:
    """A converted MAP key as a JSON object key: text as is, anything else as its JSON text."""
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


def _nullable(convert: Convert) -> Convert:
    return lambda v: None if v is None else convert(v)


def _children(duck_type: Any) -> list[tuple[str, Any]]:
    return list(duck_type.children)


def _child_types(duck_type: Any) -> list[Any]:
    """The types inside a nested type: an ARRAY's children also hold its ("size", n), a UNION's
    its ("", tag type) first."""
    children = _children(duck_type)
    if duck_type.id == "array":
        return [children[0][1]]
    if duck_type.id == "union":
        return [t for _, t in children[1:]]
    return [t for _, t in children]


def needs_rendering(duck_type: Any) -> bool:
    """Whether a type holds a leaf DuckDB must render as text for a faithful value."""
    if duck_type.id in _RENDERED_IDS:
        return True
    if duck_type.id in _NESTED_IDS:
        return any(needs_rendering(t) for t in _child_types(duck_type))
    return False


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def rendered_type(duck_type: Any) -> str:
    """The SQL type a column is cast to so every rendered leaf becomes VARCHAR, keeping the shape.

    >>> import duckdb
    >>> rendered_type(duckdb.sqltype("STRUCT(d DATE, n INTEGER[])[]"))
    'STRUCT("d" VARCHAR, "n" INTEGER[])[]'
    """
    kind = duck_type.id
    if kind in _RENDERED_IDS:
        return "VARCHAR"
    if kind not in _NESTED_IDS or not needs_rendering(duck_type):
        return str(duck_type)
    children = _children(duck_type)
    if kind == "list":
        return f"{rendered_type(children[0][1])}[]"
    if kind == "array":
        return f"{rendered_type(children[0][1])}[{children[1][1]}]"
    if kind == "map":
        return f"MAP({rendered_type(children[0][1])}, {rendered_type(children[1][1])})"
    members = children[1:] if kind == "union" else children
    inner = ", ".join(f"{_quote(name)} {rendered_type(t)}" for name, t in members)
    return f"{kind.upper()}({inner})"


def _rendered_leaf(kind: str) -> Convert:
    if kind in _TIMESTAMP_IDS:
        return timestamp_text
    if kind == "timestamp with time zone":
        return timestamptz_text_to_utc
    if kind == "interval":
        return interval_text_to_iso
    return lambda text: text  # DATE, TIME, TIMETZ: DuckDB's text is ISO 8601 already


def _python_leaf(kind: str) -> Convert:
    """Temporal leaves DuckDB did not render (a statement other than a SELECT): the Python
    value's best. DuckDB hands over as text what Python cannot hold (TIME '24:00:00', year 10000)."""
    if kind == "interval":
        return iso_duration
    return lambda v: v if isinstance(v, str) else json_value(v)


def converter(duck_type: Any, *, rendered: bool) -> Convert | None:
    """The function encoding one non-NULL value of `duck_type`; None when the value is JSON-ready.

    `rendered` says the column went through `rendered_type`, so its temporal leaves are text.
    """
    kind = duck_type.id
    if kind in _IDENTITY_IDS:
        return None
    if kind in _WIDE_INT_IDS:
        return _wide_int
    if kind in _FLOAT_IDS:
        return _float
    if kind == "decimal":
        return _decimal
    if kind == "blob":
        return _blob
    if kind == "uuid":
        return str
    if kind in _RENDERED_IDS:
        return _rendered_leaf(kind) if rendered else _python_leaf(kind)
    if kind not in _NESTED_IDS:
        return json_value  # a type this module does not know: its Python value's best
    children = _children(duck_type)
    if kind in ("list", "array"):
        item = converter(children[0][1], rendered=rendered)
        if item is None:
            return list if kind == "array" else None
        each = _nullable(item)
        return lambda v: [each(x) for x in v]
    if kind == "struct":
        fields = {name: _nullable(c) for name, t in children if (c := converter(t, rendered=rendered))}
        if not fields:
            return None
        return lambda v: {k: (fields[k](x) if k in fields else x) for k, x in v.items()}
    if kind == "map":
        key = converter(children[0][1], rendered=rendered) or (lambda k: k)
        value = _nullable(converter(children[1][1], rendered=rendered) or (lambda x: x))
        unhashable = children[0][1].id in _NESTED_IDS  # DuckDB hands these over as {key: [...], value: [...]}

        def convert_map(v: Any) -> dict[str, Any]:
            pairs = zip(v["key"], v["value"]) if unhashable else v.items()
            return {_key(key(k)): value(x) for k, x in pairs}

        return convert_map
    return _union_converter([t for _, t in children[1:]], rendered=rendered)


def _union_converter(members: list[Any], *, rendered: bool) -> Convert:
    """Python hands over a UNION member's value without its tag: a member is told by its Python
    class, and text by the one member that arrives as text, when only one does."""
    texts = [t for t in members if t.id in _RENDERED_IDS or t.id in ("varchar", "enum", "bit", "bignum")]
    if len(texts) != 1:
        return json_value
    as_text = converter(texts[0], rendered=rendered) or json_value  # BIGNUM's text is a number
    return lambda v: as_text(v) if isinstance(v, str) else json_value(v)


class ResultEncoding:
    """How the columns of one result are encoded: which ones DuckDB casts first, and the
    Python conversion of each."""

    def __init__(self, types: Sequence[Any], *, render: bool) -> None:
        self.type_names = [str(t) for t in types]
        """The columns' DuckDB types as the client sees them (before any cast to text)."""
        self.casts: list[str | None] = [
            rendered_type(t) if render and needs_rendering(t) else None for t in types
        ]
        self._converters = [
            (i, _nullable(c))
            for i, t in enumerate(types)
            if (c := converter(t, rendered=self.casts[i] is not None)) is not None
        ]

    @property
    def renders(self) -> bool:
        return any(c is not None for c in self.casts)

    def select(self, query: str, names: Sequence[str]) -> str:
        """`query` wrapped so each column needing it is cast, by position, under its own name."""
        exprs = [
            f"#{i + 1} AS {_quote(name)}" if cast is None else f"CAST(#{i + 1} AS {cast}) AS {_quote(name)}"
            for i, (name, cast) in enumerate(zip(names, self.casts))
        ]
        return f"SELECT {', '.join(exprs)} FROM (\n{query}\n) AS __bmad_result"

    def rows(self, rows: Sequence[tuple[Any, ...]]) -> list[list[Any]] | Sequence[tuple[Any, ...]]:
        """Rows ready for msgspec's JSON encoder; untouched when no column needs converting."""
        if not self._converters:
            return rows
        out = []
        for row in rows:
            values = list(row)
            for i, convert in self._converters:
                values[i] = convert(values[i])
            out.append(values)
        return out


def execute_encoded(cursor: Any, statement: Any, params: Any) -> ResultEncoding:
    """Run `statement` (a `duckdb.Statement`) on `cursor` so that its result encodes faithfully.

    A SELECT is bound first (`cursor.sql` binds without running) to learn its column types;
    when a column holds a temporal leaf, the statement runs wrapped in a projection that casts
    those leaves to text, by position and under the original names. Other statements (PRAGMA,
    INSERT ... RETURNING, ...) run as they are and get the Python values' best encoding.
    """
    bound = None
    if statement.type.name == "SELECT":
        try:
            bound = _bind(cursor, statement, params)
        except duckdb.Error:
            pass  # running it as it is raises the same error, with its position in the user's SQL
    if bound is not None:
        names, types = bound
        encoding = ResultEncoding(types, render=True)
        if encoding.renders:
            cursor.execute(encoding.select(statement.query, names), params)
            return encoding
    cursor.execute(statement, params)
    return ResultEncoding([d[1] for d in cursor.description or []], render=False)


def _bind(cursor: Any, statement: Any, params: Any) -> tuple[list[str], list[Any]]:
    """The names and types of a SELECT's result, without running it.

    DuckDB's binder takes the parsed statement as it is (`duckdb._seam.bind`, what `cursor.sql`
    calls after parsing the text again and wrapping a relation around it): about a third of
    `cursor.sql(...).types`' cost, which every `query.run` pays. DuckDB is pinned; should a
    release drop the private call, the public one serves (`tests/test_encode.py` runs both).
    """
    bind = getattr(_seam, "bind", None) if _seam is not None else None
    if bind is None:
        relation = cursor.sql(statement.query, params=params)
        return relation.columns, relation.types
    signature = bind(cursor, statement, values=params)
    return signature.names, signature.types


class ValueEncoding:
    """The encoding of single values of one DuckDB type computed in SQL the sidecar writes
    (dataset.analyze's min/max): `sql(expr)` is what to select, calling it encodes the answer,
    so a figure reads exactly as the same value would in a query.run row.

    >>> import duckdb
    >>> con = duckdb.connect()
    >>> enc = ValueEncoding("DATE")
    >>> enc(con.execute("SELECT " + enc.sql("DATE 'infinity'")).fetchone()[0])
    'infinity'
    """

    def __init__(self, type_name: str) -> None:
        try:
            duck_type = duckdb.sqltype(type_name)
        except duckdb.Error:  # a type Python cannot name (an extension's): DuckDB's text
            self._cast: str | None = "VARCHAR"
            self._convert: Convert = lambda v: v
            return
        self._cast = rendered_type(duck_type) if needs_rendering(duck_type) else None
        self._convert = _nullable(converter(duck_type, rendered=self._cast is not None) or (lambda v: v))

    def sql(self, expr: str) -> str:
        return expr if self._cast is None else f"CAST({expr} AS {self._cast})"

    def __call__(self, value: Any) -> Any:
        return self._convert(value)


def result_encoding(types: Sequence[Any], *, render: bool = False) -> ResultEncoding:
    """The encoding of a result whose columns have these DuckDB types (`cursor.description`)."""
    return ResultEncoding(types, render=render)


def convert_rows(
    rows: Sequence[tuple[Any, ...]], types: Sequence[Any]
) -> list[list[Any]] | Sequence[tuple[Any, ...]]:
    """Rows of a result DuckDB did not render, ready for msgspec's JSON encoder."""
    return ResultEncoding(types, render=False).rows(rows)
