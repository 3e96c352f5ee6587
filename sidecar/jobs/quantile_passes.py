"""Exact global quantiles in passes on the local worker pool: the executor of a `QuantilePlan`.

Every pass is an ordinary supervised job (admission, the memory ceiling, the retry ladder and
the database's turn), and each needs little memory: a count, bin counts, and an ordered read of
at most `exact_rows` values per wanted rank. In order:

1. `DESCRIBE` the query (the names and types the answer must have);
2. the other aggregates (sum, count(DISTINCT x), ...) as a reduced query through the partitioned
   executor, in `parts` parts, each value returned as its exact VARCHAR;
3. per series (quantile argument): its type, the count pass, bin passes, the exact pass;
4. the final job, with the user's `output` and `max_rows`: DuckDB's own quantile function over
   the one or two order statistics each quantile needs, every other aggregate as a literal.

A `job_id` resumes only the reduced query's parts; the quantile passes are recomputed (a few
scans, each far cheaper than the part that ran out of memory).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import msgspec

from sidecar.jobs.types import Attempt, QueryResult, QueryStats
from sidecar.errors import SqlError
from sidecar.partition.quantile_search import Search, bin_sql, count_sql, exact_sql, narrow, read_exact, start_search
from sidecar.partition.quantile_values import answer_sql, final_sql, literal, param_sql, pick, read_params, value_kind
from sidecar.partition.quantiles import QuantilePlan, Series, bind_params
from sidecar.jobs.partitioned import hash_plan, run_partitioned
from sidecar.jobs.executors import SERIAL, PartExecutor
from sidecar.jobs.steps import SplitRun, Steps, without_done

__all__ = ["MAX_PASSES", "PassSteps", "compute_answers", "run_quantiles"]

log = logging.getLogger(__name__)

MAX_PASSES = 200
"""Each bin pass leaves out at least one distinct value; real data needs a handful of passes."""

Run = Callable[[str], list[list[Any]]]


def compute_answers(
    plan: QuantilePlan, run: Run, on_pass: Callable[[int], None] | None = None
) -> dict[str, str]:
    """The SQL answer of every quantile call (by column), running each pass through `run`.

    `run(sql)` returns the rows of one statement; the executor runs it as a supervised job, the
    tests in an in-process DuckDB.
    """
    sql = param_sql(plan)
    params = read_params(plan, run(sql)[0]) if sql else {}
    answers: dict[str, str] = {}
    passes = 0
    for index, series in enumerate(plan.series):
        calls = [c for c in plan.calls if c.series == index]
        kind = value_kind(run(f"SELECT column_type FROM (DESCRIBE {series.source})")[0][0], plan.sql)
        first = run(count_sql(series, kind))[0]
        n = int(first[0])
        picks = {c.column: [pick(c.function, n, p) for p in params.get(c.column, (None,))] for c in calls}
        ranks = [r for chosen in picks.values() for p in chosen for r in p.ranks]
        search = start_search(kind, ranks if n else [], first)
        search = _search(plan, series, search, run, on_pass, passes)
        passes += search.passes
        values = search.values()
        for c in calls:
            answers[c.column] = answer_sql(c, kind, picks[c.column], values) if n else "NULL"
    return answers


def _search(
    plan: QuantilePlan,
    series: Series,
    search: Search,
    run: Run,
    on_pass: Callable[[int], None] | None,
    before: int,
) -> Search:
    """Bin passes until every wanted rank is in a small range or found, then exact passes."""
    while (sql := bin_sql(series, search, plan.bins, plan.exact_rows)) is not None:
        if search.passes >= MAX_PASSES:
            raise SqlError(
                f"the quantiles of {series.value} were still not isolated after {search.passes} passes",
                hint="The values spread over too many orders of magnitude for equal-width bins; give the "
                "query more memory, or take the quantile of log(x) where that is monotone for your data.",
            )
        if on_pass is not None:
            on_pass(before + search.passes)
        search = narrow(search, run(sql), plan.exact_rows)
    while (sql := exact_sql(series, search, plan.exact_rows)) is not None:
        if on_pass is not None:
            on_pass(before + search.passes)
        search = read_exact(search, run(sql), plan.exact_rows)
    return search


class PassSteps(Steps):
    """The passes of one request as supervised jobs (`Steps`), each given only the parameters it uses."""

    def rows(self, sql: str) -> list[list[Any]]:
        bound, params = bind_params(sql, self.spec.params)
        return list(self.run(bound, params=params).rows)

    def answer(self, sql: str) -> QueryResult:
        """The final step, with the user's `output` and `max_rows`."""
        bound, params = bind_params(sql, self.spec.params)
        return self.run(
            bound, params=params, output=self.spec.output, max_rows=self.spec.max_rows, final=True
        )

    def absorb(self, attempt: Attempt) -> None:
        """Take in the peaks of a step that ran through another executor."""
        self.peak = max(self.peak, attempt.peak_rss_bytes)
        self.ceiling = max(self.ceiling, attempt.ceiling_bytes)
        self.duckdb_limit = max(self.duckdb_limit, attempt.duckdb_memory_limit_bytes)
        self.threads = min(self.threads, attempt.threads)

    def passed(self, passes: int) -> None:
        """A 'partition' sample per pass; most queries need four (count, bins, exact, final)."""
        self.progress(passes, passes + 2)


def run_quantiles(
    request: SplitRun, parts: int, plan: QuantilePlan, executor: PartExecutor = SERIAL
) -> tuple[QueryResult, Attempt]:
    """Answer a global query with quantiles exactly, in passes (`plan`); the final result and one Attempt.

    The other aggregates' parts run on `executor`; the passes run one after another."""
    spec = request.spec
    steps = PassSteps(request)
    describe = f"SELECT column_name, column_type FROM (DESCRIBE {spec.sql.strip().rstrip(';')})"
    columns = [(str(name), str(kind)) for name, kind in steps.run(describe, params=spec.params).rows]
    values, others = _others(plan, steps, parts, executor)
    values.update(compute_answers(plan, steps.rows, steps.passed))
    result = steps.answer(final_sql(plan, columns, values))
    stats = msgspec.structs.replace(
        result.stats,
        partitions=parts,
        reused_parts=others.reused_parts or 0 if others else 0,
        resplit_parts=others.resplit_parts or 0 if others else 0,
        parts_at_once=others.parts_at_once if others else None,
        nodes=others.nodes if others else None,
        elapsed_ms=float(steps.elapsed_ms),
        peak_rss_bytes=steps.peak,
        peak_buffer_bytes=max(steps.buffer, others.peak_buffer_bytes if others else 0),
        peak_spill_bytes=max(steps.spill, others.peak_spill_bytes if others else 0),
    )
    result = msgspec.structs.replace(result, stats=stats)
    log.info("quantiles of %d series in %d ms", len(plan.series), steps.elapsed_ms)
    return result, request.attempt(steps)


def _others(
    plan: QuantilePlan, steps: PassSteps, parts: int, executor: PartExecutor
) -> tuple[dict[str, str], QueryStats | None]:
    """The other aggregates, each as an exact literal, computed by the partitioned executor."""
    if plan.others_sql is None or plan.others_typed is None:
        return {}, None
    types = [
        str(row[1])
        for row in steps.rows(f"SELECT column_name, column_type FROM (DESCRIBE {plan.others_typed})")
    ]
    sql, params = bind_params(plan.others_sql, steps.spec.params)
    sub = msgspec.structs.replace(steps.spec, sql=sql, params=params, output=None, max_rows=10)
    reduced = dataclasses.replace(steps.request, spec=sub, on_sample=without_done(steps.on_sample))
    result, attempt = run_partitioned(reduced, parts, hash_plan(sql, parts), executor)
    steps.absorb(attempt)
    (row,) = result.rows
    values = {f"__bmad_a{j}": literal(text, kind) for j, (text, kind) in enumerate(zip(row, types))}
    return values, result.stats
