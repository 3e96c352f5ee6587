"""Planning hash-partitioned work: one query in, independent parts and an exact combine out.

Pure (no I/O, no DuckDB): executors (the local worker pool, later Ray) run the plan.
"""

from __future__ import annotations

from sidecar.partition.plan import PARTS_RELATION, Bucket, Combine, Part, Plan, Unsplittable
from sidecar.partition.planner import hash_predicate, plan_partitioned

__all__ = [
    "PARTS_RELATION",
    "Bucket",
    "Combine",
    "Part",
    "Plan",
    "Unsplittable",
    "hash_predicate",
    "plan_partitioned",
]
