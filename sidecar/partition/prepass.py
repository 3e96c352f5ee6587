"""A bucketing pass before the parts: the input is read once and written as hash-bucketed Parquet,
and each part then reads its own bucket instead of re-scanning the whole input with a hash filter.

Pure (sqlglot only): it says which relation to bucket, writes the pass's SQL and rewrites a part's
SQL to read its bucket. The executor runs them (sidecar.jobs.partitioned).

Measured on 1e8 H2O rows at DuckDB's 698 MiB (sidecar/partition/prepass.py's figures):
- q6, median by id4, id5 in 9 parts: re-scanning 8.0 s; the pass 3.3 s + the parts 2.6 s = 5.9 s;
- q10, 1e8 groups of six keys in 5 parts: re-scanning 51.2 s; the pass 22.5 s + the parts 34.4 s.
A part re-scanning Parquet pays for the columns it reads and a hash of every row; the pass pays
for writing them once. So the pass runs from `MIN_PARTS` parts up, and from 2 for text inputs
(CSV, JSON), whose parsing costs far more than writing Parquet.

It applies only where it is exact and simple: one relation in FROM (a table, a file, a table
function or a subquery; no joins), no placeholders, top-level hash buckets, and input columns whose
types Parquet keeps exactly (HUGEINT would come back as DOUBLE, ENUM as VARCHAR).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import msgspec
from sqlglot import exp

from sidecar.partition.plan import Bucket, Plan
from sidecar.partition.planner import hash_predicate
from sidecar.partition.shapes import parse_select

__all__ = [
    "BUCKET_COLUMN",
    "MAX_BUCKETS",
    "MIN_PARTS",
    "Prepass",
    "bucket_sql",
    "needed_columns",
    "part_reads_bucket",
    "prepass_for",
]

MIN_PARTS = 8
MAX_BUCKETS = 64
"""DuckDB keeps a writer per bucket open during a partitioned COPY: a bounded number of them."""
BUCKET_COLUMN = "__bmad_bucket"

_TEXT_INPUT = re.compile(
    r"\.(csv|tsv|txt|json|ndjson|jsonl)(\.gz|\.zst)?$|^read_(csv|json|ndjson)", re.IGNORECASE
)
_EXACT_TYPES = re.compile(
    r"^(BOOLEAN|TINYINT|SMALLINT|INTEGER|BIGINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|FLOAT|DOUBLE|"
    r"DECIMAL\(\d+,\s*\d+\)|VARCHAR|BLOB|DATE|TIME|TIMESTAMP|TIMESTAMP WITH TIME ZONE)$"
)


class Prepass(msgspec.Struct, frozen=True):
    """Which relation to bucket and by what: a plain value, like the plan it serves."""

    relation: str
    """The FROM relation's SQL, alias included."""
    alias: str
    """The name the query's columns may be qualified with."""
    keys: tuple[str, ...]
    modulus: int
    with_sql: str | None
    """The query's WITH clause, when the relation may name one of its CTEs."""
    where: str | None
    text_input: bool
    aliases: dict[str, str] = {}
    """The outer SELECT's aliases (lower-cased) and their expressions: the plan's keys and WHERE may
    name them, as DuckDB allows, but the pass's own SELECT does not define them."""


def prepass_for(plan: Plan, parts: int, has_params: bool) -> Prepass | None:
    """The bucketing pass for a hash-split `plan` in `parts` parts, or None where it does not apply
    or would not pay (see the module's figures)."""
    if has_params or plan.shape == "sorted_ranges" or plan.within or plan.salt or not plan.key_exprs:
        return None
    if not 2 <= parts <= MAX_BUCKETS or len(plan.parts) != parts:
        return None
    select = parse_select(plan.sql)
    source = select.args.get("from_")
    if select.args.get("joins") or source is None or not isinstance(source.this, (exp.Table, exp.Subquery)):
        return None
    if any(c.args.get("db") is not None for c in select.find_all(exp.Column)):
        return None  # a column named schema.table.column would not resolve against the bucket's alias
    keys = [exp.maybe_parse(k, dialect="duckdb") for k in plan.key_exprs]
    for part in plan.parts:  # the parts' filters must be exactly the buckets the pass writes
        if part.predicate != hash_predicate(keys, Bucket(parts, part.index)).sql("duckdb"):
            return None
    relation = source.this
    text_input = isinstance(relation, exp.Table) and bool(_TEXT_INPUT.search(_relation_name(relation)))
    if parts < MIN_PARTS and not text_input:
        return None
    with_ = select.args.get("with_")
    where = select.args.get("where")
    return Prepass(
        relation=relation.sql("duckdb"),
        alias=_alias(relation),
        keys=plan.key_exprs,
        modulus=parts,
        with_sql=with_.sql("duckdb") if with_ is not None else None,
        where=where.this.sql("duckdb") if where is not None else None,
        text_input=text_input,
        aliases={
            item.alias.lower(): item.this.sql("duckdb")
            for item in select.expressions
            if isinstance(item, exp.Alias) and item.alias
        },
    )


def _alias(relation: exp.Table | exp.Subquery) -> str:
    """The name DuckDB gives the relation: its alias; a file's stem ('f' for 'dir/f.csv'); a table
    function's name; a bare subquery gets one of ours (its columns can only be unqualified)."""
    if relation.alias:
        return relation.alias
    if isinstance(relation, exp.Subquery):
        return "__bmad_input"
    name = _relation_name(relation)
    return name.rsplit("/", 1)[-1].split(".", 1)[0] if isinstance(relation.this, exp.Identifier) else name


def _relation_name(table: exp.Table) -> str:
    inner = table.this
    if isinstance(inner, (exp.Anonymous, exp.Func)):
        return (
            inner.sql_name()
            if isinstance(inner, exp.Func) and not isinstance(inner, exp.Anonymous)
            else str(inner.this)
        )
    return table.name


def needed_columns(sql: str, columns: Sequence[tuple[str, str]], alias: str) -> list[str] | None:
    """The relation's columns the query refers to (all when it selects `*` or names the whole row
    by the relation's `alias`); None when one of them has a type Parquet does not keep exactly."""
    select = parse_select(sql)
    projected = [node for item in select.expressions for node in item.walk()]  # the outer SELECT's own list
    star = any(
        (isinstance(node, exp.Star) and not isinstance(node.parent, exp.Count))
        or (isinstance(node, exp.Column) and isinstance(node.this, exp.Star))
        or isinstance(node, exp.Columns)
        or (isinstance(node, exp.Anonymous) and str(node.this).upper() == "COLUMNS")
        for node in projected
    )
    named = {c.name.lower() for c in select.find_all(exp.Column)}
    star = star or alias.lower() in named and alias.lower() not in {n.lower() for n, _ in columns}
    chosen = [(n, t) for n, t in columns if star or n.lower() in named] or list(columns[:1])
    if any(not _EXACT_TYPES.match(t.upper()) for _, t in chosen):
        return None
    return [n for n, _ in chosen]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def bucket_sql(pre: Prepass, columns: Sequence[str], relation_columns: Sequence[str]) -> str:
    """The SELECT the pass writes with `PARTITION_BY (__bmad_bucket)`: the needed columns of the
    relation's rows that pass the query's WHERE, each with its bucket.

    A key or WHERE naming a SELECT alias gets the alias's expression, unless the relation has a
    column of that name (DuckDB binds a column before an alias)."""
    own = {c.lower() for c in relation_columns}

    def resolved(text: str) -> exp.Expression:
        def swap(node: exp.Expression) -> exp.Expression:
            if isinstance(node, exp.Column) and not node.table:
                name = node.name.lower()
                if name in pre.aliases and name not in own:
                    return exp.paren(exp.maybe_parse(pre.aliases[name], dialect="duckdb"), copy=False)
            return node

        return exp.maybe_parse(text, dialect="duckdb").transform(swap)

    keys = [resolved(k) for k in pre.keys]
    bucket = exp.Mod(
        this=exp.Anonymous(this="HASH", expressions=keys), expression=exp.Literal.number(pre.modulus)
    ).sql("duckdb")
    listed = ", ".join(_quoted(c) for c in columns)  # one relation: unqualified names are its own
    relation = pre.relation if pre.alias != "__bmad_input" else f"{pre.relation} AS {_quoted(pre.alias)}"
    sql = f"SELECT {listed}, {bucket} AS {BUCKET_COLUMN} FROM {relation}"
    if pre.where is not None:
        sql += f" WHERE {resolved(pre.where).sql('duckdb')}"
    return f"{pre.with_sql} {sql}" if pre.with_sql else sql


def part_reads_bucket(part_sql: str, pre: Prepass, files: str | None, columns: Sequence[str]) -> str:
    """`part_sql` reading its bucket's files (a glob) instead of the relation; with `files` None
    (an empty bucket: the pass wrote nothing for it) it reads no rows of the relation."""
    tree = parse_select(part_sql).copy()
    if files is not None:
        text = f"read_parquet({exp.Literal.string(files).sql('duckdb')}, hive_partitioning = false)"
    else:
        text = f"(SELECT {', '.join(_quoted(c) for c in columns)} FROM {pre.relation} LIMIT 0)"
    replacement = parse_select(f"SELECT 1 FROM {text} AS {_quoted(pre.alias)}").args["from_"].this
    tree.args["from_"].set("this", replacement)
    return tree.sql("duckdb")
