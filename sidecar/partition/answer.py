"""Can this query be split, and how: the planner's answer as a value, never an exception to parse.

`how_to_split(sql, parts)` plans once and answers with one of:

- `HashSplit`: a `Plan` whose parts share the rows out by a hash of the query's keys;
- `RangeSplit`: a full ORDER BY, split by ranges of its first sort key once bounds are sampled
  from the data (`sample_sql` reads them; `plan_partitioned(sql, n, bounds=...)` then plans it);
- `QuantilePasses`: a global SELECT with median/quantiles, answered exactly in passes;
- `CannotSplit`: the shape found and why it does not split (`error()` is the refusal to show).

Bad arguments (parts out of range) are still errors: they are the caller's mistake, not an answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.partition.plan import NeedsBounds, Plan, Unsplittable
from sidecar.partition.planner import plan_partitioned
from sidecar.partition.ranges import sort_key_sample_sql
from sidecar.partition.quantiles import QuantilePlan, has_quantiles, plan_quantiles

__all__ = ["CannotSplit", "HashSplit", "QuantilePasses", "RangeSplit", "SplitAnswer", "how_to_split"]


@dataclass(frozen=True)
class HashSplit:
    plan: Plan


@dataclass(frozen=True)
class RangeSplit:
    sample_sql: str
    """Samples `parts - 1` bounds of the first sort key (see sort_key_sample_sql)."""


@dataclass(frozen=True)
class QuantilePasses:
    plan: QuantilePlan


@dataclass(frozen=True)
class CannotSplit:
    shape: str
    """What was found: global_aggregate, plain_select, sorted_ranges, ... (see Unsplittable)."""
    reason: str
    hint: str
    sql: str | None = None

    def error(self) -> Unsplittable:
        """The refusal a request that asked for a split gets (SQL_ERROR naming the shape)."""
        return Unsplittable(self.shape, self.reason, hint=self.hint, sql=self.sql)


SplitAnswer = HashSplit | RangeSplit | QuantilePasses | CannotSplit


def how_to_split(sql: str, parts: int) -> SplitAnswer:
    """How `sql` splits into `parts` parts whose combination is exactly its answer.

    >>> how_to_split("SELECT k, count(*) FROM t GROUP BY k", 2).plan.shape
    'group_by'
    >>> type(how_to_split("SELECT i FROM t ORDER BY i", 2)).__name__
    'RangeSplit'
    >>> type(how_to_split("SELECT median(v) FROM t", 2)).__name__
    'QuantilePasses'
    >>> how_to_split("SELECT i FROM t", 2).shape
    'plain_select'
    """
    try:
        if has_quantiles(sql):
            return QuantilePasses(plan_quantiles(sql, parts))
        try:
            return HashSplit(plan_partitioned(sql, parts))
        except NeedsBounds:
            return RangeSplit(sort_key_sample_sql(sql, parts))
    except Unsplittable as refused:
        sql_text = refused.details.get("sql")
        return CannotSplit(
            refused.shape, refused.reason, refused.hint, sql_text if isinstance(sql_text, str) else None
        )
