"""The row filter every hash split adds: `hash(keys[, salt]) % modulus = remainder`, one per bucket level.

Pure (sqlglot only). The planner puts it in a query's WHERE (sidecar.partition.planner), the join
split on each side of the join (sidecar.partition.joins), the bucketing pass into its bucket column
(sidecar.partition.prepass).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot import exp

from sidecar.partition.plan import Bucket

__all__ = ["buckets_of", "hash_predicate"]


def hash_predicate(keys: Sequence[exp.Expression], bucket: Bucket) -> exp.Expression:
    """`hash(keys[, salt]) % modulus = remainder`, the filter that keeps one bucket's rows.

    >>> hash_predicate([exp.column("k")], Bucket(modulus=4, remainder=1, salt=7)).sql("duckdb")
    'HASH(k, 7) % 4 = 1'
    """
    args = [k.copy() for k in keys]
    if bucket.salt:
        args.append(exp.Literal.number(bucket.salt))
    hashed = exp.Anonymous(this="HASH", expressions=args)
    modulo = exp.Mod(this=hashed, expression=exp.Literal.number(bucket.modulus))
    return exp.EQ(this=modulo, expression=exp.Literal.number(bucket.remainder))


def buckets_of(parts: int, salt: int, within: Sequence[Bucket]) -> list[tuple[Bucket, ...]]:
    """Each part's bucket levels: the buckets it is confined to, then its own.

    >>> [[(b.modulus, b.remainder) for b in p] for p in buckets_of(2, 1, [Bucket(4, 3)])]
    [[(4, 3), (2, 0)], [(4, 3), (2, 1)]]
    """
    return [(*within, Bucket(modulus=parts, remainder=i, salt=salt)) for i in range(parts)]
