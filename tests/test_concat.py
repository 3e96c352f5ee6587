"""Joining part files without re-encoding: real DuckDB writes the parts with the sidecar's own
COPY options, and real DuckDB reads the joined file back."""

from __future__ import annotations

import doctest
import struct
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sidecar.engine import concat, thrift
from sidecar.engine.concat import concat_files
from sidecar.engine.outputs import OutputFormat, copy_options
from sidecar.jobs.types import OutputSpec
from sidecar.engine.thrift import (
    BINARY,
    DOUBLE,
    I8,
    I16,
    I32,
    I64,
    LIST,
    MAP,
    SET,
    STRUCT,
    TRUE,
    Field,
    ThriftList,
    ThriftMap,
    decode_struct,
    encode_struct,
)
from sidecar.errors import InputError

# Many physical and logical types; `s` repeats so DuckDB writes dictionary pages and bloom filters.
MANY_TYPES = """
SELECT i,
       i::HUGEINT * 100000000000000000000 AS huge,
       (i % 997)::DECIMAL(18, 3) / 7 AS dec,
       CASE WHEN i % 5 = 0 THEN 'nan'::DOUBLE ELSE i / 3 END AS dbl,
       's' || (i % 10) AS s,
       DATE '2020-01-01' + (i % 400)::INTEGER AS day,
       TIMESTAMP '2020-01-01' + INTERVAL (i) SECOND AS ts,
       ('b' || i)::BLOB AS blob,
       [i, NULL, i + 1] AS lst,
       {{'a': i, 'b': 'x' || (i % 3)}} AS rec,
       CASE WHEN i % 3 = 0 THEN NULL ELSE i END AS maybe
FROM range({lo}, {hi}) t(i)
"""

# Part boundaries: empty parts first, in the middle and last; several row groups in the big ones.
RANGES = [(0, 0), (0, 5000), (5000, 5000), (5000, 11000), (11000, 11001), (11001, 11001)]


def write_part(
    con: duckdb.DuckDBPyConnection, sql: str, path: Path, fmt: OutputFormat, extra: str = ""
) -> Path:
    con.execute(f"COPY ({sql}) TO '{path}' ({copy_options(OutputSpec(str(path), format=fmt))}{extra})")
    return path


@pytest.fixture(scope="module")
def parquet_parts(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    directory = tmp_path_factory.mktemp("parts")
    con = duckdb.connect()
    return [
        write_part(
            con,
            MANY_TYPES.format(lo=lo, hi=hi),
            directory / f"part{n}.parquet",
            "parquet",
            ", ROW_GROUP_SIZE 2048",
        )
        for n, (lo, hi) in enumerate(RANGES)
    ]


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[str]:
    """Rows as reprs, so NaN equals NaN and order counts."""
    return [repr(row) for row in con.sql(sql).fetchall()]


def footer(path: Path) -> bytes:
    data = path.read_bytes()
    (length,) = struct.unpack("<I", data[-8:-4])
    return data[-8 - length : -8]


def test_doctests() -> None:
    assert doctest.testmod(concat).failed == 0
    assert doctest.testmod(thrift).failed == 0


# --- parquet ----------------------------------------------------------------------------------


def test_parquet_rows_come_back_in_part_order(parquet_parts: list[Path], tmp_path: Path) -> None:
    con = duckdb.connect()
    target = tmp_path / "joined.parquet"
    result = concat_files("parquet", parquet_parts, target)
    expected = [row for part in parquet_parts for row in rows(con, f"SELECT * FROM '{part}'")]
    assert len(expected) == 11001
    assert rows(con, f"SELECT * FROM '{target}'") == expected
    assert result.rows == 11001
    assert result.bytes_written == target.stat().st_size
    assert con.sql(f"SELECT num_rows FROM parquet_file_metadata('{target}')").fetchall() == [(11001,)]


def test_parquet_metadata_is_the_parts_metadata_moved(parquet_parts: list[Path], tmp_path: Path) -> None:
    """Same row groups and statistics in the same order; every offset moved by where its part landed."""
    con = duckdb.connect()
    target = tmp_path / "joined.parquet"
    concat_files("parquet", parquet_parts, target)
    columns = (
        "row_group_num_rows, column_id, path_in_schema, type, stats_min, stats_max, stats_null_count, "
        "num_values, compression, encodings, total_compressed_size, bloom_filter_length, encoding_stats::VARCHAR"
    )
    # file_offset (ColumnChunk's) is 0 from DuckDB, meaning "not written": it must stay 0.
    offsets = "file_offset, data_page_offset, dictionary_page_offset, bloom_filter_offset"
    expected, expected_offsets = [], []
    base = 4
    for part in parquet_parts:
        meta = f"parquet_metadata('{part}') ORDER BY row_group_id, column_id"
        expected += con.sql(f"SELECT {columns} FROM {meta}").fetchall()
        for found in con.sql(f"SELECT {offsets} FROM {meta}").fetchall():
            expected_offsets.append(tuple(o + base - 4 if o else o for o in found))
        base += len(part.read_bytes()) - 8 - len(footer(part)) - 4
    meta = f"parquet_metadata('{target}') ORDER BY row_group_id, column_id"
    assert con.sql(f"SELECT {columns} FROM {meta}").fetchall() == expected
    assert con.sql(f"SELECT {offsets} FROM {meta}").fetchall() == expected_offsets
    assert len({rg for (rg,) in con.sql(f"SELECT row_group_id FROM {meta}").fetchall()}) >= 6


def test_parquet_filters_using_statistics_and_bloom_filters_stay_right(
    parquet_parts: list[Path], tmp_path: Path
) -> None:
    con = duckdb.connect()
    target = tmp_path / "joined.parquet"
    concat_files("parquet", parquet_parts, target)
    parts = "[" + ", ".join(f"'{p}'" for p in parquet_parts) + "]"
    for where in (
        "s = 's3'",
        "s = 'absent'",
        "i BETWEEN 4000 AND 6000",
        "day = DATE '2020-02-01'",
        "maybe IS NULL",
    ):
        joined = con.sql(f"SELECT count(*), sum(i) FROM '{target}' WHERE {where}").fetchall()
        separate = con.sql(f"SELECT count(*), sum(i) FROM read_parquet({parts}) WHERE {where}").fetchall()
        assert joined == separate, where
    assert con.sql(f"SELECT count(*) FROM '{target}' WHERE s = 's3'").fetchall() == [(1100,)]
    for value in ("s3", "absent"):
        excluded = [
            hit
            for part in parquet_parts
            for (hit,) in con.sql(
                f"SELECT bloom_filter_excludes FROM parquet_bloom_probe('{part}', 's', '{value}') ORDER BY row_group_id"
            ).fetchall()
        ]
        joined = con.sql(
            f"SELECT bloom_filter_excludes FROM parquet_bloom_probe('{target}', 's', '{value}') ORDER BY row_group_id"
        ).fetchall()
        assert [hit for (hit,) in joined] == excluded
    assert any(excluded), "the parts' bloom filters should rule out 'absent' somewhere"


def test_parquet_of_only_empty_parts_is_a_valid_empty_file(parquet_parts: list[Path], tmp_path: Path) -> None:
    empty = [parquet_parts[0], parquet_parts[2]]
    target = tmp_path / "empty.parquet"
    assert concat_files("parquet", empty, target).rows == 0
    con = duckdb.connect()
    assert con.sql(f"SELECT count(*) FROM '{target}'").fetchall() == [(0,)]
    assert (
        con.sql(f"DESCRIBE SELECT * FROM '{target}'").fetchall()
        == con.sql(f"DESCRIBE SELECT * FROM '{parquet_parts[1]}'").fetchall()
    )


def with_footer(path: Path, fields: list[Field], target: Path) -> Path:
    """A copy of `path` with its footer replaced, for footer shapes DuckDB does not write."""
    data = path.read_bytes()
    body = data[: len(data) - 8 - len(footer(path))]
    encoded = encode_struct(fields)
    target.write_bytes(body + encoded + struct.pack("<I", len(encoded)) + b"PAR1")
    return target


def edit_row_groups(fields: list[Field], edit: Any) -> list[Field]:
    return [
        Field(f.id, f.type, ThriftList(f.value.elem_type, [edit(g) for g in f.value.items]))
        if f.id == 4
        else f
        for f in fields
    ]


def test_parquet_ordinals_are_renumbered_and_page_index_dropped(
    parquet_parts: list[Path], tmp_path: Path
) -> None:
    """Row group ordinals count through the joined file; a page index, whose offsets would point
    into the wrong bytes, is dropped."""

    def with_index_page(meta: list[Field]) -> list[Field]:
        data_page = next(f.value for f in meta if f.id == 9)
        return sorted([*meta, Field(10, I64, data_page)], key=lambda f: f.id)

    def add_ordinal_and_page_index(group: list[Field]) -> list[Field]:
        chunks = [
            [Field(f.id, f.type, with_index_page(f.value)) if f.id == 3 else f for f in c]
            + [Field(4, I64, 4), Field(5, I32, 10), Field(6, I64, 14), Field(7, I32, 10)]
            for c in group[0].value.items
        ]
        return [Field(1, LIST, ThriftList(STRUCT, chunks)), *group[1:], Field(7, I16, 0)]

    fields, _ = decode_struct(footer(parquet_parts[1]))
    edited = with_footer(
        parquet_parts[1], edit_row_groups(fields, add_ordinal_and_page_index), tmp_path / "e.parquet"
    )
    target = tmp_path / "joined.parquet"
    concat_files("parquet", [edited, edited], target)
    joined, _ = decode_struct(footer(target))
    groups = next(f.value.items for f in joined if f.id == 4)
    assert [next(f.value for f in g if f.id == 7) for g in groups] == list(range(len(groups)))
    chunks = [chunk for g in groups for chunk in g[0].value.items]
    assert {f.id for chunk in chunks for f in chunk}.isdisjoint({4, 5, 6, 7})
    metas = [{f.id: f.value for f in next(m.value for m in chunk if m.id == 3)} for chunk in chunks]
    assert all(meta[10] == meta[9] for meta in metas), "index_page_offset moves with data_page_offset"
    assert len({meta[9] for meta in metas}) == len(metas)
    con = duckdb.connect()
    assert con.sql(f"SELECT count(*), sum(i) FROM '{target}'").fetchall() == [(10000, 2 * sum(range(5000)))]


def test_parquet_parts_with_different_schemas_are_refused(parquet_parts: list[Path], tmp_path: Path) -> None:
    other = write_part(
        duckdb.connect(), "SELECT i::INTEGER AS i FROM range(10) t(i)", tmp_path / "o.parquet", "parquet"
    )
    with pytest.raises(InputError, match="different schemas"):
        concat_files("parquet", [parquet_parts[1], other], tmp_path / "joined.parquet")


def corrupt_parts(good: Path, tmp_path: Path) -> dict[str, Path]:
    """Broken or unsupported parts, named by the reason the refusal must give."""
    data = good.read_bytes()
    length = len(footer(good))
    cases = {
        "footer is corrupt": data[: len(data) - 8 - length] + b"\xff" * length + data[-8:],
        "does not start and end with PAR1": b"i,s\n1,a\n2,b\n",
        "shorter than the smallest": b"PAR1PAR1",
        "encrypted": data[:-4] + b"PARE",
        "exceeds the file": data[:-8] + struct.pack("<I", len(data)) + b"PAR1",
    }
    paths = {}
    for n, (reason, content) in enumerate(cases.items()):
        paths[reason] = tmp_path / f"bad{n}.parquet"
        paths[reason].write_bytes(content)
    paths["does not start and end"] = tmp_path / "truncated.parquet"
    paths["does not start and end"].write_bytes(data[:-100])
    fields, _ = decode_struct(footer(good))

    def elsewhere(group: list[Field]) -> list[Field]:
        chunks = [[Field(1, BINARY, b"other.parquet"), *c] for c in group[0].value.items]
        return [Field(1, LIST, ThriftList(STRUCT, chunks)), *group[1:]]

    paths["another file"] = with_footer(
        good, edit_row_groups(fields, elsewhere), tmp_path / "elsewhere.parquet"
    )
    no_columns = edit_row_groups(fields, lambda group: group[1:])
    paths["lacks its column chunks"] = with_footer(good, no_columns, tmp_path / "no_columns.parquet")
    paths["cannot read part"] = tmp_path / "missing.parquet"
    return paths


def test_corrupt_or_foreign_parquet_parts_are_refused(parquet_parts: list[Path], tmp_path: Path) -> None:
    for reason, bad in corrupt_parts(parquet_parts[1], tmp_path).items():
        with pytest.raises(InputError, match=reason) as caught:
            concat_files("parquet", [parquet_parts[1], bad], tmp_path / "joined.parquet")
        assert str(bad) in caught.value.message
        assert caught.value.hint


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scratch")


@settings(max_examples=300)
@given(st.data())
def test_any_damage_to_a_footer_is_refused_or_harmless(
    parquet_parts: list[Path], scratch: Path, data: st.DataObject
) -> None:
    """A flipped footer byte gives InputError or a well-formed file, never another exception."""
    good = parquet_parts[4].read_bytes()
    start = len(good) - 8 - len(footer(parquet_parts[4]))
    at = data.draw(st.integers(start, len(good) - 9), label="position")
    damaged = good[:at] + bytes([data.draw(st.integers(0, 255), label="byte")]) + good[at + 1 :]
    (scratch / "damaged.parquet").write_bytes(damaged)
    try:
        concat_files("parquet", [scratch / "damaged.parquet"], scratch / "joined.parquet")
    except InputError:
        return
    _, used = decode_struct(footer(scratch / "joined.parquet"))
    assert used == len(footer(scratch / "joined.parquet"))


# --- thrift compact protocol ------------------------------------------------------------------


def test_thrift_round_trip_is_byte_identical_on_duckdb_footers(
    parquet_parts: list[Path], tmp_path: Path
) -> None:
    con = duckdb.connect()
    others = [
        write_part(
            con, "SELECT i, i * 0.5 AS d FROM range(300000) t(i)", tmp_path / "plain.parquet", "parquet"
        ),
        write_part(
            con,
            "SELECT map([1, 2], ['a', 'b']) AS m, true AS t, false AS f",
            tmp_path / "m.parquet",
            "parquet",
        ),
    ]
    others.append(tmp_path / "snappy.parquet")
    con.execute(
        f"COPY ({MANY_TYPES.format(lo=0, hi=100)}) TO '{others[-1]}' (FORMAT parquet, COMPRESSION snappy)"
    )
    for path in [*parquet_parts, *others]:
        encoded = footer(path)
        fields, used = decode_struct(encoded)
        assert used == len(encoded)
        assert encode_struct(fields) == encoded, path


def test_thrift_decoder_refuses_truncated_or_absurd_bytes(parquet_parts: list[Path]) -> None:
    encoded = footer(parquet_parts[1])
    for cut in (1, len(encoded) // 2, len(encoded) - 1):
        with pytest.raises(thrift.ThriftError, match="ran out|needs"):
            decode_struct(encoded[:cut])
    nested = bytes([0x1C]) * 5000  # field 1, a struct, holding field 1, a struct, ...
    with pytest.raises(thrift.ThriftError, match="nest deeper"):
        decode_struct(nested)
    with pytest.raises(thrift.ThriftError, match="varint too long"):
        decode_struct(bytes([0x16]) + b"\xff" * 20)


i64 = st.integers(-(2**63), 2**63 - 1)
SCALARS: dict[int, st.SearchStrategy[Any]] = {
    I8: st.integers(0, 255),
    I16: st.integers(-(2**15), 2**15 - 1),
    I32: st.integers(-(2**31), 2**31 - 1),
    I64: i64,
    DOUBLE: st.floats(allow_nan=False),
    BINARY: st.binary(max_size=40),
}


def values(ttype: int, depth: int) -> st.SearchStrategy[Any]:
    if ttype in SCALARS:
        return SCALARS[ttype]
    if ttype == STRUCT:
        return structs(depth + 1)
    if ttype in (LIST, SET):
        elem = st.sampled_from([I8, I32, I64, BINARY] + ([STRUCT] if depth < 2 else []))
        return elem.flatmap(
            lambda e: st.lists(values(e, depth + 1), max_size=20).map(lambda xs: ThriftList(e, xs, ttype))
        )
    # min_size=1: an empty map carries no key and value types on the wire, so they cannot round-trip.
    pairs = st.lists(st.tuples(i64, st.binary(max_size=8)), min_size=1, max_size=4)
    return pairs.map(lambda kv: ThriftMap(I64, BINARY, kv))


def field(fid: int, depth: int) -> st.SearchStrategy[Field]:
    kinds = [I8, I16, I32, I64, DOUBLE, BINARY, TRUE, LIST, SET, MAP] + ([STRUCT] if depth < 2 else [])
    return st.sampled_from(kinds).flatmap(
        lambda t: (st.booleans() if t == TRUE else values(t, depth)).map(lambda v: Field(fid, t, v))
    )


def structs(depth: int = 0) -> st.SearchStrategy[list[Field]]:
    """Field ids in any order (negative deltas and jumps over 15 take the long header form)."""
    ids = st.lists(st.integers(-(2**15), 2**15 - 1), unique=True, max_size=6)
    return ids.flatmap(lambda xs: st.tuples(*[field(fid, depth) for fid in xs]).map(list))


@given(structs())
def test_thrift_encode_decode_round_trip(fields: list[Field]) -> None:
    fields = [Field(f.id, f.type, f.value) for f in fields]
    encoded = encode_struct(fields)
    decoded, used = decode_struct(encoded + b"trailing")
    assert used == len(encoded)
    assert encode_struct(decoded) == encoded
    assert decoded == fields


@given(i64)
@example(-(2**63)).via("the extremes")
@example(2**63 - 1).via("the extremes")
@example(-(2**27)).via("a varint length boundary")
def test_zigzag_varint_round_trip(n: int) -> None:
    encoded = encode_struct([Field(1, I64, n)])
    assert decode_struct(encoded) == ([Field(1, I64, n)], len(encoded))
    zigzag = ((n << 1) ^ (n >> 63)) & (2**64 - 1)  # the spec's formula for 64-bit integers
    assert len(encoded) == 2 + max(1, -(-zigzag.bit_length() // 7))


# --- csv and json -----------------------------------------------------------------------------

AWKWARD = r'''
SELECT i AS "a,b", 'x"' || i AS "say ""hi""",
       CASE WHEN i % 2 = 0 THEN 'two' || chr(10) || 'lines, "quoted"' END AS "line
break"
FROM range({lo}, {hi}) t(i)
'''


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_text_parts_join_in_order(fmt: OutputFormat, tmp_path: Path) -> None:
    con = duckdb.connect()
    parts = [
        write_part(con, AWKWARD.format(lo=lo, hi=hi), tmp_path / f"part{n}.{fmt}", fmt)
        for n, (lo, hi) in enumerate([(0, 5), (5, 5), (5, 9), (9, 12), (12, 12)])
    ]
    target = tmp_path / f"joined.{fmt}"
    result = concat_files(fmt, parts, target)
    assert result.rows is None
    assert result.bytes_written == target.stat().st_size
    reader = "read_csv({}, header = true)" if fmt == "csv" else "read_json({})"
    expected = [
        row
        for part in parts
        if part.stat().st_size
        for row in rows(con, f"SELECT * FROM {reader.format(repr(str(part)))}")
    ]
    assert len(expected) == 12
    assert rows(con, f"SELECT * FROM {reader.format(repr(str(target)))}") == expected
    if fmt == "csv":
        header = parts[0].read_bytes()[: len(b'"a,b","say ""hi""","line\nbreak"\n')]
        assert target.read_bytes().count(header) == 1
        assert (
            con.sql(f"DESCRIBE SELECT * FROM read_csv('{target}', header = true)").fetchall()[2][0]
            == "line\nbreak"
        )


def test_csv_part_without_final_newline_is_not_glued(tmp_path: Path) -> None:
    first = tmp_path / "a.csv"
    first.write_bytes(b'"x","y\ny"\n1,"a\nb"')
    second = tmp_path / "b.csv"
    second.write_bytes(b'"x","y\ny"\n2,"c"')
    only_header = tmp_path / "c.csv"
    only_header.write_bytes(b'"x","y\ny"')
    target = tmp_path / "joined.csv"
    concat_files("csv", [first, only_header, second], target)
    assert target.read_bytes() == b'"x","y\ny"\n1,"a\nb"\n2,"c"\n'


def test_json_part_without_final_newline_is_not_glued(tmp_path: Path) -> None:
    first, second, empty = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    first.write_bytes(b'{"x":1}')
    second.write_bytes(b'{"x":2}\n')
    empty.write_bytes(b"")
    target = tmp_path / "joined.json"
    concat_files("json", [first, empty, second], target)
    assert target.read_bytes() == b'{"x":1}\n{"x":2}\n'


def test_csv_parts_with_different_headers_are_refused(tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_bytes(b"x,y\n1,2\n")
    second.write_bytes(b"x,z\n3,4\n")
    with pytest.raises(InputError, match="different headers"):
        concat_files("csv", [first, second], tmp_path / "joined.csv")


def test_missing_text_part_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read part"):
        concat_files("json", [tmp_path / "missing.json"], tmp_path / "joined.json")
