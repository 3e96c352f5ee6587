"""Property test of the value encoding: generated DuckDB types, nested to depth 3, with NULLs at
every level, encode as docs/protocol.md's value table says, checked leaf by leaf against
DuckDB's own text for the same value.

The reference for each leaf is DuckDB's `CAST(v AS VARCHAR)` on a connection in UTC, put through
the value table's rule for its type; for BLOB it is DuckDB's `to_base64`, and for INTERVAL the
ISO 8601 duration of the months, days and microseconds the value was built from. The encoder
runs on a connection in another time zone (Asia/Kolkata), so TIMESTAMPTZ's conversion to UTC is
exercised. Bounded (a fixed number of examples) and deterministic: derandomized, and without
Hypothesis's pool of local constants, so the same examples run alone or in the full suite
(tests/test_encode_determinism.py proves it across processes).
"""

from __future__ import annotations

import datetime as dt
import math
import struct
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import duckdb
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.internal.conjecture import providers
from hypothesis import strategies as st

from sidecar.engine.encode import execute_encoded

MAX_SAFE = 2**53 - 1


@dataclass(frozen=True)
class Ref:
    """A leaf's expected JSON: `rule` applied to DuckDB's answer to `sql`."""

    sql: str
    rule: Callable[[Any], Any]


@dataclass(frozen=True)
class F32:
    """A FLOAT is compared after rounding to 32 bits: DuckDB prints its shortest text."""

    text: str


@dataclass
class Typed:
    type_sql: str
    literal: str
    expected: Any
    text_valued: bool = False  # arrives in Python as text (matters inside a UNION)
    key_ok: bool = False  # may be a MAP key here


@dataclass
class Kind:
    type_sql: str
    values: Callable[[], st.SearchStrategy[tuple[str, Any]]]
    text_valued: bool = False
    key_ok: bool = False
    children: list[Any] = field(default_factory=list)


def _number(text: str) -> int | str:
    n = int(text)
    return n if -MAX_SAFE <= n <= MAX_SAFE else text


def _float(text: str) -> Any:
    return {"nan": "NaN", "-nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}.get(text.lower(), None) or float(text)


def _float32(text: str) -> Any:
    special = _float(text)
    return special if isinstance(special, str) else F32(text)


def _timestamp(text: str) -> str:
    return text if "infinity" in text else text.replace(" ", "T", 1)


def _timestamptz(text: str) -> str:
    # The reference connection is in UTC: DuckDB writes '+00' where the table promises 'Z'.
    return text if "infinity" in text else text.replace(" ", "T", 1).removesuffix("+00") + "Z"


def _same(text: str) -> str:
    return text


def _iso_interval(months: int, days: int, micros: int) -> str:
    """The value table's INTERVAL rule, written independently of the encoder."""
    parts = [months // 12 if months >= 0 else -(-months // 12), months % 12 if months >= 0 else -(-months % 12), days]
    negative = all(p <= 0 for p in [*parts, micros]) and any([*parts, micros])
    if negative:
        parts, micros = [-p for p in parts], -micros
    text = "".join(f"{p}{u}" for p, u in zip(parts, "YMD") if p)
    if micros:
        sign, rest = ("-" if micros < 0 else ""), abs(micros)
        h, m, s, us = rest // 3_600_000_000, rest // 60_000_000 % 60, rest // 1_000_000 % 60, rest % 1_000_000
        clock = (f"{sign}{h}H" if h else "") + (f"{sign}{m}M" if m else "")
        if s or us:
            clock += f"{sign}{s}" + (("." + f"{us:06d}".rstrip("0")) if us else "") + "S"
        text += "T" + clock
    return ("-" if negative else "") + "P" + text if text else "PT0S"


def _leaf(type_sql: str, literals: st.SearchStrategy[str], rule: Callable[[Any], Any], **kw: Any) -> Kind:
    def values() -> st.SearchStrategy[tuple[str, Any]]:
        return literals.map(lambda lit: (lit, Ref(f"CAST({lit} AS VARCHAR)", rule)))

    return Kind(type_sql, values, **kw)


def _ints(type_sql: str, lo: int, hi: int) -> Kind:
    extremes = st.sampled_from([lo, hi, 0, MAX_SAFE, MAX_SAFE + 1, -MAX_SAFE - 1]).filter(lambda n: lo <= n <= hi)
    return _leaf(type_sql, st.one_of(extremes, st.integers(lo, hi)).map(lambda n: f"({n})::{type_sql}"), _number, key_ok=True)


def _decimal(precision: int, scale: int) -> Kind:
    type_sql = f"DECIMAL({precision},{scale})"

    def literal(n: int) -> str:
        digits = str(abs(n)).rjust(scale + 1, "0")
        text = digits[: len(digits) - scale] + ("." + digits[len(digits) - scale :] if scale else "")
        return f"'{'-' if n < 0 else ''}{text}'::{type_sql}"

    bound = 10**precision - 1
    return _leaf(type_sql, st.integers(-bound, bound).map(literal), _same, key_ok=True)


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_DATES = st.one_of(
    st.sampled_from(["infinity", "-infinity", "9999-12-31", "0001-01-01"]), st.dates().map(dt.date.isoformat)
)
_DATETIMES = st.datetimes(min_value=dt.datetime(2, 1, 1), max_value=dt.datetime(9998, 12, 31))
_TIMESTAMPS = st.one_of(st.sampled_from(["infinity", "-infinity"]), _DATETIMES.map(lambda d: d.isoformat(" ")))
_NS_DATETIMES = st.datetimes(min_value=dt.datetime(1678, 1, 1), max_value=dt.datetime(2261, 12, 31))
_OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda m: f"{'-' if m < 0 else '+'}{abs(m) // 60:02d}:{abs(m) % 60:02d}")


def _interval() -> Kind:
    def values() -> st.SearchStrategy[tuple[str, Any]]:
        parts = st.tuples(st.integers(-2000, 2000), st.integers(-1000, 1000), st.integers(-(10**12), 10**12))
        return parts.map(
            lambda p: (f"(to_months({p[0]}) + to_days({p[1]}) + to_microseconds({p[2]}))", _iso_interval(*p))
        )

    return Kind("INTERVAL", values, text_valued=True)


def _blob() -> Kind:
    def values() -> st.SearchStrategy[tuple[str, Any]]:
        return st.binary(max_size=12).map(
            lambda b: (f"from_hex('{b.hex()}')", Ref(f"to_base64(from_hex('{b.hex()}'))", _same))
        )

    return Kind("BLOB", values)


LEAVES: list[Kind] = [
    _leaf("BOOLEAN", st.sampled_from(["true", "false"]), lambda t: t == "true"),
    _ints("TINYINT", -(2**7), 2**7 - 1),
    _ints("SMALLINT", -(2**15), 2**15 - 1),
    _ints("INTEGER", -(2**31), 2**31 - 1),
    _ints("BIGINT", -(2**63), 2**63 - 1),
    _ints("HUGEINT", -(2**127), 2**127 - 1),
    _ints("UTINYINT", 0, 2**8 - 1),
    _ints("UINTEGER", 0, 2**32 - 1),
    _ints("UBIGINT", 0, 2**64 - 1),
    _ints("UHUGEINT", 0, 2**128 - 1),
    _leaf("BIGNUM", st.integers(-(10**40), 10**40).map(lambda n: f"'{n}'::BIGNUM"), _number, text_valued=True),
    _decimal(4, 2),
    _decimal(18, 10),
    _decimal(38, 5),
    _decimal(9, 0),
    _leaf("DOUBLE", st.floats().map(lambda f: f"'{f!r}'::DOUBLE"), _float),
    _leaf("FLOAT", st.floats(width=32).map(lambda f: f"'{f!r}'::FLOAT"), _float32),
    _leaf("VARCHAR", st.text(max_size=8).map(_quoted), _same, text_valued=True, key_ok=True),
    _leaf("DATE", _DATES.map(lambda d: f"DATE '{d}'"), _same, text_valued=True, key_ok=True),
    _leaf("TIME", st.times().map(lambda t: f"TIME '{t.isoformat()}'"), _same, text_valued=True),
    _leaf(
        "TIMETZ",
        st.tuples(st.times(), _OFFSETS).map(lambda p: f"TIMETZ '{p[0].isoformat()}{p[1]}'"),
        _same,
        text_valued=True,
    ),
    _leaf("TIMESTAMP", _TIMESTAMPS.map(lambda t: f"TIMESTAMP '{t}'"), _timestamp, text_valued=True),
    _leaf("TIMESTAMP_S", _TIMESTAMPS.map(lambda t: f"TIMESTAMP_S '{t}'"), _timestamp, text_valued=True),
    _leaf("TIMESTAMP_MS", _TIMESTAMPS.map(lambda t: f"TIMESTAMP_MS '{t}'"), _timestamp, text_valued=True),
    _leaf(
        "TIMESTAMP_NS",
        st.one_of(
            st.sampled_from(["infinity", "-infinity"]),
            st.tuples(_NS_DATETIMES, st.integers(0, 999)).map(lambda p: p[0].isoformat(" ", "microseconds") + f"{p[1]:03d}"),
        ).map(lambda t: f"TIMESTAMP_NS '{t}'"),
        _timestamp,
        text_valued=True,
    ),
    _leaf(
        "TIMESTAMPTZ",
        st.one_of(
            st.sampled_from(["infinity", "-infinity"]),
            st.tuples(_DATETIMES, _OFFSETS).map(lambda p: p[0].isoformat(" ") + p[1]),
        ).map(lambda t: f"TIMESTAMPTZ '{t}'"),
        _timestamptz,
        text_valued=True,
    ),
    _interval(),
    _blob(),
    _leaf("UUID", st.uuids().map(lambda u: f"'{u}'::UUID"), _same, key_ok=True),
    _leaf("BIT", st.text("01", min_size=1, max_size=20).map(lambda b: f"'{b}'::BIT"), _same, text_valued=True),
    _leaf(
        "ENUM('a', 'b c', 'd''e')",
        st.sampled_from(["a", "b c", "d'e"]).map(lambda e: f"{_quoted(e)}::ENUM('a', 'b c', 'd''e')"),
        _same,
        text_valued=True,
    ),
    _leaf(
        "JSON",
        st.sampled_from(['{"k": [1, 2.5]}', "[]", '"s"', "null", "12345678901234567890"]).map(lambda j: f"{_quoted(j)}::JSON"),
        _same,
        text_valued=True,
    ),
]

_NAMES = st.sampled_from(["a", "b", "k", "key", "value", "x y", 'q"t', "Mixed"])


def _list(child: Kind) -> Kind:
    return Kind(f"{child.type_sql}[]", lambda: _items(child, 0, 3).map(lambda xs: ("[" + ", ".join(l for l, _ in xs) + "]", [e for _, e in xs])), children=[child])


def _array(child: Kind, size: int) -> Kind:
    return Kind(
        f"{child.type_sql}[{size}]",
        lambda: _items(child, size, size).map(lambda xs: ("[" + ", ".join(l for l, _ in xs) + "]", [e for _, e in xs])),
        children=[child],
    )


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _struct(fields: list[tuple[str, Kind]]) -> Kind:
    def values() -> st.SearchStrategy[tuple[str, Any]]:
        parts = st.tuples(*[_nullable(k) for _, k in fields])
        return parts.map(
            lambda vs: (
                "{" + ", ".join(f"{_quoted(n)}: {lit}" for (n, _), (lit, _) in zip(fields, vs)) + "}",
                {n: e for (n, _), (_, e) in zip(fields, vs)},
            )
        )

    inner = ", ".join(f"{_ident(n)} {k.type_sql}" for n, k in fields)
    return Kind(f"STRUCT({inner})", values, children=[k for _, k in fields])


def _map(key: Kind, value: Kind) -> Kind:
    def values() -> st.SearchStrategy[tuple[str, Any]]:
        keys = st.lists(key.values(), max_size=3, unique_by=lambda p: p[0])
        return keys.flatmap(
            lambda ks: st.tuples(*[_nullable(value) for _ in ks]).map(
                lambda vs: ("MAP {" + ", ".join(f"{k[0]}: {v[0]}" for k, v in zip(ks, vs)) + "}", ("map", [(k[1], v[1]) for k, v in zip(ks, vs)]))
            )
        )

    return Kind(f"MAP({key.type_sql}, {value.type_sql})", values, children=[key, value])


def _union(members: list[tuple[str, Kind]]) -> Kind:
    type_sql = "UNION(" + ", ".join(f"{_ident(n)} {k.type_sql}" for n, k in members) + ")"

    def values() -> st.SearchStrategy[tuple[str, Any]]:
        return st.sampled_from(members).flatmap(
            lambda m: m[1].values().map(lambda v: (f"union_value({_ident(m[0])} := {v[0]})::{type_sql}", v[1]))
        )

    return Kind(type_sql, values, children=[k for _, k in members])


def _nullable(kind: Kind) -> st.SearchStrategy[tuple[str, Any]]:
    null = st.just((f"NULL::{kind.type_sql}", None))
    return st.one_of(null, kind.values(), kind.values(), kind.values())


def _items(kind: Kind, lo: int, hi: int) -> st.SearchStrategy[list[tuple[str, Any]]]:
    return st.lists(_nullable(kind), min_size=lo, max_size=hi)


@st.composite
def kinds(draw: Any, depth: int = 3) -> Kind:
    leaves = st.sampled_from(LEAVES)
    if depth == 0:
        return draw(leaves)
    child = kinds(depth - 1)
    shape = draw(st.sampled_from(["leaf", "list", "array", "struct", "map", "union"]))
    if shape == "leaf":
        return draw(leaves)
    if shape == "list":
        return _list(draw(child))
    if shape == "array":
        return _array(draw(child), draw(st.integers(1, 3)))
    if shape == "struct":
        names = draw(st.lists(_NAMES, min_size=1, max_size=3, unique=True))
        return _struct([(n, draw(child)) for n in names])
    if shape == "map":
        return _map(draw(st.sampled_from([k for k in LEAVES if k.key_ok])), draw(child))
    # A UNION member is told apart by its Python value, so one text-valued member at most,
    # and no nested members: docs/protocol.md states this limit.
    names = draw(st.lists(_NAMES, min_size=1, max_size=3, unique=True))
    members: list[tuple[str, Kind]] = []
    for n in names:
        k = draw(leaves.filter(lambda k: not (k.text_valued and any(m.text_valued for _, m in members))))
        members.append((n, k))
    return _union(members)


def _refs(expected: Any, out: list[Ref]) -> None:
    if isinstance(expected, Ref):
        out.append(expected)
    elif isinstance(expected, tuple) and expected and expected[0] == "map":
        for k, v in expected[1]:
            _refs(k, out)
            _refs(v, out)
    elif isinstance(expected, dict):
        for v in expected.values():
            _refs(v, out)
    elif isinstance(expected, list):
        for v in expected:
            _refs(v, out)


def _resolve(expected: Any, answers: dict[str, Any]) -> Any:
    if isinstance(expected, Ref):
        return expected.rule(answers[expected.sql])
    if isinstance(expected, tuple) and expected and expected[0] == "map":
        return {_key(_resolve(k, answers)): _resolve(v, answers) for k, v in expected[1]}
    if isinstance(expected, dict):
        return {k: _resolve(v, answers) for k, v in expected.items()}
    if isinstance(expected, list):
        return [_resolve(v, answers) for v in expected]
    return expected


def _key(value: Any) -> str:
    return value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)


def _matches(expected: Any, actual: Any) -> bool:
    if isinstance(expected, F32):
        return isinstance(actual, float) and struct.pack("f", float(expected.text)) == struct.pack("f", actual)
    if isinstance(expected, float):
        return isinstance(actual, float) and (actual == expected or (math.isnan(actual) and math.isnan(expected)))
    if isinstance(expected, dict):
        return isinstance(actual, dict) and expected.keys() == actual.keys() and all(_matches(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and all(map(_matches, expected, actual))
    return type(expected) is type(actual) and expected == actual


@contextmanager
def without_local_constants() -> Iterator[None]:
    """Hypothesis mixes into its draws the literals of every local module in `sys.modules`, so
    which examples a derandomized test draws depends on what else the process imported (the full
    suite imports every sidecar module, a lone run a few). This empties that pool meanwhile."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(providers, "_get_local_constants", providers.Constants)
        providers.CONSTANTS_CACHE.cache.clear()
        try:
            yield
        finally:
            providers.CONSTANTS_CACHE.cache.clear()


@pytest.fixture(scope="module", autouse=True)
def _deterministic_draws() -> Iterator[None]:
    with without_local_constants():
        yield


SETTINGS = settings(
    max_examples=400,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)


def drawn_examples(max_examples: int) -> list[str]:
    """The type and literal of each example the property test draws first, as SQL."""
    drawn: list[str] = []

    @settings(SETTINGS, max_examples=max_examples)
    @given(data=st.data())
    def draw(data: Any) -> None:
        kind = data.draw(kinds())
        drawn.append(f"{data.draw(_nullable(kind))[0]} AS {kind.type_sql}")

    draw()
    return drawn


@pytest.fixture(scope="module")
def connections() -> tuple[duckdb.DuckDBPyConnection, duckdb.DuckDBPyConnection]:
    reference = duckdb.connect()
    reference.execute("SET TimeZone = 'UTC'")
    encoder = duckdb.connect()
    encoder.execute("SET TimeZone = 'Asia/Kolkata'")
    return reference, encoder


@SETTINGS
@given(data=st.data())
def test_every_generated_value_encodes_as_the_value_table_says(connections, data):
    reference, encoder = connections
    kind = data.draw(kinds())
    literal, expected = data.draw(_nullable(kind))
    refs: list[Ref] = []
    _refs(expected, refs)
    answers: dict[str, Any] = {}
    if refs:
        sqls = list(dict.fromkeys(r.sql for r in refs))
        row = reference.execute("SELECT " + ", ".join(sqls)).fetchone()
        answers = dict(zip(sqls, row))
    want = _resolve(expected, answers)
    sql = f"SELECT CAST({literal} AS {kind.type_sql}) AS v"
    (statement,) = encoder.extract_statements(sql)
    encoding = execute_encoded(encoder, statement, None)
    rows = encoding.rows(encoder.fetchall())
    (got,) = msgspec.json.decode(msgspec.json.encode(rows))[0]  # JSON-ready without any fallback
    assert _matches(want, got), f"{sql}\nwant {want!r}\ngot  {got!r}"


def test_the_reference_rules_agree_with_the_documented_examples():
    assert _iso_interval(14, -3, 4 * 3_600_000_000 + 5 * 60_000_000 + 6_789_000) == "P1Y2M-3DT4H5M6.789S"
    assert _iso_interval(0, -1, -3_600_000_000) == "-P1DT1H"
    assert _iso_interval(0, 0, 0) == "PT0S"
    assert _timestamptz("2024-01-02 03:04:05+00") == "2024-01-02T03:04:05Z"
