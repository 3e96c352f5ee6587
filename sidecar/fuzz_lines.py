"""What a generated protocol line is made of, and what the sidecar owes each one.

`Raw` bytes go into a line verbatim, `Obj` keeps repeated keys, and `encode` writes either as
JSON bytes; `Case` holds the lines and the ids that must (`expect`) or may (`maybe`) be answered,
which `validity` and `effective` work out from the structure alone. The generator that picks
hostile content is `sidecar/fuzz_cases.py`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import msgspec

from sidecar.schemas import SCHEMA_DIR

__all__ = ["Case", "Choices", "Obj", "Raw", "effective", "encode", "load_param_schemas", "validity"]


class Choices(Protocol):
    def random(self) -> float: ...
    def randint(self, a: int, b: int) -> int: ...


@dataclass(frozen=True)
class Raw:
    """Bytes written verbatim into a line; `valid` says whether they decode as JSON in a request."""

    data: bytes
    valid: bool | None  # None: it depends (e.g. nesting near the decoder's depth limit)


@dataclass(frozen=True)
class Obj:
    """A JSON object as key/value pairs, so a key may repeat (the last one wins)."""

    pairs: tuple[tuple[str, Any], ...]


@dataclass
class Case:
    kind: str
    lines: list[bytes]
    expect: list[str | int] = field(default_factory=list)
    maybe: list[str | int] = field(default_factory=list)
    mutated: bool = False
    """Byte-mutated lines may carry ids nobody chose; answers to unknown ids are then allowed."""


def encode(value: Any) -> bytes:
    """A generated value as JSON bytes (`Obj` keeps repeated keys, `Raw` goes in verbatim).

    >>> encode(Obj((("a", 1), ("a", Raw(b"NaN", False)))))
    b'{"a":1,"a":NaN}'
    """
    if isinstance(value, Raw):
        return value.data
    if isinstance(value, Obj):
        return b"{" + b",".join(encode(k) + b":" + encode(v) for k, v in value.pairs) + b"}"
    if isinstance(value, dict):
        return encode(Obj(tuple(value.items())))
    if isinstance(value, list):
        return b"[" + b",".join(encode(v) for v in value) + b"]"
    return msgspec.json.encode(value)


def validity(value: Any) -> bool | None:
    """Whether `value` encodes as JSON the sidecar decodes: True, False, or None (can't tell).

    >>> validity([1, Raw(b"NaN", False)]), validity(Obj((("a", Raw(b"[[1]]", None)),))), validity({"a": 1})
    (False, None, True)
    """
    if isinstance(value, Raw):
        return value.valid
    children: Sequence[Any] = ()
    if isinstance(value, Obj):
        children = [v for _, v in value.pairs]
    elif isinstance(value, dict):
        children = list(value.values())
    elif isinstance(value, list):
        children = value
    verdicts = [validity(c) for c in children]
    if False in verdicts:
        return False
    return None if None in verdicts else True


def effective(value: Any, key: str) -> tuple[bool, Any]:
    """(present, value) of `key` in a generated object, the last of repeated keys winning.

    >>> effective(Obj((("id", 1), ("id", 2))), "id"), effective({"method": "x"}, "id")
    ((True, 2), (False, None))
    """
    pairs = value.pairs if isinstance(value, Obj) else tuple(value.items()) if isinstance(value, dict) else ()
    found: tuple[bool, Any] = (False, None)
    for k, v in pairs:
        if k == key:
            found = (True, v)
    return found


def load_param_schemas(directory: Path = SCHEMA_DIR) -> dict[str, dict[str, Any]]:
    """The JSON Schema of each method's params, from the generated schemas/ (never hand-written)."""
    schemas = {}
    for path in sorted((directory / "methods").glob("*.params.json")):
        schemas[path.name.removesuffix(".params.json")] = json.loads(path.read_text())
    return schemas
