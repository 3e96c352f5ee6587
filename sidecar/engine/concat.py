"""Concatenate result files without re-encoding them.

Partitioned execution writes each part's result straight to a file in the output format; the
user gets one file, the parts' rows in part order. Re-encoding through DuckDB costs as much as
writing the result again, so this joins the files as they are:

- parquet: the parts' page bytes are copied unchanged (kernel `copy_file_range` where it
  works) behind one `PAR1`, and one footer is written that lists every part's row groups
  with their absolute offsets shifted to where the bytes now lie. The footer is Thrift
  compact protocol (`sidecar.engine.thrift`, generic: it keeps fields it does not know).
- csv: the first part whole, then each further part without its header record.
- json (newline-delimited): the parts' bytes in order.

A part that does not end in a newline gets one, so two records are never glued together.
An optional parquet page index (ColumnIndex/OffsetIndex) is dropped: its page offsets point
into the copied bytes, and DuckDB neither writes nor reads one.

Four 336 MB zstd parquet parts (8e7 rows): 2.0 s here, against 31.8 s for DuckDB's
`COPY (SELECT * FROM read_parquet([...]))`; reading the four footers takes 0.25 s.
On error `target` may hold a partial file; the caller's `atomic_target` removes it.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import msgspec

from sidecar.engine.outputs import OutputFormat
from sidecar.engine.thrift import (
    LIST,
    STRUCT,
    Field,
    ThriftError,
    ThriftList,
    decode_struct,
    encode_struct,
    encode_value,
)
from sidecar.errors import InputError, InternalError

logger = logging.getLogger(__name__)

__all__ = ["Concatenated", "concat_files"]


class Concatenated(msgspec.Struct, frozen=True):
    """What `concat_files` wrote: rows when the format states them (parquet), and the file size."""

    rows: int | None
    bytes_written: int


# --- Parquet ----------------------------------------------------------------------------------

_MAGIC = b"PAR1"
_ENCRYPTED_MAGIC = b"PARE"
_COPY_CHUNK = 8 << 20
_I16_MAX = 32767

# Field ids in parquet.thrift (apache/parquet-format) that this merge reads or rewrites.
_FILE_SCHEMA, _FILE_NUM_ROWS, _FILE_ROW_GROUPS, _FILE_ENCRYPTION = 2, 3, 4, 8
_RG_COLUMNS, _RG_FILE_OFFSET, _RG_ORDINAL = 1, 5, 7
_CC_FILE_PATH, _CC_FILE_OFFSET, _CC_META_DATA = 1, 2, 3
_CC_PAGE_INDEX = frozenset({4, 5, 6, 7})  # offset_index_offset/length, column_index_offset/length
_CMD_OFFSETS = frozenset({9, 10, 11, 14})  # data_page, index_page, dictionary_page, bloom_filter


class _ParquetPart(msgspec.Struct, frozen=True):
    """One source: its pages lie in bytes [4, data_end); `footer` is its decoded FileMetaData."""

    path: Path
    data_end: int
    footer: list[Field]
    num_rows: int
    schema: bytes


def _field(fields: list[Field], fid: int) -> Any:
    return next((f.value for f in fields if f.id == fid), None)


def _not_parquet(path: Path, why: str) -> InputError:
    return InputError(
        f"{str(path)!r} is not a readable parquet file: {why}",
        hint="Each part must be a complete, unencrypted parquet file; rerun the part that wrote it.",
        details={"path": str(path)},
    )


def _read_part(path: Path) -> _ParquetPart:
    """Check the magic bytes and decode the footer, refusing what this merge cannot keep correct."""
    with _open_source(path) as src:
        size = os.fstat(src.fileno()).st_size
        if size < 12:
            raise _not_parquet(path, f"{size} bytes is shorter than the smallest parquet file")
        head, tail = os.pread(src.fileno(), 4, 0), os.pread(src.fileno(), 8, size - 8)
        if _ENCRYPTED_MAGIC in (head, tail[4:]):
            raise _not_parquet(path, "it is encrypted (PARE magic)")
        if head != _MAGIC or tail[4:] != _MAGIC:
            raise _not_parquet(path, "it does not start and end with PAR1")
        length = struct.unpack("<I", tail[:4])[0]
        data_end = size - 8 - length
        if data_end < 4:
            raise _not_parquet(path, f"its footer length {length} exceeds the file")
        try:
            footer, _ = decode_struct(os.pread(src.fileno(), length, data_end))
        except ThriftError as exc:
            raise _not_parquet(path, f"its footer is corrupt ({exc})") from exc
    schema, num_rows = _field(footer, _FILE_SCHEMA), _field(footer, _FILE_NUM_ROWS)
    if not isinstance(schema, ThriftList) or not isinstance(num_rows, int) or num_rows < 0:
        raise _not_parquet(path, "its footer lacks the schema or num_rows")
    if _field(footer, _FILE_ENCRYPTION) is not None:
        raise _not_parquet(path, "it is encrypted (plaintext footer with an encryption algorithm)")
    for chunk in _chunks(path, _field(footer, _FILE_ROW_GROUPS)):
        if _field(chunk, _CC_FILE_PATH) is not None:
            raise _not_parquet(path, "its column data lives in another file (ColumnChunk.file_path)")
    encoded_schema = bytearray()
    encode_value(LIST, schema, encoded_schema)
    return _ParquetPart(path, data_end, footer, num_rows, bytes(encoded_schema))


def _structs(value: Any) -> list[list[Field]] | None:
    """The items of a list of structs, or None when `value` is something else."""
    if isinstance(value, ThriftList) and value.elem_type == STRUCT:
        return value.items
    return None


def _chunks(path: Path, row_groups: Any) -> list[list[Field]]:
    """Every ColumnChunk, checking on the way that each field the merge rewrites has its spec'd shape."""
    groups = _structs(row_groups)
    if groups is None:
        raise _not_parquet(path, "its footer lacks the list of row groups")
    chunks = []
    for group in groups:
        columns = _structs(_field(group, _RG_COLUMNS))
        meta = [_field(c, _CC_META_DATA) for c in columns or []]
        offsets = [f.value for f in group if f.id in (_RG_FILE_OFFSET, _RG_ORDINAL)]
        offsets += [f.value for c in columns or [] for f in c if f.id == _CC_FILE_OFFSET]
        offsets += [f.value for m in meta if isinstance(m, list) for f in m if f.id in _CMD_OFFSETS]
        if columns is None or not all(isinstance(m, list) for m in meta):
            raise _not_parquet(path, "a row group in its footer lacks its column chunks")
        if not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets):
            raise _not_parquet(path, "a file offset in its footer is not an integer")
        chunks += columns
    return chunks


def _shift(fields: list[Field], ids: frozenset[int], by: int) -> list[Field]:
    """Move absolute file offsets by `by`; 0 means "not written" (offset 0 is the magic), so it stays."""
    return [Field(f.id, f.type, f.value + by) if f.id in ids and f.value >= 4 else f for f in fields]


def _moved_chunk(chunk: list[Field], by: int) -> list[Field]:
    """A ColumnChunk with its offsets moved and its page index dropped.

    The page index is optional. Its OffsetIndex holds absolute page offsets inside bytes this
    merge copies verbatim, so keeping it would need rewriting it elsewhere in the file; DuckDB
    neither writes nor reads a page index, so it is dropped rather than left pointing wrong.
    """
    moved = []
    for f in _shift(chunk, frozenset({_CC_FILE_OFFSET}), by):
        if f.id in _CC_PAGE_INDEX:
            continue
        if f.id == _CC_META_DATA:
            f = Field(f.id, f.type, _shift(f.value, _CMD_OFFSETS, by))
        moved.append(f)
    return moved


def _moved_group(group: list[Field], by: int, ordinal: int | None) -> list[Field]:
    """A RowGroup with its offsets moved and its ordinal renumbered (dropped past the i16 range)."""
    moved = []
    for f in _shift(group, frozenset({_RG_FILE_OFFSET}), by):
        if f.id == _RG_COLUMNS:
            f = Field(
                f.id, f.type, ThriftList(f.value.elem_type, [_moved_chunk(c, by) for c in f.value.items])
            )
        elif f.id == _RG_ORDINAL:
            if ordinal is None:
                continue
            f = Field(f.id, f.type, ordinal)
        moved.append(f)
    return moved


def _merged_footer(parts: Sequence[_ParquetPart], bases: Sequence[int]) -> list[Field]:
    """The first part's FileMetaData with every part's row groups, moved to where their bytes now lie."""
    groups: list[list[Field]] = []
    total = sum(len(_field(p.footer, _FILE_ROW_GROUPS).items) for p in parts)
    for part, base in zip(parts, bases):
        for group in _field(part.footer, _FILE_ROW_GROUPS).items:
            groups.append(_moved_group(group, base - 4, len(groups) if total <= _I16_MAX + 1 else None))
    first = parts[0].footer
    elem_type = _field(first, _FILE_ROW_GROUPS).elem_type
    values = {_FILE_NUM_ROWS: sum(p.num_rows for p in parts), _FILE_ROW_GROUPS: ThriftList(elem_type, groups)}
    return [Field(f.id, f.type, values[f.id]) if f.id in values else f for f in first]


def _check_schemas(parts: Sequence[_ParquetPart]) -> None:
    for part in parts[1:]:
        if part.schema != parts[0].schema:
            raise InputError(
                f"parquet parts have different schemas: {str(part.path)!r} differs from {str(parts[0].path)!r}",
                hint="Every part of one result must have the same column names and types; this is a bug "
                "in how the parts were written, please report it.",
                details={"path": str(part.path), "first": str(parts[0].path)},
            )


def _concat_parquet(sources: Sequence[Path], out: BinaryIO) -> int:
    """Copy every part's pages behind one PAR1 and write one merged footer; returns the rows."""
    parts = [_read_part(path) for path in sources]
    _check_schemas(parts)
    _write_all(out, _MAGIC)
    bases = []
    position = len(_MAGIC)
    for part in parts:
        bases.append(position)
        with _open_source(part.path) as src:
            _copy_range(src, out, 4, part.data_end - 4)
        position += part.data_end - 4
    footer = encode_struct(_merged_footer(parts, bases))
    _write_all(out, footer + struct.pack("<I", len(footer)) + _MAGIC)
    return sum(p.num_rows for p in parts)


# --- CSV and newline-delimited JSON -----------------------------------------------------------

_QUOTE_OR_NEWLINE = re.compile(rb'["\n]')
_SCAN_CHUNK = 1 << 16


def _record_end(chunk: bytes, in_quote: bool) -> tuple[int | None, bool]:
    """Where the first record ends in `chunk` (after its newline), given the quote state at its start.

    Every `"` toggles the state; an escaped quote `""` toggles twice, so it needs no special case.

    >>> _record_end(b'"a\\nb","c""d"\\n1\\n', False)
    (13, False)
    >>> _record_end(b'"a\\nb', False)
    (None, True)
    """
    pos = 0
    while True:
        if in_quote:
            pos = chunk.find(b'"', pos)
        else:
            match = _QUOTE_OR_NEWLINE.search(chunk, pos)
            pos = match.start() if match else -1
        if pos < 0:
            return None, in_quote
        if chunk[pos] == 0x0A and not in_quote:
            return pos + 1, False
        in_quote = not in_quote
        pos += 1


def _header_length(src: BinaryIO) -> int:
    """Bytes of the header record with its newline; the whole file when no record ends."""
    offset, in_quote = 0, False
    while chunk := os.pread(src.fileno(), _SCAN_CHUNK, offset):
        end, in_quote = _record_end(chunk, in_quote)
        if end is not None:
            return offset + end
        offset += len(chunk)
    return offset


def _concat_lines(sources: Sequence[Path], out: BinaryIO, *, header: bool) -> None:
    """Copy each source in turn, after the first skipping its header record when `header`."""
    first: bytes | None = None
    for path in sources:
        with _open_source(path) as src:
            size = os.fstat(src.fileno()).st_size
            start = 0
            if header and size:
                this = os.pread(src.fileno(), _header_length(src), 0)
                if first is None:
                    first = this
                elif this.rstrip(b"\r\n") != first.rstrip(b"\r\n"):
                    raise InputError(
                        f"csv parts have different headers: {str(path)!r} starts {this[:200]!r}, "
                        f"the first part {first[:200]!r}",
                        hint="Every part of one result must have the same columns; this is a bug in how "
                        "the parts were written, please report it.",
                        details={"path": str(path)},
                    )
                else:
                    start = len(this)
            if size > start:
                _copy_range(src, out, start, size - start)
                if os.pread(src.fileno(), 1, size - 1) != b"\n":
                    _write_all(out, b"\n")


# --- Files ------------------------------------------------------------------------------------


def _open_source(path: Path) -> BinaryIO:
    try:
        return open(path, "rb", buffering=0)
    except OSError as exc:
        raise InputError(
            f"cannot read part {str(path)!r}: {exc.strerror}",
            hint="The part file must exist and be readable; rerun the partitioned query.",
            details={"path": str(path)},
        ) from exc


def _write_all(out: BinaryIO, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = out.write(view)
        view = view[written or 0 :]


_NO_KERNEL_COPY = frozenset({errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM})


def _copy_range(src: BinaryIO, out: BinaryIO, start: int, length: int) -> None:
    """Append `length` bytes of `src` from `start` to `out`: in the kernel where the filesystem
    allows (no copy through Python, a reflink on btrfs/XFS), else in 8 MiB chunks."""
    done = 0
    try:
        while done < length:
            n = os.copy_file_range(src.fileno(), out.fileno(), length - done, start + done)
            if n == 0:
                break
            done += n
    except OSError as exc:
        if exc.errno not in _NO_KERNEL_COPY:
            raise
        logger.debug("copy_file_range unavailable (%s); copying through user space", exc)
    while done < length:
        chunk = os.pread(src.fileno(), min(_COPY_CHUNK, length - done), start + done)
        if not chunk:
            raise InputError(
                f"part {str(src.name)!r} shrank while it was being copied",
                hint="Something else is writing the part files; rerun the query.",
            )
        _write_all(out, chunk)
        done += len(chunk)


def concat_files(fmt: OutputFormat, sources: Sequence[Path], target: Path) -> Concatenated:
    """Write `sources`, in order, as one `fmt` file at `target`, fsynced; the caller renames it.

    Parquet needs at least one source (its schema comes from a part); an empty part is fine.
    """
    if not sources:
        raise InternalError("concat_files needs at least one source file")
    rows: int | None = None
    with open(target, "wb", buffering=0) as out:
        if fmt == "parquet":
            rows = _concat_parquet(sources, out)
        elif fmt in ("csv", "json"):
            _concat_lines(sources, out, header=fmt == "csv")
        else:
            raise InternalError(f"concat_files cannot join format {fmt!r}")
        os.fsync(out.fileno())
        size = out.tell()
    return Concatenated(rows=rows, bytes_written=size)
