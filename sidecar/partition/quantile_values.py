"""The values of the quantile passes: DuckDB types as value kinds, the ranks a quantile needs, and
the SQL of its answer. Pure; part of the plan in sidecar.partition.quantiles."""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import ROUND_DOWN, ROUND_FLOOR, Decimal, localcontext
from typing import Any

import msgspec

from sidecar.errors import SqlError
from sidecar.partition.plan import Unsplittable
from sidecar.partition.quantiles import VALUES, Family, Function, QuantileCall, QuantilePlan

__all__ = [
    "Pick",
    "QuantileParam",
    "ValueKind",
    "answer_sql",
    "final_sql",
    "literal",
    "param_sql",
    "pick",
    "read_params",
    "value_kind",
]

# -- value types ----------------------------------------------------------------------------


class ValueKind(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How a DuckDB type is binned; `lowest`/`highest` are the values ordered outside every finite one."""

    type: str
    family: Family
    scale: int = 0
    lowest: tuple[str, ...] = ()
    highest: tuple[str, ...] = ()
    epoch: str = "epoch_us"


_INTEGERS = frozenset(
    f"{u}{t}" for u in ("", "U") for t in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT")
)
_EPOCHS = {
    "TIMESTAMP": "epoch_us",
    "TIMESTAMP_S": "epoch_us",
    "TIMESTAMP_MS": "epoch_us",
    "TIMESTAMP WITH TIME ZONE": "epoch_us",
    "TIMESTAMP_NS": "epoch_ns",
    "TIMESTAMPTZ_NS": "epoch_ns",
}


def value_kind(type_name: str, sql: str | None = None) -> ValueKind:
    """The binning of a quantile argument of this type; Unsplittable for types ranges do not fit.

    >>> value_kind("DECIMAL(18,3)").scale, value_kind("DOUBLE").highest
    (3, ('inf', 'nan'))
    """
    name = type_name.upper()
    if name in _INTEGERS:
        return ValueKind(type=name, family="integer")
    if name in ("FLOAT", "DOUBLE"):
        return ValueKind(type=name, family="float", lowest=("-inf",), highest=("inf", "nan"))
    decimal = re.fullmatch(r"DECIMAL\((\d+),\s*(\d+)\)", name)
    if decimal:
        return ValueKind(type=name, family="decimal", scale=int(decimal.group(2)))
    if name == "DATE":
        return ValueKind(type=name, family="date", lowest=("-infinity",), highest=("infinity",))
    if name in _EPOCHS:
        return ValueKind(
            type=name, family="timestamp", lowest=("-infinity",), highest=("infinity",), epoch=_EPOCHS[name]
        )
    raise Unsplittable(
        "quantiles_type",
        f"a median/quantile of {type_name} values is not computed in passes (only numbers, dates and timestamps)",
        hint="Give the query more memory (`memory_limit`), or take the quantile of a numeric expression "
        "(e.g. epoch(x) or a rank) and convert the answer back.",
        sql=sql,
    )


def literal(text: str | None, type_name: str) -> str:
    """A value as SQL, exactly: DuckDB's own VARCHAR of it, cast back to its type.

    >>> literal("it's", "VARCHAR"), literal(None, "DATE")
    ("CAST('it''s' AS VARCHAR)", 'CAST(NULL AS DATE)')
    """
    if text is None:
        return f"CAST(NULL AS {type_name})"
    return "CAST('" + text.replace("'", "''") + f"' AS {type_name})"


def _double(value: float) -> str:
    return f"CAST('{value!r}' AS DOUBLE)"


# -- quantile parameters and ranks ----------------------------------------------------------


class QuantileParam(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One p as DuckDB binds it: DECIMAL p are exact; others are DOUBLE."""

    text: str
    exact: bool
    double: float


def param_sql(plan: QuantilePlan) -> str | None:
    """One row: for each call with a p, its element types, VARCHARs and DOUBLEs (lists of them)."""
    columns = []
    for call in plan.calls:
        if call.param is None:
            continue
        p = call.param if call.listed else f"[{call.param}]"
        columns += [
            f"list_transform({p}, lambda x: typeof(x))",
            f"list_transform({p}, lambda x: CAST(x AS VARCHAR))",
            f"list_transform({p}, lambda x: CAST(CAST(x AS DOUBLE) AS VARCHAR))",
        ]
    return f"SELECT {', '.join(columns)}" if columns else None


def read_params(plan: QuantilePlan, row: Sequence[Any]) -> dict[str, tuple[QuantileParam, ...]]:
    """The p of each call (by its column) from the row `param_sql` returned."""
    found: dict[str, tuple[QuantileParam, ...]] = {}
    position = 0
    for call in plan.calls:
        if call.param is None:
            continue
        types, texts, doubles = row[position : position + 3]
        position += 3
        found[call.column] = tuple(
            QuantileParam(text=t, exact=k.startswith("DECIMAL"), double=float(d))
            for k, t, d in zip(types, texts, doubles)
        )
    return found


class Pick(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The order statistics (0-based ranks, ascending) one quantile needs, and the p that gives
    DuckDB's answer when its own function runs over just those values."""

    ranks: tuple[int, ...]
    fraction: float


def pick(function: Function, n: int, param: QuantileParam | None) -> Pick:
    """Which ranks of n values DuckDB's quantile reads (measured against DuckDB 2.0.1, see tests).

    quantile_cont and median: RN = (n - 1) * p in DOUBLE, the values at floor(RN) and ceil(RN),
    interpolated by RN - floor(RN). quantile_disc: index max(1, n - floor(n - n * p)) - 1, with
    p exact for a DECIMAL p and, for a DOUBLE p, truncated to 15 decimal places. A negative p
    counts from the top.

    >>> pick("median", 4, None), pick("quantile_disc", 10, QuantileParam("0.9", True, 0.9))
    (Pick(ranks=(1, 2), fraction=0.5), Pick(ranks=(8,), fraction=0.5))
    """
    if function == "median" or param is None:
        q, desc = 0.5, False
    else:
        q, desc = abs(param.double), param.double < 0
    if function == "quantile_disc" and param is not None:
        with localcontext() as context:  # exact: n has 20 digits at most, p 40 or so
            context.prec = 200
            exact = (
                abs(Decimal(param.text)) if param.exact else Decimal(q).quantize(Decimal("1e-15"), ROUND_DOWN)
            )
            index = max(1, n - int((n - n * exact).to_integral_value(ROUND_FLOOR))) - 1
        return Pick(ranks=(n - 1 - index if desc else index,), fraction=0.5)
    rn = float(n - 1) * q
    low, high = int(rn // 1), -int(-rn // 1)
    ranks = (low,) if low == high else (low, high)
    if desc:
        ranks = tuple(n - 1 - r for r in ranks)
    return Pick(ranks=ranks, fraction=-(rn - low) if desc else rn - low)


def answer_sql(call: QuantileCall, kind: ValueKind, picks: Sequence[Pick], values: dict[int, str]) -> str:
    """The call's answer: DuckDB's own function over the one or two order statistics each p needs.

    Over values x[i] <= x[i+1] and p' = RN - floor(RN), quantile_cont computes RN' = 1 * p' and
    interpolates x[i], x[i+1] by p' exactly as it does over all n values.
    """
    answers = []
    for chosen in picks:
        rows = ", ".join(f"({literal(values[r], kind.type)})" for r in chosen.ranks)
        function = (
            "median(__bmad_x)"
            if call.function == "median"
            else (f"{call.function}(__bmad_x, {_double(chosen.fraction)})")
        )
        answers.append(f"(SELECT {function} FROM (VALUES {rows}) AS __bmad_t(__bmad_x))")
    if call.listed:
        return f"[{', '.join(answers)}]"
    return answers[0]


def final_sql(plan: QuantilePlan, columns: Sequence[tuple[str, str]], values: dict[str, str]) -> str:
    """The query's answer from every aggregate's value: named and typed as DESCRIBE says.

    `columns` are the (name, type) of the original query; `values` the SQL of each aggregate column.
    """
    if len(columns) != len(plan.projections):
        raise SqlError(
            f"the query has {len(columns)} columns but its select list {len(plan.projections)}",
            hint="Name each column once; a * in a global aggregate is not split.",
        )
    inner = ", ".join(f"{sql} AS {column}" for column, sql in values.items())
    outer = ", ".join(
        f"CAST({projection} AS {kind}) AS " + '"' + name.replace('"', '""') + '"'
        for projection, (name, kind) in zip(plan.projections, columns)
    )
    where = f" WHERE {plan.where}" if plan.where else ""
    return f"SELECT {outer} FROM (SELECT {inner}) AS {VALUES}{where}{' ' + plan.tail if plan.tail else ''}"
