"""How big a join's build side is, from DuckDB's own plan, and how many parts that asks for.

DuckDB builds its hash table on the second child of a HASH_JOIN (it puts the side it estimates
smaller there), so the memory a join holds is that side's rows times their width, whatever the
probe side holds. `EXPLAIN (FORMAT JSON)` gives both: the build child's estimated cardinality and
the columns it projects. Pure: the executor's estimate (sidecar.jobs.estimate) runs the EXPLAIN and
hands the JSON here.

DuckDB's hash join spills its build side in partitions (an external hash join), so a build side
somewhat larger than the limit still completes whole; like a spilling GROUP BY, a join is split
only past `JOIN_FACTOR` x the limit. The factor is the GROUP BY's, not yet measured for joins: an
underestimate costs the failed attempt the ladder then splits after, as it always did.
"""

from __future__ import annotations

import json
import math
from typing import Any, NamedTuple

__all__ = ["JOIN_FACTOR", "BuildSide", "join_parts", "read_build_side"]

JOIN_FACTOR = 4.0
MAX_JOIN_PARTS = 256


class BuildSide(NamedTuple):
    """The first hash join's build side: its estimated rows and the columns it carries."""

    rows: int
    columns: int
    join_type: str


def read_build_side(plan_json: str) -> BuildSide | None:
    """The build side of the first HASH_JOIN in an `EXPLAIN (FORMAT JSON)` tree, top down.

    >>> plan = [{"name": "HASH_JOIN", "extra_info": {"Join Type": "LEFT", "Estimated Cardinality": "9"},
    ...          "children": [{"name": "SEQ_SCAN", "extra_info": {"Estimated Cardinality": "1000"}},
    ...                       {"name": "SEQ_SCAN", "extra_info": {"Projections": ["k", "w"],
    ...                                                           "Estimated Cardinality": "~30"}}]}]
    >>> read_build_side(json.dumps(plan))
    BuildSide(rows=30, columns=2, join_type='LEFT')
    """
    stack: list[Any] = list(reversed(json.loads(plan_json)))
    while stack:
        node = stack.pop()
        children = node.get("children") or []
        if str(node.get("name", "")).strip() == "HASH_JOIN" and len(children) == 2:
            info = children[1].get("extra_info") or {}
            try:
                rows = int(str(info.get("Estimated Cardinality")).lstrip("~"))
            except ValueError:
                return None
            projections = info.get("Projections") or []
            columns = len(projections) if isinstance(projections, list) else 1
            join_type = str((node.get("extra_info") or {}).get("Join Type", ""))
            return BuildSide(rows, max(1, columns), join_type)
        stack.extend(reversed(children))
    return None


def join_parts(build_bytes: int, limit: int, factor: float = JOIN_FACTOR) -> int:
    """Parts for a build side of `build_bytes` under DuckDB's `limit` (0: it runs whole): each part
    then builds about 1/N of it.

    >>> join_parts(10 * 2**30, 2**30), join_parts(3 * 2**30, 2**30)
    (3, 0)
    """
    if build_bytes <= factor * limit:
        return 0
    return min(MAX_JOIN_PARTS, max(2, math.ceil(build_bytes / (factor * limit))))
