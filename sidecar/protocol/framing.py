"""Line framing: one JSON value per line in, one per line out.

stdout belongs to the protocol alone. `claim_stdout` takes the real stdout file descriptor
for the writer and points fd 1 at stderr, so a stray print (ours, a library's, or DuckDB's
own progress bar printing from C++) can never corrupt the stream a client parses.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import IO, Any, Iterator

import msgspec

from sidecar.errors import InternalError, SidecarError

__all__ = ["MAX_LINE_BYTES", "LineTooLong", "read_lines", "MessageWriter", "claim_stdout", "error_message"]

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 16 * 1024 * 1024
"""The longest request line accepted. Big inputs belong in files, not in requests."""


class LineTooLong:
    """Stands in for a line that exceeded the limit; the rest of it was discarded."""

    __slots__ = ("length",)

    def __init__(self, length: int) -> None:
        self.length = length


def read_lines(stream: IO[bytes], limit: int = MAX_LINE_BYTES) -> Iterator[bytes | LineTooLong]:
    """Yield each line (without its newline) until EOF.

    A line longer than `limit` is consumed in chunks and never held whole in memory:
    the caller gets a `LineTooLong` for it and the next line is read normally.
    """
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if line.endswith(b"\n"):
            yield line.rstrip(b"\r\n")
            continue
        if len(line) <= limit:  # last line, without a newline, before EOF
            yield line
            continue
        length = len(line)
        while True:
            chunk = stream.readline(1024 * 1024)
            length += len(chunk)
            if not chunk or chunk.endswith(b"\n"):
                break
        yield LineTooLong(length)


def _encode_fallback(obj: Any) -> Any:
    # Anything the engine did not convert is shown as text rather than failing the reply.
    return str(obj)


def _scrub(value: Any) -> Any:
    """`value` with every string made encodable: a lone surrogate (a file name that is not UTF-8,
    read with Python's surrogateescape) is written as its escape text instead.

    >>> _scrub({"path": "caf\\udce9"})
    {'path': 'caf\\\\udce9'}
    """
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_scrub(k): _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def error_message(id: Any, err: SidecarError) -> dict[str, Any]:
    """The answer for a request that failed with `err`."""
    return {
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": err.rpc_code, "message": err.message, "data": err.to_data()},
    }


class MessageWriter:
    """Writes one JSON message per line, whole, from any thread."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._encoder = msgspec.json.Encoder(enc_hook=_encode_fallback)
        self.closed = False

    def send(self, message: Any) -> bool:
        """Send a message; False once the client has gone away (or when it cannot be encoded at all)."""
        data = self._encode(message)
        if data is None:
            return False
        with self._lock:
            if self.closed:
                return False
            try:
                self._stream.write(data)
                self._stream.flush()
            except (BrokenPipeError, ValueError, OSError):
                self.closed = True
                return False
        return True

    def _encode(self, message: Any) -> bytes | None:
        """The line for `message`. An answer that cannot be encoded still answers its id (INTERNAL)."""
        try:
            return self._encoder.encode(message) + b"\n"
        except Exception as exc:
            first = exc
        try:  # a string that is not valid Unicode (lone surrogates): write it as escape text
            builtins = msgspec.to_builtins(message, enc_hook=_encode_fallback)
            return self._encoder.encode(_scrub(builtins)) + b"\n"
        except Exception:
            pass
        log.error("could not encode a message: %s: %s", type(first).__name__, first)
        if isinstance(message, list):  # a batch answer: each member on its own merits
            members = [self._encode(m) for m in message]
            return b"[" + b",".join(m.rstrip(b"\n") for m in members if m) + b"]\n"
        if isinstance(message, dict) and "id" in message:
            err = InternalError(f"the answer could not be encoded as JSON: {type(first).__name__}: {first}")
            return self._encoder.encode(error_message(message["id"], err)) + b"\n"
        return None  # a notification that cannot be encoded is dropped; the log has it


def claim_stdout() -> IO[bytes]:
    """Return a private binary stream on the original stdout; route fd 1 to stderr."""
    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(protocol_fd, "wb", buffering=0)
