"""Messages between the sidecar and its worker processes.

Frames on the worker's stdin/stdout: a 4-byte big-endian length, then a msgpack-encoded
tagged message.

    sidecar -> worker: Run, Interrupt, SetMemoryLimit, SetLogLevel, Stop
    worker -> sidecar: Ready (once), Progress, Done | Failed (one per Run)
"""

from __future__ import annotations

import struct
from typing import IO, Any, Literal, Union

import msgspec

from sidecar.engine.database import EngineSettings
from sidecar.engine.dataset_reader import CsvOptions
from sidecar.jobs.types import QuerySpec
from sidecar.engine.monitor import Sample

__all__ = [
    "AnalyzeSpec",
    "Run",
    "Interrupt",
    "SetMemoryLimit",
    "SetLogLevel",
    "Stop",
    "Ready",
    "Progress",
    "Done",
    "Failed",
    "ToWorker",
    "Forget",
    "FromWorker",
    "write_frame",
    "read_frame",
]


class AnalyzeSpec(msgspec.Struct, frozen=True):
    path: str
    sample_rows: int | None = None
    exact: bool = False
    timeout_ms: int | None = None
    union_by_name: bool = False
    csv: CsvOptions | None = None


class Run(msgspec.Struct, frozen=True, tag=True):
    job: int
    kind: Literal["query", "analyze"]
    settings: EngineSettings
    query: QuerySpec | None = None
    analyze: AnalyzeSpec | None = None
    progress: bool = False


class Interrupt(msgspec.Struct, frozen=True, tag=True):
    job: int
    reason: str


class SetMemoryLimit(msgspec.Struct, frozen=True, tag=True):
    """Raise (or give back) DuckDB's limit while a query runs: it applies at once."""

    limit_bytes: int


class SetLogLevel(msgspec.Struct, frozen=True, tag=True):
    """The sidecar's resolved `log_level` changed (a reload): the worker logs at it from now on."""

    level: str


class Stop(msgspec.Struct, frozen=True, tag=True):
    pass


class Forget(msgspec.Struct, frozen=True, tag=True):
    """Close a database and remove its files: a daemon's client left, and its default database
    with it; the worker, warm, goes back to the pool as a spare."""

    database: str


class Ready(msgspec.Struct, frozen=True, tag=True):
    pid: int


class Progress(msgspec.Struct, frozen=True, tag=True):
    job: int
    sample: Sample


class Done(msgspec.Struct, frozen=True, tag=True):
    job: int
    result: Any
    """The result as JSON-ready builtins (the engine already made every value JSON-safe)."""


class Failed(msgspec.Struct, frozen=True, tag=True):
    job: int
    code: str
    message: str
    hint: str
    details: dict[str, Any] = {}


ToWorker = Union[Run, Interrupt, SetMemoryLimit, SetLogLevel, Stop, Forget]
FromWorker = Union[Ready, Progress, Done, Failed]

_HEADER = struct.Struct(">I")
_encoder = msgspec.msgpack.Encoder()


def write_frame(stream: IO[bytes], message: Any) -> None:
    data = _encoder.encode(message)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_frame(stream: IO[bytes]) -> bytes | None:
    """One frame's payload, or None at EOF (the other side is gone)."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    (length,) = _HEADER.unpack(header)
    payload = stream.read(length)
    return payload if len(payload) == length else None
