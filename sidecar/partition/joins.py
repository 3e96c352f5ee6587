"""Splitting an equi-join whose result is not grouped: both sides filtered by a hash of the join key.

`SELECT ... FROM x JOIN y ON x.k = y.k` runs as N parts, part i reading only the rows of each side
with `hash(key) % N = i`:

    SELECT ... FROM (SELECT * FROM x WHERE HASH(x.k) % N = i) AS x
               JOIN (SELECT * FROM y WHERE HASH(y.k) % N = i) AS y ON x.k = y.k

Every row of each side is in exactly one part, and two rows that match have equal keys, so equal
hashes, so the same part. Hence every matched pair is produced in exactly one part, and so is every
unmatched row of a preserved side (LEFT, RIGHT, FULL, ANTI): the union of the parts is the join,
for inner, left, right, full, semi and anti joins alike. NULL keys need nothing of their own:
`hash(NULL)` is a value, so a NULL-keyed row lands in one part like any other; it matches nothing
there (nor anywhere), and a preserved side's NULL-keyed rows come out once, unmatched.
Composite keys hash all their columns in the ON clause's order on both sides. Each side is filtered
in a subquery of its own, not in the outer WHERE: a filter on the outer rows would drop a FULL
join's unmatched rows of the other side.

Equal values must hash alike on both sides, and DuckDB's `hash()` depends on the type
(`hash(-1::INTEGER) <> hash(-1::BIGINT)`, `hash(1::INTEGER) <> hash(1::DOUBLE)`), so the keys of
both sides must have the same type. The planner cannot see types (it is pure); `key_types_sql`
gives the DESCRIBE an executor runs first, and `check_key_types` refuses a mismatch with a hint to
CAST one side in the ON clause (a key expression is hashed as written).

One join (two relations) is split; the outer query may filter, project, order and limit the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlglot import exp

from sidecar.partition.modifiers import split_modifiers
from sidecar.partition.plan import Bucket, Combine, Part, Plan, Unsplittable
from sidecar.partition.buckets import buckets_of, hash_predicate
from sidecar.partition.shapes import parse_select

__all__ = ["JoinKeys", "check_key_types", "join_keys", "key_types_sql", "plan_join"]

_KINDS = {
    ("", ""): "inner",
    ("", "INNER"): "inner",
    ("LEFT", ""): "left",
    ("LEFT", "OUTER"): "left",
    ("RIGHT", ""): "right",
    ("RIGHT", "OUTER"): "right",
    ("FULL", ""): "full",
    ("FULL", "OUTER"): "full",
    ("", "SEMI"): "semi",
    ("LEFT", "SEMI"): "semi",
    ("", "ANTI"): "anti",
    ("LEFT", "ANTI"): "anti",
}

_HINT = (
    "Write the join as one equi-join of two relations (x JOIN y ON x.k = y.k, or USING (k)), "
    "columns qualified with their table or alias; or run it unsplit (DuckDB's hash join spills)."
)


@dataclass(frozen=True)
class JoinKeys:
    """The one join of a query: its kind and the key expressions of each side, pairwise equal."""

    kind: str
    left: tuple[exp.Expression, ...]
    right: tuple[exp.Expression, ...]


def join_keys(select: exp.Select, sql: str) -> JoinKeys | None:
    """The join `select` splits by: None when it joins nothing; Unsplittable for a join that does not
    split (several joins, no equality between the sides, ASOF/POSITIONAL/NATURAL/CROSS, LATERAL).

    >>> from sidecar.partition.shapes import parse_select
    >>> q = "SELECT * FROM x AS a LEFT JOIN y AS b ON a.k = b.k AND a.j = b.j AND b.v > 0"
    >>> keys = join_keys(parse_select(q), q)
    >>> keys.kind, [k.sql() for k in keys.left], [k.sql() for k in keys.right]
    ('left', ['a.k', 'a.j'], ['b.k', 'b.j'])
    """
    joins = select.args.get("joins") or []
    if not joins:
        return None
    if len(joins) > 1 or select.args.get("laterals"):
        raise Unsplittable(
            "join_many", f"it joins {len(joins) + 1} relations; one join of two is split", hint=_HINT, sql=sql
        )
    join: exp.Join = joins[0]
    kind = _KINDS.get((join.side.upper(), join.kind.upper()))
    if kind is None or join.args.get("method") or isinstance(join.this, exp.Lateral):
        what = " ".join(p for p in (join.args.get("method"), join.side, join.kind) if p) or "this"
        raise Unsplittable(
            "join_kind", f"a {what.upper()} JOIN has no key both sides can be split by", hint=_HINT, sql=sql
        )
    left, right = _name(_from(select).this), _name(join.this)
    if left is None or right is None or left.lower() == right.lower():
        raise Unsplittable(
            "join_unnamed",
            "a side of the join has no name of its own to qualify its key columns with",
            hint="Give each side of the join an alias (read_parquet('x.parquet') AS x).",
            sql=sql,
        )
    using = join.args.get("using")
    if using:
        names = [u.name for u in using]
        return JoinKeys(kind, _qualified(names, left), _qualified(names, right))
    pairs = [p for p in (_pair(c, left, right) for c in _conjuncts(join.args.get("on"))) if p is not None]
    if not pairs:
        raise Unsplittable(
            "join_without_key",
            "no equality in its ON clause compares one side's columns with the other's "
            "(columns must be qualified with their table or alias)",
            hint=_HINT,
            sql=sql,
        )
    return JoinKeys(kind, tuple(p[0] for p in pairs), tuple(p[1] for p in pairs))


def plan_join(
    select: exp.Select, sql: str, keys: JoinKeys, parts: int, salt: int, within: Sequence[Bucket]
) -> Plan:
    """The join in `parts` parts, each side filtered in a subquery by its bucket's hash of its keys."""
    split = split_modifiers(select, list(keys.left), "join", sql)
    plan_parts = []
    for i, buckets in enumerate(buckets_of(parts, salt, within)):
        predicates = [
            exp.and_(*(hash_predicate(side, b) for b in buckets)) for side in (keys.left, keys.right)
        ]
        part = split.part_select.copy()
        from_ = _from(part)
        from_.set("this", _filtered(from_.this, predicates[0]))
        join = part.args["joins"][0]
        join.set("this", _filtered(join.this, predicates[1]))
        plan_parts.append(Part(index=i, sql=part.sql("duckdb"), predicate=predicates[0].sql("duckdb")))
    right = ", ".join(k.sql("duckdb") for k in keys.right)
    return Plan(
        shape="join",
        sql=sql,
        parts=tuple(plan_parts),
        combine=Combine(kind="union_then", sql=split.combine.sql("duckdb")),
        key_exprs=tuple(k.sql("duckdb") for k in keys.left),
        salt=salt,
        within=tuple(within),
        notes=(
            f"{keys.kind} join split by a hash of its keys on both sides: the predicate filters the "
            f"left side, the same hash of ({right}) the right side; the keys must have the same type "
            "on both sides",
            *split.notes,
        ),
    )


def key_types_sql(sql: str) -> str:
    """A DESCRIBE whose rows are the types of the left keys, then the right keys, of `sql`'s join
    (it binds the relations and reads no rows).

    >>> key_types_sql("SELECT * FROM x JOIN y USING (k)")
    'DESCRIBE SELECT x.k AS l0, y.k AS r0 FROM x CROSS JOIN y'
    """
    select = parse_select(sql)
    keys = join_keys(select, sql)
    if keys is None:
        raise Unsplittable("plain_select", "it joins nothing", sql=sql)
    probe = exp.select(
        *(exp.alias_(k.copy(), f"l{i}") for i, k in enumerate(keys.left)),
        *(exp.alias_(k.copy(), f"r{i}") for i, k in enumerate(keys.right)),
    )
    probe.set("from_", _from(select).copy())
    probe.set("joins", [exp.Join(this=select.args["joins"][0].this.copy(), kind="CROSS")])
    with_ = select.args.get("with_") or select.args.get("with")
    if with_ is not None:
        probe.set("with_", with_.copy())
    return f"DESCRIBE {probe.sql('duckdb')}"


def check_key_types(sql: str, types: Sequence[str]) -> None:
    """Refuse a join whose paired keys differ in type (`types`: key_types_sql's column types in order):
    equal values of different types hash differently, so matching rows would land in different parts.

    >>> check_key_types("SELECT * FROM x JOIN y USING (k)", ["BIGINT", "BIGINT"])
    >>> try:
    ...     check_key_types("SELECT * FROM x JOIN y ON x.k = y.k", ["INTEGER", "BIGINT"])
    ... except Unsplittable as refused:
    ...     print(refused.reason)
    the join compares x.k (INTEGER) with y.k (BIGINT): equal values of different types hash differently
    """
    select = parse_select(sql)
    keys = join_keys(select, sql)
    if keys is None:
        return
    n = len(keys.left)
    for i in range(n):
        if types[i] != types[n + i]:
            left, right = keys.left[i].sql("duckdb"), keys.right[i].sql("duckdb")
            raise Unsplittable(
                "join_key_types",
                f"the join compares {left} ({types[i]}) with {right} ({types[n + i]}): "
                "equal values of different types hash differently",
                hint=f"Cast one side to the other's type in the ON clause, e.g. "
                f"{left} = CAST({right} AS {types[i]}).",
                sql=sql,
            )


# -- helpers --------------------------------------------------------------------------------


def _from(select: exp.Select) -> exp.From:
    from_ = select.args.get("from_") or select.args.get("from")
    if not isinstance(from_, exp.From):
        raise Unsplittable("no_from", "it reads no rows (no FROM)", sql=select.sql("duckdb"))
    return from_


def _name(relation: exp.Expression) -> str | None:
    """The name a relation's columns are qualified with: its alias, or a table's own name."""
    alias = relation.alias
    if alias:
        return alias
    named = isinstance(relation, exp.Table) and isinstance(relation.this, exp.Identifier)
    return relation.name if named else None


def _qualified(names: list[str], table: str) -> tuple[exp.Expression, ...]:
    return tuple(exp.column(n, table=table) for n in names)


def _conjuncts(on: exp.Expression | None) -> list[exp.Expression]:
    if on is None:
        return []
    return list(on.flatten()) if isinstance(on, exp.And) else [on.unnest()]


def _pair(condition: exp.Expression, left: str, right: str) -> tuple[exp.Expression, exp.Expression] | None:
    """`(left key, right key)` when `condition` is `a = b` (or IS NOT DISTINCT FROM) with `a` reading
    only one side's columns and `b` only the other's."""
    if not isinstance(condition, (exp.EQ, exp.NullSafeEQ)):
        return None
    a, b = condition.this, condition.expression
    sides = _side(a, left, right), _side(b, left, right)
    if sides == ("l", "r"):
        return a.copy(), b.copy()
    if sides == ("r", "l"):
        return b.copy(), a.copy()
    return None


def _side(node: exp.Expression, left: str, right: str) -> str | None:
    """'l' or 'r' when every column of `node` is qualified with that side's name (and it has one)."""
    tables = {c.table.lower() for c in node.find_all(exp.Column)}
    if node.find(exp.Subquery, exp.Select) is not None or len(tables) != 1:
        return None
    table = tables.pop()
    return "l" if table == left.lower() else "r" if table == right.lower() else None


def _filtered(relation: exp.Expression, predicate: exp.Expression) -> exp.Subquery:
    """`(SELECT * FROM <relation> WHERE <predicate>) AS <its name>`: the side's columns keep their names."""
    name = _name(relation)
    inner = exp.select("*").from_(relation.copy()).where(predicate.copy())
    return inner.subquery(alias=name) if name else inner.subquery()
