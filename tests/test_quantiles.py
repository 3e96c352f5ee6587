"""Exact global quantiles in passes: equal, value for value and type for type, to DuckDB unsplit.

The plan's SQL is pure; here DuckDB runs it. In-process: property tests over every supported
type with NULLs, duplicates, skew, infinities and NaN, driving the passes with tiny bins so the
search narrows many times; DuckDB's rank rules measured against `pick`. Over real stdio: the
issue's query shape with `partition: {parts: 4}`, and a real OUT_OF_MEMORY under a hard 128 MiB
ceiling recovered by the ladder's partition rung.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.client import RpcError, SidecarProcess
from sidecar.errors import SqlError
from sidecar.partition import Unsplittable
from sidecar.partition.quantile_values import QuantileParam, final_sql, literal, pick, value_kind
from sidecar.partition.quantiles import QuantilePlan, bind_params, has_quantiles, number_placeholders, plan_quantiles
from sidecar.jobs.quantile_passes import compute_answers
from conftest import examples

# -- an in-process executor ----------------------------------------------------------------------


def run_plan(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    params: Any = None,
    *,
    bins: int = 1024,
    exact_rows: int = 1 << 20,
) -> tuple[list[tuple[Any, ...]], list[tuple[str, str]], int]:
    """The plan run step by step in `con`: (rows as VARCHAR, (name, type) columns, statements run)."""
    plan = plan_quantiles(sql, 3, bins=bins, exact_rows=exact_rows)
    assert QuantilePlan.from_json(plan.to_json()) == plan
    statements = [0]

    def rows(statement: str) -> list[list[Any]]:
        statements[0] += 1
        bound, values = bind_params(statement, params)
        return [list(r) for r in con.execute(bound, values).fetchall()]

    values: dict[str, str] = {}
    if plan.others_sql is not None:
        kinds = [r[1] for r in rows(f"DESCRIBE {plan.others_typed}")]
        (texts,) = rows(plan.others_sql)
        values = {f"__bmad_a{j}": literal(t, k) for j, (t, k) in enumerate(zip(texts, kinds))}
    values.update(compute_answers(plan, rows))
    final = final_sql(plan, describe(con, sql, params), values)
    return as_text(con, final, params), describe(con, final, params), statements[0]


def describe(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> list[tuple[str, str]]:
    sql, params = bind_params(number_placeholders(sql), params)
    return [(r[0], r[1]) for r in con.execute(f"DESCRIBE {sql}", params).fetchall()]


def as_text(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Rows as DuckDB's VARCHAR of each value: exact, and NaN equals NaN."""
    sql, params = bind_params(number_placeholders(sql), params)
    return con.execute(f"SELECT CAST(COLUMNS(*) AS VARCHAR) FROM ({sql})", params).fetchall()


def assert_same(con: duckdb.DuckDBPyConnection, sql: str, params: Any = None, **knobs: int) -> int:
    got, types, statements = run_plan(con, sql, params, **knobs)
    assert got == as_text(con, sql, params), sql
    assert types == describe(con, sql, params)
    return statements


# -- every supported type, in process --------------------------------------------------------------

EPOCH = dt.datetime(1970, 1, 1)


def _texts(kind: str, draw: Any) -> list[str | None]:
    """Values of `kind` as DuckDB literals: a small pool (duplicates), skew, extremes, NULLs."""
    ints = st.integers(-(10**6), 10**6)
    if kind in ("TINYINT",):
        pool = st.integers(-128, 127).map(str)
    elif kind == "UBIGINT":
        pool = st.one_of(st.integers(0, 10**6), st.integers(0, 2**64 - 1)).map(str)
    elif kind == "HUGEINT":
        pool = st.one_of(ints, st.integers(-(2**127) + 1, 2**127 - 1)).map(str)
    elif kind == "UHUGEINT":
        pool = st.one_of(ints.map(abs), st.integers(0, 2**128 - 1)).map(str)
    elif kind in ("INTEGER", "BIGINT"):
        pool = ints.map(str)
    elif kind in ("DOUBLE", "FLOAT"):
        finite = st.floats(allow_nan=False, allow_infinity=False, width=64 if kind == "DOUBLE" else 32)
        pool = st.one_of(
            finite.filter(lambda x: x != 0 or math.copysign(1, x) > 0).map(repr),
            st.sampled_from(
                [
                    "inf",
                    "-inf",
                    "nan",
                    "0.0",
                    "1e-310",
                    "1.7976931348623157e308" if kind == "DOUBLE" else "3e38",
                ]
            ),
        )
    elif kind.startswith("DECIMAL"):
        scale = int(kind.split(",")[1].rstrip(")"))
        digits = int(kind.split("(")[1].split(",")[0])
        pool = st.integers(-(10**digits) + 1, 10**digits - 1).map(lambda i: _decimal_text(i, scale))
    elif kind == "DATE":
        pool = st.one_of(
            st.integers(-5000, 5000).map(lambda d: str(dt.date(2000, 1, 1) + dt.timedelta(days=d))),
            st.sampled_from(["infinity", "-infinity", "0001-01-01", "9999-12-31"]),
        )
    else:
        micros = st.integers(-(10**15), 10**15)
        pool = st.one_of(
            micros.map(lambda u: (EPOCH + dt.timedelta(microseconds=u)).isoformat(sep=" ")),
            st.sampled_from(["infinity", "-infinity"]),
        )
    values = draw(st.lists(pool, min_size=1, max_size=8, unique=True))
    size = draw(st.integers(0, 40))
    chosen = draw(st.lists(st.integers(0, len(values)), min_size=size, max_size=size))  # len(values): NULL
    return [values[i] if i < len(values) else None for i in chosen]


def _decimal_text(unscaled: int, scale: int) -> str:
    digits = str(abs(unscaled)).rjust(scale + 1, "0")
    return ("-" if unscaled < 0 else "") + digits[: len(digits) - scale] + "." + digits[len(digits) - scale :]


TYPES = [
    "TINYINT",
    "INTEGER",
    "BIGINT",
    "UBIGINT",
    "HUGEINT",
    "UHUGEINT",
    "DOUBLE",
    "FLOAT",
    "DECIMAL(18,3)",
    "DECIMAL(38,10)",
    "DATE",
    "TIMESTAMP",
    "TIMESTAMP_NS",
    "TIMESTAMP WITH TIME ZONE",
]
FRACTIONS = ["0", "0.1", "0.5", "0.9", "1", "0.25::DOUBLE", "-0.3", "1/3", "0.56::FLOAT"]


@st.composite
def cases(draw: Any) -> tuple[str, list[str | None], str, str]:
    kind = draw(st.sampled_from(TYPES))
    texts = _texts(kind, draw)
    p = draw(st.sampled_from(FRACTIONS))
    q = draw(st.sampled_from(FRACTIONS))
    return kind, texts, p, q


@given(cases(), st.sampled_from([(2, 1), (4, 3), (1024, 1 << 20)]))
@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_every_type_matches_duckdb_exactly(
    case: tuple[str, list[str | None], str, str], knobs: tuple[int, int]
) -> None:
    kind, texts, p, q = case
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("CREATE TABLE src (s VARCHAR)")
    if texts:
        con.executemany("INSERT INTO src VALUES (?)", [[t] for t in texts])
    con.execute(f"CREATE TABLE t AS SELECT CAST(s AS {kind}) AS x FROM src")
    sql = (
        f"SELECT median(x) AS m, quantile_cont(x, {p}) AS c, quantile_disc(x, {q}) AS d, "
        f"quantile(x, [{p}, {q}]) AS l, count(x) AS n FROM t"
    )
    if p.startswith("-") or q.startswith("-"):  # DuckDB refuses a list of p with mixed signs
        sql = sql.replace(f"quantile(x, [{p}, {q}]) AS l", f"quantile_cont(x, [{p}]) AS l")
    bins, exact_rows = knobs
    assert_same(con, sql, bins=bins, exact_rows=exact_rows)


def test_extremes_of_each_type_are_binned_exactly() -> None:
    """Spreads too wide for HUGEINT arithmetic halve at exact midpoints; doubles near the top of their
    range are binned by halves; subnormals and the ends of every range stay exact."""
    con = duckdb.connect()
    tables = {
        "HUGEINT": [str(-(2**127) + 1), str(2**127 - 1), "0", "-1", "1", str(2**100)],
        "UHUGEINT": ["0", str(2**128 - 1), str(2**127), "5"],
        "DECIMAL(38,0)": [str(-(10**38) + 1), str(10**38 - 1), "0", "7"],
        "DECIMAL(38,30)": [
            "-99999999.999999999999999999999999999999",
            "99999999.999999999999999999999999999999",
            "0.1",
        ],
        "DOUBLE": [
            "-1.7976931348623157e308",
            "1.7976931348623157e308",
            "5e-324",
            "1e-323",
            "0.0",
            "2.5e-308",
        ],
        "BIGINT": [str(-(2**63)), str(2**63 - 1), "0"],
        "TIMESTAMP_NS": [
            "1677-09-22 00:00:00",
            "2262-04-11 23:47:16.854775806",
            "2000-01-01 00:00:00.000000001",
        ],
        "DATE": ["5877642-06-25 (BC)", "5881580-07-10", "2000-01-01"],
    }
    for kind, texts in tables.items():
        con.execute("CREATE OR REPLACE TABLE src (s VARCHAR)")
        # every value many times, so ranges hold more than exact_rows and must be binned
        con.executemany("INSERT INTO src VALUES (?)", [[t] for t in texts for _ in range(5)])
        con.execute(f"CREATE OR REPLACE TABLE t AS SELECT CAST(s AS {kind}) AS x FROM src")
        sql = "SELECT median(x), quantile_disc(x, [0.1, 0.3, 0.7, 0.95]), quantile_cont(x, 0.61) FROM t"
        assert_same(con, sql, bins=8, exact_rows=2)


def test_pick_matches_duckdbs_ranks() -> None:
    """quantile_disc's index and quantile_cont's order statistics, as DuckDB 2.0.1 computes them over
    range(n): DECIMAL p exact, DOUBLE p truncated to 15 places (measured: 458k cases, no exception)."""
    rng = random.Random(5)
    con = duckdb.connect()
    ps = [
        "0.56",
        "0.56::DOUBLE",
        "0.30000000000000004::DOUBLE",
        "0.5000000000000001",
        "0.5000000000000001::DOUBLE",
    ]
    ps += ["1/3", "2/3", "0.54::DOUBLE", "0.68", "-0.7", "-0.25::DOUBLE", "0.56::FLOAT", "0", "1", "1e-16"]
    ps += [repr(rng.random()) + "::DOUBLE" for _ in range(6)] + [
        str(round(rng.random(), 3)) for _ in range(6)
    ]
    top = 700
    for p in ps:
        ptype, ptext, pdouble = con.execute(
            f"SELECT typeof({p}), CAST({p} AS VARCHAR), CAST({p} AS DOUBLE)"
        ).fetchone()
        param = QuantileParam(ptext, ptype.startswith("DECIMAL"), pdouble)
        rows = con.execute(
            f"SELECT n, quantile_disc(i, {p}), quantile_cont(i::DOUBLE, {p}) FROM range(1, {top}) a(n), range({top}) b(i) "
            "WHERE i < n GROUP BY n"
        ).fetchall()
        for n, disc, cont in rows:
            assert pick("quantile_disc", n, param).ranks == (disc,), (p, n)
            chosen = pick("quantile_cont", n, param)
            low, high = chosen.ranks[0], chosen.ranks[-1]
            want = (
                low + (high - low) * abs(chosen.fraction)
                if low <= high
                else low - (low - high) * abs(chosen.fraction)
            )
            assert want == cont, (p, n)


def test_the_query_around_the_quantiles_is_kept() -> None:
    """Expressions over aggregates, HAVING, LIMIT/OFFSET, FILTER, joins, CTEs, parameters, lateral aliases."""
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t AS SELECT i, hash(i) % 1000 AS v, (i % 7)::INTEGER AS k, "
        "CASE WHEN i % 11 = 0 THEN NULL ELSE (hash(i) % 100000) / 8.0 END AS w FROM range(20000) r(i)"
    )
    con.execute("CREATE TABLE u AS SELECT range::INTEGER AS k, range * 10 AS z FROM range(5)")
    for sql, params in [
        ("SELECT median(w) - avg(w) AS spread, count(DISTINCT k) AS kinds FROM t", None),
        ("SELECT median(w) AS m, m * 2 AS twice, quantile_cont(v, 0.25) FILTER (WHERE k > 2) FROM t", None),
        ("SELECT median(v) FROM t HAVING count(*) > 10", None),
        ("SELECT median(v) FROM t HAVING count(*) > 10 ** 9", None),
        ("SELECT median(v), sum(v) FROM t LIMIT 0", None),
        (
            "WITH c AS (SELECT * FROM t WHERE k <> 3) SELECT quantile_disc(c.v + u.z, 0.3) FROM c JOIN u USING (k)",
            None,
        ),
        ("SELECT quantile_cont(w, ?) + ?, max(v) FILTER (WHERE k = ?) FROM t WHERE i > ?", [0.75, 1, 2, 100]),
        ("SELECT quantile_disc(w, $p) AS q FROM t WHERE k = $k", {"p": 0.4, "k": 3, "unused": 0}),
        ("SELECT median(w) FROM t WHERE false", None),
        ("SELECT median(w), count(*) FROM t WHERE w IS NULL", None),
        ("SELECT median(v) FROM t GROUP BY ()", None),
    ]:
        if isinstance(params, dict):
            params = {k: v for k, v in params.items() if k != "unused"}
        assert_same(con, sql, params, bins=16, exact_rows=100)


def test_passes_are_few_and_quantiles_of_one_series_share_them() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT (hash(i) % 1000000)::BIGINT AS v FROM range(300000) r(i)")
    sql = "SELECT median(v), quantile_cont(v, 0.9), quantile_disc(v, [0.1, 0.2, 0.3]) FROM t"
    # p, describe, count, one bin pass, one exact pass
    assert assert_same(con, sql, exact_rows=10_000) == 5
    assert assert_same(con, sql) == 4  # under exact_rows from the start: count, then exact
    con.execute("CREATE TABLE hundred AS SELECT range AS v FROM range(100)")
    # two bins of 25 hold the ranks; one exact pass reads at most exact_rows values, so two passes
    assert assert_same(con, "SELECT quantile_disc(v, [0.1, 0.9]) FROM hundred", bins=4, exact_rows=30) == 6


REFUSED = [
    ("SELECT k, median(v) FROM t GROUP BY k", "quantiles", "GROUP BY"),
    ("SELECT median(v) OVER () FROM t", "quantiles_window", "window"),
    ("SELECT median(v), rank() OVER (ORDER BY sum(v)) FROM t", "quantiles_window", "window"),
    ("SELECT median(DISTINCT v) FROM t", "quantiles", "DISTINCT"),
    ("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY v) FROM t", "quantiles", "WITHIN GROUP"),
    ("SELECT quantile_cont(v, k) FROM t", "quantiles", "not a constant"),
    ("SELECT median(median(v)) FROM t", "quantiles", "not a row expression"),
    ("SELECT median(v), string_agg(s, ',') FROM t", "global_aggregate", "cannot be re-combined"),
    ("SELECT sum(v) FROM t", "quantiles", "no median"),
]


@pytest.mark.parametrize(("sql", "shape", "words"), REFUSED)
def test_shapes_the_passes_do_not_cover_are_refused(sql: str, shape: str, words: str) -> None:
    with pytest.raises(Unsplittable) as err:
        plan_quantiles(sql, 2)
    assert err.value.details["shape"] == shape and words in str(err.value)


def test_types_ranges_do_not_fit_are_refused_with_a_hint() -> None:
    for name in ("VARCHAR", "INTERVAL", "BOOLEAN", "TIME", "DOUBLE[]"):
        with pytest.raises(Unsplittable) as err:
            value_kind(name, "SELECT median(x) FROM t")
        assert err.value.details["shape"] == "quantiles_type" and "memory_limit" in err.value.hint
    assert value_kind("timestamp with time zone").epoch == "epoch_us"
    assert value_kind("TIMESTAMPTZ_NS").epoch == "epoch_ns"


def test_recognised_shapes_and_parameters() -> None:
    assert has_quantiles("SELECT quantile(v, 0.5) FROM t")
    assert not has_quantiles("SELECT k, median(v) FROM t GROUP BY k")
    assert not has_quantiles("SELECT (SELECT median(v) FROM t)")  # no FROM at the top
    assert not has_quantiles("not sql at all (")
    assert number_placeholders("SELECT ? FROM t WHERE \"?\" = '?' AND x = ?") == (
        "SELECT $1 FROM t WHERE \"?\" = '?' AND x = $2"
    )
    assert bind_params("SELECT $2 AS x, '$1'", [1, 2, 3]) == ("SELECT $1 AS x, '$1'", [2])
    assert bind_params("SELECT 1", [1]) == ("SELECT 1", None)
    assert bind_params("SELECT $b", {"a": 1, "b": 2}) == ("SELECT $b", {"b": 2})


def test_input_that_changes_between_passes_is_an_error_not_a_wrong_answer() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT (hash(i) % 1000)::INTEGER AS v FROM range(5000) r(i)")
    plan = plan_quantiles("SELECT median(v) FROM t", 2, bins=4, exact_rows=10)

    def rows(statement: str) -> list[list[Any]]:
        if "__bmad_b" in statement:  # a bin pass, after the count pass: rows arrive in the range
            con.execute("INSERT INTO t VALUES (500), (501)")
        return [list(r) for r in con.execute(statement).fetchall()]

    with pytest.raises(SqlError, match="input changed"):
        compute_answers(plan, rows)


# -- over real stdio -------------------------------------------------------------------------------

ISSUE = "SELECT count(DISTINCT id6), median(v3), quantile_cont(v3, 0.9) FROM x"


@pytest.mark.timeout(60)
def test_the_issues_query_partitioned_equals_unsplit(sidecar: SidecarProcess, data_dir: Any) -> None:
    database = str(data_dir / "q.duckdb")
    sidecar.request(
        "query.run",
        {
            "sql": "CREATE TABLE x AS SELECT (hash(i) % 100000)::INTEGER AS id6, "
            "round((hash(i * 7) % 100000000) / 1e6, 6) AS v3 FROM range(2000000) r(i)",
            "database": database,
        },
        timeout=50,
    )
    whole = sidecar.request("query.run", {"sql": ISSUE, "database": database}, timeout=50)
    split = sidecar.request(
        "query.run",
        {"sql": ISSUE, "database": database, "partition": {"parts": 4}, "progress_token": "q"},
        timeout=50,
    )
    assert split["columns"] == whole["columns"] and split["rows"] == whole["rows"]
    (attempt,) = split["stats"]["attempts"]
    assert attempt["rung"] == "partition" and attempt["outcome"] == "ok"
    assert split["stats"]["partitions"] == 4
    phases = [n["params"]["value"]["phase"] for n in sidecar.notifications if n.get("method") == "$/progress"]
    assert phases.count("partition") >= 6 and phases.count("done") == 1 and phases[-1] == "done"
    leftover = sidecar.request(
        "query.run",
        {
            "sql": "SELECT count(*) FROM duckdb_schemas() WHERE schema_name LIKE '__bmad%'",
            "database": database,
        },
    )
    assert leftover["rows"] == [[0]]
    with pytest.raises(RpcError) as err:
        sidecar.request(
            "query.run",
            {
                "sql": "SELECT median(CAST(id6 AS VARCHAR)) FROM x",
                "database": database,
                "partition": {"parts": 2},
            },
        )
    assert err.value.code == "SQL_ERROR" and err.value.data["details"]["shape"] == "quantiles_type"


OOM = (
    "SELECT median(v) AS m, quantile_disc(v, 0.9) AS p90, quantile_cont(v, 0.1) AS p10, count(*) AS n "
    "FROM (SELECT hash(i) % 1000003 AS v FROM range(12000000) r(i))"
)


@pytest.mark.timeout(120)
def test_a_real_out_of_memory_on_a_global_median_is_recovered_exactly(sidecar: SidecarProcess) -> None:
    """Three quantile states of 12M values need ~300 MB; DuckDB at 128 MiB (a 256 MiB ceiling) fails.

    256 MiB rather than 128: after DuckDB's own OUT_OF_MEMORY its worker keeps ~55 MB of allocator
    memory, and at a 128 MiB ceiling any next job on it trips the watchdog's 95% mark.
    """
    budget = {"memory_limit": "256MiB"}  # an explicit budget: a hard ceiling, `grow` cannot help
    # `parts: 0`: no split up front (the estimate would split it before it runs), so the ladder is what recovers it
    request = {"sql": OOM, "settings": budget, "partition": {"parts": 0}}
    result = sidecar.request("query.run", request, timeout=100)
    first, *_, last = result["stats"]["attempts"]
    assert first["outcome"] in ("OUT_OF_MEMORY", "MEMORY_CEILING", "MEMORY_EMERGENCY"), result["stats"][
        "attempts"
    ]
    assert last["rung"] == "partition" and last["outcome"] == "ok"
    assert all(a["ceiling_bytes"] <= 256 * 1024**2 for a in result["stats"]["attempts"])
    whole = sidecar.request("query.run", {"sql": OOM}, timeout=100)  # unsplit, with the machine's memory
    assert [a["rung"] for a in whole["stats"]["attempts"]] == ["first"]
    assert result["rows"] == whole["rows"] and result["columns"] == whole["columns"]
    assert [c["name"] for c in result["columns"]] == ["m", "p90", "p10", "n"]


@pytest.mark.timeout(60)
def test_a_cancelled_quantile_run_stops_between_or_inside_its_passes(sidecar: SidecarProcess) -> None:
    sql = "SELECT median(v), quantile_disc(v, 0.3) FROM (SELECT hash(i) AS v FROM range(300000000) r(i))"
    request_id, future = sidecar.call(
        "query.run", {"sql": sql, "partition": {"parts": 2}, "progress_token": "c"}
    )
    sidecar.wait_for(  # the first bin pass is starting: the count pass (one scan) is done
        lambda n: (
            n.get("method") == "$/progress"
            and n["params"]["token"] == "c"
            and n["params"]["value"]["phase"] == "partition"
        ),
        timeout=40,
    )
    sidecar.cancel(request_id)
    with pytest.raises(RpcError) as err:
        future.result(timeout=30)
    assert err.value.code == "CANCELLED"
    assert sidecar.request("query.run", {"sql": "SELECT 42"})["rows"] == [[42]]
