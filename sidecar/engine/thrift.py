"""Thrift's compact protocol, enough to read and rewrite a Parquet footer byte for byte.

Generic: a struct decodes into a list of `Field`s (id, wire type, value), fields it does not know
included, and encodes back to the same bytes, so a footer can be edited (offsets moved, row groups
joined) without a schema of every Parquet struct. Used by `sidecar.engine.concat`.
"""

from __future__ import annotations

import struct
from typing import Any

import msgspec

__all__ = [
    "BINARY",
    "DOUBLE",
    "FALSE",
    "I8",
    "I16",
    "I32",
    "I64",
    "LIST",
    "MAP",
    "SET",
    "STOP",
    "STRUCT",
    "TRUE",
    "Field",
    "ThriftError",
    "ThriftList",
    "ThriftMap",
    "decode_struct",
    "encode_struct",
    "encode_value",
]

STOP, TRUE, FALSE, I8, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT = range(13)


_MAX_DEPTH = 64  # parquet nests five deep; corrupt bytes must not exhaust the Python stack


class ThriftError(ValueError):
    """Bytes that are not a well-formed Thrift compact struct."""


class Field(msgspec.Struct, frozen=True):
    """One field of a decoded struct; `value` is int, float, bool, bytes, list[Field], ThriftList or ThriftMap."""

    id: int
    type: int
    value: Any


class ThriftList(msgspec.Struct, frozen=True):
    """A list or set; bool elements stay the raw byte the writer chose (1/2, or 0 for false)."""

    elem_type: int
    items: list[Any]
    kind: int = LIST


class ThriftMap(msgspec.Struct, frozen=True):
    key_type: int
    value_type: int
    items: list[tuple[Any, Any]]


class _Reader:
    """A cursor over bytes; every read checks the bounds so truncation raises ThriftError."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.depth = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise ThriftError(f"ran out of bytes at offset {self.pos}")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if n < 0 or end > len(self.data):
            raise ThriftError(f"needs {n} bytes at offset {self.pos}, has {len(self.data) - self.pos}")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def varint(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 70:
                raise ThriftError(f"varint too long at offset {self.pos}")

    def zigzag(self) -> int:
        u = self.varint()
        return (u >> 1) ^ -(u & 1)

    def value(self, ttype: int) -> Any:
        if ttype in (I16, I32, I64):
            return self.zigzag()
        if ttype == BINARY:
            return self.take(self.varint())
        if ttype == STRUCT:
            return self.struct()
        if ttype in (LIST, SET):
            head = self.byte()
            size = head >> 4 if head >> 4 != 15 else self.varint()
            elem = head & 0x0F
            return ThriftList(elem, [self.value(elem) for _ in range(size)], ttype)
        if ttype in (TRUE, FALSE, I8):  # inside containers a bool is one byte, like i8
            return self.byte()
        if ttype == DOUBLE:
            return struct.unpack("<d", self.take(8))[0]
        if ttype == MAP:
            size = self.varint()
            kinds = self.byte() if size else 0
            k, v = kinds >> 4, kinds & 0x0F
            return ThriftMap(k, v, [(self.value(k), self.value(v)) for _ in range(size)])
        raise ThriftError(f"unknown compact type {ttype} at offset {self.pos}")

    def struct(self) -> list[Field]:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise ThriftError(f"structs nest deeper than {_MAX_DEPTH} at offset {self.pos}")
        fields: list[Field] = []
        last = 0
        while True:
            head = self.byte()
            ttype = head & 0x0F
            if ttype == STOP:
                self.depth -= 1
                return fields
            delta = head >> 4
            fid = last + delta if delta else self.zigzag()
            if ttype in (TRUE, FALSE):  # the type carries the value; a decoded bool field is typed TRUE
                fields.append(Field(fid, TRUE, ttype == TRUE))
            else:
                fields.append(Field(fid, ttype, self.value(ttype)))
            last = fid


def _varint(n: int) -> bytes:
    """Unsigned LEB128, as the compact protocol writes lengths and (zigzagged) integers.

    >>> _varint(300).hex()
    'ac02'
    """
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _zigzag(n: int) -> bytes:
    """A signed integer as the compact protocol writes it.

    >>> [_zigzag(n).hex() for n in (0, -1, 1, -64)]
    ['00', '01', '02', '7f']
    """
    return _varint(-2 * n - 1 if n < 0 else 2 * n)


def encode_value(ttype: int, value: Any, out: bytearray) -> None:
    if ttype in (I16, I32, I64):
        out += _zigzag(value)
    elif ttype == BINARY:
        out += _varint(len(value)) + value
    elif ttype == STRUCT:
        _encode_fields(value, out)
    elif ttype in (LIST, SET):
        size = len(value.items)
        out += bytes([size << 4 | value.elem_type]) if size < 15 else bytes([0xF0 | value.elem_type])
        if size >= 15:
            out += _varint(size)
        for item in value.items:
            encode_value(value.elem_type, item, out)
    elif ttype in (TRUE, FALSE, I8):
        out.append(value & 0xFF)
    elif ttype == DOUBLE:
        out += struct.pack("<d", value)
    elif ttype == MAP:
        out += _varint(len(value.items))
        if value.items:
            out.append(value.key_type << 4 | value.value_type)
        for k, v in value.items:
            encode_value(value.key_type, k, out)
            encode_value(value.value_type, v, out)
    else:
        raise ThriftError(f"unknown compact type {ttype}")


def _encode_fields(fields: list[Field], out: bytearray) -> None:
    last = 0
    for field in fields:
        ttype = (TRUE if field.value else FALSE) if field.type in (TRUE, FALSE) else field.type
        delta = field.id - last
        if 0 < delta <= 15:
            out.append(delta << 4 | ttype)
        else:
            out.append(ttype)
            out += _zigzag(field.id)
        if ttype not in (TRUE, FALSE):
            encode_value(ttype, field.value, out)
        last = field.id
    out.append(STOP)


def decode_struct(data: bytes) -> tuple[list[Field], int]:
    """Decode one compact-protocol struct from the start of `data`: (fields, bytes used).

    >>> decode_struct(bytes([0x15, 0x04, 0x00]))
    ([Field(id=1, type=5, value=2)], 3)
    """
    reader = _Reader(data)
    return reader.struct(), reader.pos


def encode_struct(fields: list[Field]) -> bytes:
    """Encode a struct canonically; every Thrift library writes canonically, so footers round-trip exactly."""
    out = bytearray()
    _encode_fields(fields, out)
    return bytes(out)
