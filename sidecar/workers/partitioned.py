"""Partitioned execution of one query on the local worker pool: the first executor of a `Plan`.

The planner (`sidecar.partition`) says what to run; this module runs it through the
supervised engine's own job loop, so every step gets admission, the memory ceiling, the
retry ladder and the database's turn like any other job:

1. `DESCRIBE` the original query (the names and types the answer must have);
2. `CREATE SCHEMA "__bmad_job_<8 hex>"` in the database the query names;
3. one job per part: `CREATE TABLE "<schema>".part_<i> AS <part sql>` (one transaction, so a
   failed or killed attempt leaves nothing and the ladder may repeat it);
4. a view `"<schema>"._parts` over the union of the part tables, and the combine as the final
   job, with the user's `output` and `max_rows`;
5. `DROP SCHEMA ... CASCADE`, always.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
from sqlglot import exp, parse_one

from sidecar.engine.executor import Attempt, QuerySpec
from sidecar.engine.monitor import Cancellation, Sample
from sidecar.errors import InvalidParams, SidecarError
from sidecar.partition import PARTS_RELATION, Bucket, Plan, Unsplittable, plan_partitioned
from sidecar.workers.shape import holistic

if TYPE_CHECKING:
    from sidecar.config import Settings
    from sidecar.workers.engine import SupervisedEngine

__all__ = ["SCHEMA_PREFIX", "plan_for", "run_partitioned", "splittable"]

log = logging.getLogger(__name__)

SCHEMA_PREFIX = "__bmad_job_"


def plan_for(sql: str, parts: int) -> Plan:
    """The plan the local executor can run; a full ORDER BY without LIMIT is refused for now."""
    try:
        plan = plan_partitioned(sql, parts)
    except InvalidParams as exc:
        if exc.details.get("shape") != "sorted_ranges":
            raise
        raise Unsplittable(
            "sorted_ranges",
            "a full ORDER BY without LIMIT is not run partitioned yet (it needs sampled range bounds)",
            hint="Add a LIMIT, drop the ORDER BY, or run the query unsplit.",
            sql=sql,
        ) from exc
    if plan.combine.kind != "union_then" or plan.combine.sql is None:
        raise Unsplittable("sorted_ranges", "concatenating sorted ranges is not run partitioned yet", sql=sql)
    return plan


def splittable(sql: str) -> bool:
    """Whether the planner can split `sql` (asked only after a memory failure, by the ladder)."""
    try:
        plan_for(sql, 2)
    except SidecarError as exc:
        log.debug("not splittable (%s): %s", exc.code, exc)
        return False
    return True


def _combine_sql(plan: Plan, schema: str, names: list[str]) -> tuple[str, bool]:
    """The combine reading `"<schema>"._parts`, its output columns named `names`.

    Returns the SQL and whether the view must rename the part columns instead: a combine that
    selects `*` passes the part columns through (the planner appends its own `__bmad_order_*`
    columns after the user's), so those are renamed in the view; a combine that computes its
    columns (global aggregates) gets an alias on each.
    """
    tree = parse_one(plan.combine.sql or "", read="duckdb")
    for table in tree.find_all(exp.Table):
        if table.name == plan.combine.relation and not table.args.get("db"):
            table.set("db", exp.to_identifier(schema, quoted=True))
    projections = tree.expressions if isinstance(tree, exp.Select) else []
    if any(isinstance(p, exp.Star) or (isinstance(p, exp.Column) and p.is_star) for p in projections):
        return tree.sql("duckdb"), True
    if len(projections) != len(names):
        raise InvalidParams(
            f"the partitioned combine has {len(projections)} columns but the query has {len(names)}",
            details={"combine": plan.combine.sql, "columns": names},
        )
    tree.set(
        "expressions",
        [
            exp.alias_(p.unalias() if isinstance(p, exp.Alias) else p, n, quoted=True)
            for p, n in zip(projections, names)
        ],
    )
    return tree.sql("duckdb"), False


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _CleanupCall(Cancellation):
    """Runs the scratch schema's DROP even after the request was cancelled: it is never cancelled itself."""

    def __init__(self, call: Any) -> None:
        super().__init__()
        self.id = call.id
        self._call = call

    def cancelled_error(self) -> SidecarError:
        return self._call.cancelled_error()  # type: ignore[no-any-return]


def run_partitioned(
    engine: SupervisedEngine,
    spec: QuerySpec,
    settings: Settings,
    call: Any,
    on_sample: Callable[[Sample], None] | None,
    database: str,
    parts: int,
    *,
    number: int = 1,
    rung: str = "partition",
) -> tuple[dict[str, Any], Attempt]:
    """Run `spec` as `parts` parts plus a combine; returns the final result and one Attempt for it all."""
    plan = plan_for(spec.sql, parts)
    started = time.monotonic()
    schema = f"{SCHEMA_PREFIX}{spec.job_id or secrets.token_hex(4)}"
    peak = [0]
    ceiling = [0, 0, settings.threads]

    def job(sql: str, *, final: bool = False, params: Any = None, on: Any = call) -> dict[str, Any]:
        sub = msgspec.structs.replace(
            spec,
            sql=sql,
            params=params,
            output=spec.output if final else None,
            max_rows=spec.max_rows if final else 100_000,
        )
        result: dict[str, Any] = engine._run(
            "query",
            sub,
            settings,
            on,
            on_sample if final else _without_done(on_sample),
            database,
            idempotent=True,
            exports=final and spec.output is not None,
            holistic=lambda: holistic(sql),
        )
        stats = result.get("stats", {})
        peak[0] = max(peak[0], stats.get("peak_rss_bytes", 0))
        for attempt in stats.get("attempts", [])[-1:]:
            ceiling[0] = max(ceiling[0], attempt["ceiling_bytes"])
            ceiling[1] = max(ceiling[1], attempt["duckdb_memory_limit_bytes"])
            ceiling[2] = min(ceiling[2], attempt["threads"])
        return result

    described = job(f"SELECT column_name FROM (DESCRIBE {spec.sql.strip().rstrip(';')})", params=spec.params)
    names = [row[0] for row in described["rows"]]
    combine, rename_view = _combine_sql(plan, schema, names)
    fingerprint = plan.to_json().decode()
    done = _prepare_schema(job, schema, fingerprint, spec.job_id)
    tables: list[str] = []
    resplit: list[str] = []
    succeeded = False
    try:
        for part in plan.parts:
            if on_sample is not None:
                on_sample(
                    Sample(
                        "partition",
                        100.0 * part.index / parts,
                        int((time.monotonic() - started) * 1000),
                        0,
                        0,
                        0,
                    )
                )
            tables.extend(
                _run_part(job, spec, schema, f"part_{part.index}", part.sql, [Bucket(parts, part.index, 0)], done, resplit)
            )
        union = " UNION ALL ".join(f"SELECT * FROM {_quoted(schema)}.{t}" for t in tables)
        aliases = f" AS u({', '.join(_quoted(n) for n in names)})" if rename_view else " AS u"
        job(f"CREATE OR REPLACE VIEW {_quoted(schema)}.{PARTS_RELATION} AS SELECT * FROM ({union}){aliases}")
        placeholders = any(parse_one(combine, read="duckdb").find_all(exp.Placeholder, exp.Parameter))
        result = job(combine, final=True, params=spec.params if placeholders else None)
        succeeded = True
    finally:
        # A job with a job_id keeps its finished parts after a failure, so the same request resumes.
        if succeeded or spec.job_id is None:
            try:
                job(f"DROP SCHEMA IF EXISTS {_quoted(schema)} CASCADE", on=_CleanupCall(call))
            except SidecarError:
                log.warning("could not drop the scratch schema %s in %s", schema, database, exc_info=True)
    reused = sum(1 for t in tables if t in done)
    elapsed = int((time.monotonic() - started) * 1000)
    stats = result["stats"]
    stats["partitions"] = parts
    stats["reused_parts"] = reused
    stats["resplit_parts"] = len(resplit)
    stats["elapsed_ms"] = float(elapsed)
    stats["peak_rss_bytes"] = peak[0]
    attempt = Attempt(number, rung, ceiling[0], ceiling[1], ceiling[2], "ok", elapsed, peak[0])
    return result, attempt


RESPLIT_PARTS = 4
"""A part that runs out of memory is split again into this many parts, by a salted sub-hash."""


MAX_RESPLIT_DEPTH = 3


def _run_part(
    job: Callable[..., dict[str, Any]],
    spec: QuerySpec,
    schema: str,
    name: str,
    sql: str,
    within: list[Bucket],
    done: set[str],
    resplit: list[str],
) -> list[str]:
    """Compute one part into its table, or, when it runs out of memory, into sub-part tables.

    Returns the tables holding the part's rows. A re-split keeps the part's own buckets and
    shares its rows out again by a hash with a new salt (recursively, up to MAX_RESPLIT_DEPTH), so
    a part that drew more groups than its share does not sink the job. A single huge group still
    cannot be split: it must stay whole, and its part fails with the memory error.
    """
    if name in done:  # finished by an earlier run of the same job_id
        return [name]
    if not any(t.startswith(name + "_") for t in done):
        try:
            job(f"CREATE TABLE {_quoted(schema)}.{name} AS {sql}", params=spec.params)
            return [name]
        except SidecarError as error:
            if error.code != "OUT_OF_MEMORY" or len(within) > MAX_RESPLIT_DEPTH:
                raise
            log.info("%s ran out of memory; splitting it again in %d", name, RESPLIT_PARTS)
    sub = plan_partitioned(spec.sql, RESPLIT_PARTS, salt=len(within), within=within)
    resplit.append(name)
    tables = []
    for subpart in sub.parts:
        inner = [*within, Bucket(RESPLIT_PARTS, subpart.index, len(within))]
        tables.extend(_run_part(job, spec, schema, f"{name}_{subpart.index}", subpart.sql, inner, done, resplit))
    return tables


def _prepare_schema(job: Callable[..., dict[str, Any]], schema: str, fingerprint: str, job_id: str | None) -> set[str]:
    """Create the job's scratch schema, or find the parts an earlier run of the same job finished.

    The schema records the plan it was made for; a job_id reused for another query or another
    number of parts is refused rather than mixing parts of two plans.
    """
    existing = job(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = $1", params=[schema]
    )["rows"]
    tables = {row[0] for row in existing}
    if not tables:
        job(f"CREATE SCHEMA IF NOT EXISTS {_quoted(schema)}")
        job(f"CREATE TABLE {_quoted(schema)}.__plan AS SELECT $1::VARCHAR AS plan", params=[fingerprint])
        return set()
    recorded = job(f"SELECT plan FROM {_quoted(schema)}.__plan")["rows"] if "__plan" in tables else []
    if not recorded or recorded[0][0] != fingerprint:
        raise InvalidParams(
            f"job_id '{job_id}' belongs to another query or another number of parts",
            hint="Use a new job_id, or `jobs.cancel` this one to discard its finished parts.",
            details={"job_id": job_id},
        )
    return {t for t in tables if t.startswith("part_")}


def _without_done(on_sample: Callable[[Sample], None] | None) -> Callable[[Sample], None] | None:
    """A part's samples, minus its 'done': only the job's last step ends it for the client."""
    if on_sample is None:
        return None
    listener = on_sample
    return lambda sample: None if sample.phase == "done" else listener(sample)
