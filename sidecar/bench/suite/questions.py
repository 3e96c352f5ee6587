"""The questions a benchmark asks, their classes of work, and the suites that group them.

Every question folds its answer to a few rows, so nothing large crosses into Python and the
answer's fingerprint (as db-benchmark's `chk`) is cheap to compare across sides and runs. The
same SQL text runs on both sides: `{x}` and the other placeholders become `read_parquet(...)`
of the cached files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sidecar.bench.suite.data import Dataset, rows_for
from sidecar.bench.suite.tpch import TPCH_QUERIES
from sidecar.errors import InvalidParams, did_you_mean

__all__ = [
    "CLASSES",
    "DEFAULT_SIZES",
    "MEMORY_BUDGETS",
    "SUITES",
    "Question",
    "question_named",
    "questions_for",
    "render_sql",
]

CLASSES = ("scan_filter", "groupby_low", "groupby_high", "join_small", "join_big", "sort", "window",
           "distinct", "holistic", "compute", "load", "tpch")  # fmt: skip


@dataclass(frozen=True)
class Question:
    name: str
    cls: str
    dataset: str
    """The dataset it reads (`h2o`, `load`, `tpch`), or "" for none."""
    sql: str
    writes: bool = False
    """It writes a file to `{out}` (a load); its answer is the row count COPY returns."""


_H2O = [
    Question("scan_filter", "scan_filter", "h2o",
             "SELECT count(*), sum(v3)::DOUBLE FROM {x} WHERE v2 > 12 AND id4 <= 50"),
    Question("groupby_low", "groupby_low", "h2o",
             "SELECT count(*), sum(v1)::BIGINT FROM (SELECT id1, sum(v1) AS v1 FROM {x} GROUP BY id1)"),
    Question("groupby_high", "groupby_high", "h2o",
             "SELECT count(*), sum(v1)::BIGINT, sum(v3)::DOUBLE FROM "
             "(SELECT id3, sum(v1) AS v1, avg(v3) AS v3 FROM {x} GROUP BY id3)"),
    Question("groupby_all", "groupby_high", "h2o",
             "SELECT count(*), sum(v3)::DOUBLE, sum(n)::BIGINT FROM (SELECT id1, id2, id3, id4, id5, id6, "
             "sum(v3) AS v3, count(*) AS n FROM {x} GROUP BY id1, id2, id3, id4, id5, id6)"),
    Question("join_small", "join_small", "h2o",
             "SELECT count(*), sum(x.v1 * s.s1)::DOUBLE FROM {x} x JOIN {small} s USING (id1)"),
    Question("join_medium", "join_big", "h2o",
             "SELECT count(*), sum(x.v3 + m.m1)::DOUBLE, sum(m.id6m)::BIGINT FROM {x} x JOIN {medium} m USING (id3)"),
    Question("join_big", "join_big", "h2o",  # both sides carry every row: the build side is the whole table
             "SELECT count(*), sum(a.v3 + b.v2)::DOUBLE FROM {xr} a JOIN {xr} b "
             "ON a.file_row_number = b.file_row_number"),
    Question("sort", "sort", "h2o",  # a top-N with its offset at half the table sorts half of it at least
             "SELECT v3, id3 FROM {x} ORDER BY v3, id3 LIMIT 10 OFFSET {half}"),
    Question("window", "window", "h2o",
             "SELECT count(*), sum(rn)::BIGINT FROM "
             "(SELECT row_number() OVER (PARTITION BY id3 ORDER BY v3) AS rn FROM {x})"),
    Question("distinct", "distinct", "h2o", "SELECT count(*), sum(id4)::BIGINT FROM (SELECT DISTINCT id2, id4, id6 FROM {x})"),
    Question("count_distinct", "distinct", "h2o", "SELECT count(DISTINCT id3), count(DISTINCT v3) FROM {x}"),
    Question("holistic", "holistic", "h2o",
             "SELECT count(*), sum(m)::DOUBLE, sum(q)::DOUBLE FROM (SELECT id4, id5, median(v3) AS m, "
             "quantile_cont(v3, 0.9) AS q FROM {x} GROUP BY id4, id5)"),
    # CPU-bound and parallel (range() alone is one thread): the question a threads change must move
    Question("cpu_hash", "compute", "h2o",
             "SELECT sum(hash(x.v3 * t.k + x.id4) % 1000)::BIGINT FROM {x} x, range(15) t(k)"),
]  # fmt: skip
_LOAD = [
    Question("load_csv", "load", "load", "COPY (SELECT * FROM read_csv('{csv}')) TO '{out}' (FORMAT parquet)", True),
    Question("load_ndjson", "load", "load", "COPY (SELECT * FROM read_json('{ndjson}')) TO '{out}' (FORMAT parquet)",
             True),
]  # fmt: skip
_TPCH = [Question(f"tpch_q{i:02d}", "tpch", "tpch", sql) for i, sql in enumerate(TPCH_QUERIES, start=1)]
_ALL = {q.name: q for q in _H2O + _LOAD + _TPCH}

_MEMORY = ("groupby_all", "join_big", "sort", "window", "holistic")
SUITES: dict[str, tuple[str, ...]] = {
    "smoke": ("scan_filter", "groupby_low", "groupby_high", "join_small", "window", "holistic", "load_csv"),
    "query": tuple(q.name for q in _H2O),
    "load": tuple(q.name for q in _LOAD),
    "memory": _MEMORY,
    "tpch": tuple(q.name for q in _TPCH),
}
SUITES["all"] = SUITES["query"] + SUITES["load"] + SUITES["tpch"]
DEFAULT_SIZES: dict[str, tuple[str, ...]] = {
    "smoke": ("1MB",),
    **{s: ("1MB", "100MB", "1GB") for s in ("query", "load", "memory", "tpch", "all")},
}
MEMORY_BUDGETS: tuple[float | None, ...] = (None, 4.0, 1.0, 0.25)
"""The `memory` suite's sweep: no limit, then 4x, 1x and 1/4 of the input's size."""


def questions_for(suite: str, names: list[str] | None = None) -> list[Question]:
    """The questions of `suite` (all of them, or those `names` picks), or INVALID_PARAMS naming what exists."""
    if suite not in SUITES:
        raise InvalidParams(
            f"unknown suite {suite!r}{did_you_mean(suite, SUITES)}",
            hint=f"Suites: {', '.join(SUITES)}.",
        )
    chosen = list(SUITES[suite])
    if names:
        unknown = [n for n in names if n not in chosen]
        if unknown:
            raise InvalidParams(
                f"question {unknown[0]!r} is not in suite {suite!r}{did_you_mean(unknown[0], chosen)}",
                hint=f"Questions of {suite}: {', '.join(chosen)}.",
            )
        chosen = [n for n in chosen if n in names]
    return [_ALL[n] for n in chosen]


def render_sql(question: Question, dataset: Dataset | None, size_bytes: int, out: str) -> str:
    """The question's SQL with its placeholders filled in for one size."""
    rows = rows_for(size_bytes)
    fill: dict[str, object] = {"out": out, "half": rows // 2}
    if dataset is not None:
        files: Mapping[str, object] = dataset.files
        fill.update({k: f"read_parquet('{p}')" for k, p in files.items() if str(p).endswith(".parquet")})
        fill.update({k: str(p) for k, p in files.items() if not str(p).endswith(".parquet")})
        if "x" in files:
            fill["xr"] = f"read_parquet('{files['x']}', file_row_number = true)"
    return question.sql.format(**fill)


def question_named(name: str) -> Question:
    """A question of any suite by name (re-running a recorded run's suspects)."""
    if name not in _ALL:
        raise InvalidParams(f"unknown question {name!r}{did_you_mean(name, _ALL)}")
    return _ALL[name]
