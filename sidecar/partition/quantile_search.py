"""The search of the quantile passes: count, bin and exact passes that isolate each wanted rank
in bounded memory. Pure: SQL text in, SQL text out; the executor is sidecar.jobs.quantile_passes."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_FLOOR, Decimal, localcontext
from typing import Any

import msgspec

from sidecar.errors import SqlError
from sidecar.partition.quantiles import HUGE, SOURCE, V, Series
from sidecar.partition.quantile_values import ValueKind, literal

__all__ = ["Range", "Search", "bin_sql", "count_sql", "exact_sql", "narrow", "read_exact", "start_search"]

# -- the search -----------------------------------------------------------------------------


class Range(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Finite values in [lo, hi] (DuckDB's VARCHAR of each); `below` values of the series order before lo."""

    lo: str
    hi: str
    below: int
    count: int


class Search(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Where the wanted ranks of one series are: found values, and disjoint ranges still to narrow."""

    kind: ValueKind
    n: int
    wanted: tuple[int, ...]
    found: tuple[tuple[int, str], ...] = ()
    ranges: tuple[Range, ...] = ()
    passes: int = 1

    def values(self) -> dict[int, str]:
        return dict(self.found)


def _from(source: str) -> str:
    return f"FROM ({source}) AS {SOURCE}"


def count_sql(series: Series, kind: ValueKind) -> str:
    """The first pass: n, how many of each special value (-inf, inf, NaN, ...), the finite min and max."""
    columns = [f"count({V})"]
    columns += [
        f"count(*) FILTER (WHERE {V} = {literal(s, kind.type)})" for s in (*kind.lowest, *kind.highest)
    ]
    finite = ""
    if kind.lowest:
        finite = f" FILTER (WHERE {V} > {literal(kind.lowest[-1], kind.type)} AND {V} < {literal(kind.highest[0], kind.type)})"
    columns += [f"CAST(min({V}){finite} AS VARCHAR)", f"CAST(max({V}){finite} AS VARCHAR)"]
    return f"SELECT {', '.join(columns)} {_from(series.source)}"


def start_search(kind: ValueKind, ranks: Sequence[int], row: Sequence[Any]) -> Search:
    """The search after the first pass: ranks among the special values are found already."""
    n = int(row[0])
    specials = [int(c) for c in row[1 : 1 + len(kind.lowest) + len(kind.highest)]]
    low = sum(specials[: len(kind.lowest)])
    finite = n - sum(specials)
    segments = (
        list(zip(kind.lowest, specials))
        + [(None, finite)]
        + list(zip(kind.highest, specials[len(kind.lowest) :]))
    )
    found: list[tuple[int, str]] = []
    inside: list[int] = []
    for rank in sorted(set(ranks)):
        start = 0
        for text, size in segments:
            if start <= rank < start + size:
                if text is None:
                    inside.append(rank)
                else:
                    found.append((rank, text))
                break
            start += size
    search = Search(kind=kind, n=n, wanted=tuple(sorted(set(ranks))), found=tuple(found))
    if not inside:
        return search
    lo, hi = str(row[-2]), str(row[-1])
    if lo == hi:
        return msgspec.structs.replace(search, found=(*found, *((r, lo) for r in inside)))
    return msgspec.structs.replace(search, ranges=(Range(lo, hi, low, finite),))


def _pending(search: Search) -> dict[int, list[int]]:
    """The ranks still wanted in each range (by range index)."""
    known = {r for r, _ in search.found}
    return {
        i: [r for r in search.wanted if r not in known and rng.below <= r < rng.below + rng.count]
        for i, rng in enumerate(search.ranges)
    }


def _in_ranges(kind: ValueKind, ranges: Sequence[tuple[int, Range]]) -> tuple[str, str]:
    """The rows in any of `ranges` (a WHERE) and which range each is in (a CASE)."""
    tests = [(i, f"{V} BETWEEN {literal(r.lo, kind.type)} AND {literal(r.hi, kind.type)}") for i, r in ranges]
    where = " OR ".join(f"({t})" for _, t in tests)
    which = "CASE " + " ".join(f"WHEN {t} THEN {i}" for i, t in tests) + " END"
    return where, which


def bin_sql(series: Series, search: Search, bins: int, exact_rows: int) -> str | None:
    """A bin pass over every range holding more than `exact_rows` values (None: none does).

    Rows: range index, bin, count, min and max (VARCHAR) of each non-empty bin.
    """
    big = [(i, r) for i, r in enumerate(search.ranges) if r.count > exact_rows]
    if not big:
        return None
    where, which = _in_ranges(search.kind, big)
    binned = (
        "CASE __bmad_r " + " ".join(f"WHEN {i} THEN {_bin(search.kind, r, bins)}" for i, r in big) + " END"
    )
    return (
        f"SELECT __bmad_r, __bmad_b, count(*), CAST(min({V}) AS VARCHAR), CAST(max({V}) AS VARCHAR) "
        f"FROM (SELECT __bmad_r, {binned} AS __bmad_b, {V} "
        f"FROM (SELECT {V}, {which} AS __bmad_r {_from(series.source)} WHERE {where}) AS __bmad_in) AS __bmad_bins "
        "GROUP BY __bmad_r, __bmad_b"
    )


def _bin(kind: ValueKind, rng: Range, bins: int) -> str:
    """The bin of a value of `rng`, non-decreasing in the value, 0 at lo and at least 1 at hi.

    Integers, decimals, dates and timestamps: exact `offset * bins // (offset(hi) + 1)` in HUGEINT;
    a spread too wide for that is halved at its exact midpoint instead. Floats: IEEE
    `(v - lo) / (hi - lo) * bins`, halved first when hi - lo would overflow.
    """
    lo, hi = literal(rng.lo, kind.type), literal(rng.hi, kind.type)
    if kind.family == "float":
        half = "" if float(rng.hi) - float(rng.lo) < float("inf") else " * 0.5"

        def offset(x: str) -> str:
            return f"(CAST({x} AS DOUBLE){half} - CAST({lo} AS DOUBLE){half})"

        return f"LEAST(CAST(floor({offset(V)} / {offset(hi)} * {bins}) AS BIGINT), {bins - 1})"
    midpoint = _midpoint(kind, rng, bins)
    if midpoint is not None:
        return f"CASE WHEN {V} <= {literal(midpoint, kind.type)} THEN 0 ELSE 1 END"

    def exact(x: str) -> str:
        if kind.family == "integer":
            wide = "UHUGEINT" if kind.type == "UHUGEINT" else "HUGEINT"
            return f"(CAST({x} AS {wide}) - CAST({lo} AS {wide}))"
        if kind.family == "decimal":
            wide = f"DECIMAL(38,{kind.scale})"
            return f"CAST((CAST({x} AS {wide}) - CAST({lo} AS {wide})) * {10**kind.scale} AS HUGEINT)"
        if kind.family == "date":
            return f"CAST({x} - {lo} AS HUGEINT)"
        return f"(CAST({kind.epoch}({x}) AS HUGEINT) - CAST({kind.epoch}({lo}) AS HUGEINT))"

    return f"{exact(V)} * {bins} // ({exact(hi)} + 1)"


def _midpoint(kind: ValueKind, rng: Range, bins: int) -> str | None:
    """For an integer or decimal range too wide for exact bins, the value to halve it at (else None)."""
    if kind.family == "integer":
        lo_i, hi_i = int(rng.lo), int(rng.hi)
        return str(lo_i + (hi_i - lo_i) // 2) if (hi_i - lo_i + 1) * bins >= HUGE else None
    if kind.family == "decimal":
        with localcontext() as context:
            context.prec = 100
            lo_d, hi_d = Decimal(rng.lo), Decimal(rng.hi)
            spread = (hi_d - lo_d).scaleb(kind.scale)
            if (spread + 1) * bins < HUGE and spread < Decimal(10) ** (38 - kind.scale):
                return None
            quantum = Decimal(1).scaleb(-kind.scale)
            return str((lo_d + (hi_d - lo_d) / 2).quantize(quantum, rounding=ROUND_FLOOR))
    return None


def narrow(search: Search, rows: Sequence[Sequence[Any]], exact_rows: int) -> Search:
    """The search after a bin pass: each wanted rank's range becomes its bin's [min, max].

    Raises SqlError when the bins do not add up to their range: the input changed between passes.
    """
    by_range: dict[int, list[tuple[int, int, str, str]]] = {}
    for r, b, count, low, high in rows:
        by_range.setdefault(int(r), []).append((int(b), int(count), str(low), str(high)))
    pending = _pending(search)
    found = list(search.found)
    ranges: list[Range] = []
    for i, rng in enumerate(search.ranges):
        if rng.count <= exact_rows:
            ranges.append(rng)
            continue
        bins = sorted(by_range.get(i, []))
        if sum(c for _, c, _, _ in bins) != rng.count:
            raise _changed(search, rng)
        below = rng.below
        for _, count, low, high in bins:
            inside = [r for r in pending[i] if below <= r < below + count]
            if inside and low == high:
                found += [(r, low) for r in inside]
            elif inside:
                ranges.append(Range(low, high, below, count))
            below += count
    return msgspec.structs.replace(search, found=tuple(found), ranges=tuple(ranges), passes=search.passes + 1)


def _batch(search: Search, exact_rows: int) -> list[int]:
    """The ranges the next exact pass reads: in order, at most `exact_rows` values (at least one range)."""
    chosen: list[int] = []
    total = 0
    for i, rng in enumerate(search.ranges):
        if chosen and total + rng.count > exact_rows:
            break
        chosen.append(i)
        total += rng.count
    return chosen


def exact_sql(series: Series, search: Search, exact_rows: int) -> str | None:
    """An exact pass over small ranges, at most `exact_rows` values in all (None: none is left).

    Rows: range index, rank within the range, VARCHAR value, for each wanted rank.
    """
    batch = _batch(search, exact_rows)
    if not batch:
        return None
    pending = _pending(search)
    where, which = _in_ranges(search.kind, [(i, search.ranges[i]) for i in batch])
    keep = " OR ".join(
        f"(__bmad_r = {i} AND __bmad_n IN ({', '.join(str(k - search.ranges[i].below) for k in pending[i])}))"
        for i in batch
    )
    return (
        f"SELECT __bmad_r, __bmad_n, CAST({V} AS VARCHAR) FROM ("
        f"SELECT __bmad_r, {V}, row_number() OVER (PARTITION BY __bmad_r ORDER BY {V}) - 1 AS __bmad_n "
        f"FROM (SELECT {V}, {which} AS __bmad_r {_from(series.source)} WHERE {where}) AS __bmad_in"
        f") AS __bmad_ranked WHERE {keep}"
    )


def read_exact(search: Search, rows: Sequence[Sequence[Any]], exact_rows: int) -> Search:
    """The search after an exact pass: the wanted ranks of its ranges found, those ranges done."""
    batch = _batch(search, exact_rows)
    found = dict(search.found)
    for r, k, text in rows:
        found[search.ranges[int(r)].below + int(k)] = str(text)
    pending = _pending(search)
    for i in batch:
        if any(r not in found for r in pending[i]):
            raise _changed(search, search.ranges[i])
    left = tuple(rng for i, rng in enumerate(search.ranges) if i not in batch)
    return msgspec.structs.replace(
        search, found=tuple(sorted(found.items())), ranges=left, passes=search.passes + 1
    )


def _changed(search: Search, rng: Range) -> SqlError:
    return SqlError(
        "the input changed while its quantiles were computed in passes: "
        f"the values in [{rng.lo}, {rng.hi}] no longer number {rng.count}",
        hint="Run the query again when its input is not being written to.",
        details={"n": search.n, "range": msgspec.to_builtins(rng)},
    )
