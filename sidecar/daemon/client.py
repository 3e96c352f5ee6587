"""A small synchronous client of a running daemon, over its real Unix socket.

Used by the tests and the daemon benchmark, as `sidecar.client.SidecarProcess` is for a stdio
sidecar (both are `RpcLines`): one reader thread matches answers to futures; notifications,
and answers to raw lines, are kept in order.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any, Callable

import msgspec

from sidecar.client import RpcLines

__all__ = ["SocketClient"]


class SocketClient(RpcLines):
    def __init__(self, path: str | Path, *, timeout: float = 10.0) -> None:
        super().__init__()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.sock.settimeout(None)
        self._write_lock = threading.Lock()
        self.eof = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            with self.sock.makefile("rb") as stream:
                for line in stream:
                    self._deliver(msgspec.json.decode(line))
        except (OSError, ValueError):
            pass
        with self._cond:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(EOFError("the daemon closed the connection"))
            self._pending.clear()
            self.eof.set()
            self._cond.notify_all()

    def send_raw(self, data: bytes) -> None:
        with self._write_lock:
            self.sock.sendall(data if data.endswith(b"\n") else data + b"\n")

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
        with self._cond:
            self._cond.wait_for(
                lambda: any(predicate(n) for n in self.notifications) or self.eof.is_set(), timeout=timeout
            )
            for note in self.notifications:
                if predicate(note):
                    return note
        raise TimeoutError(f"no matching notification within {timeout}s")

    def close(self) -> None:
        """Disconnect (what a client that crashes or exits does)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self._reader.join(5)

    def __enter__(self) -> SocketClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
