"""A connection's own writer: answers go out on a thread of the connection, never the sender's.

A client that stops reading fills its socket buffer; with a plain blocking write, the thread
sending to it (a worker's progress relay, a request thread) would stall, and with it whatever
that thread serves for other clients. Here `send` only queues the line; the connection's writer
thread does the blocking write. When a client leaves more than `max_pending` bytes unread, it is
dropped (its requests are cancelled) rather than buffered without bound.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import deque
from typing import Any, Callable

from sidecar.protocol.framing import MessageWriter

__all__ = ["ConnectionWriter", "MAX_PENDING_BYTES"]

log = logging.getLogger(__name__)

MAX_PENDING_BYTES = 64 * 1024 * 1024
"""Unread answer bytes a client may leave queued before it is dropped."""


class ConnectionWriter(MessageWriter):
    """`MessageWriter`'s encoding, with the write done by one thread per connection."""

    def __init__(
        self,
        sock: socket.socket,
        on_overflow: Callable[[], None],
        *,
        name: str,
        max_pending: int = MAX_PENDING_BYTES,
    ) -> None:
        super().__init__(sock.makefile("wb", buffering=0))
        self._sock = sock
        self._on_overflow = on_overflow
        self._max_pending = max_pending
        self._queue: deque[bytes] = deque()
        self._pending = 0
        self._cond = threading.Condition()
        self._ending = False
        self._thread = threading.Thread(target=self._run, name=f"writer-{name}", daemon=True)
        self._thread.start()

    def send(self, message: Any) -> bool:
        data = self._encode(message)
        if data is None:
            return False
        with self._cond:
            if self.closed or self._ending:
                return False
            if self._pending + len(data) > self._max_pending:
                overflow = True
                self.closed = True
            else:
                overflow = False
                self._queue.append(data)
                self._pending += len(data)
                self._cond.notify_all()
        if overflow:
            log.warning("a client left more than %d bytes unread; dropping it", self._max_pending)
            self._on_overflow()
            return False
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._ending and not self.closed:
                    self._cond.wait()
                if not self._queue or self.closed:
                    return
                data = self._queue.popleft()
            try:
                self._sock.sendall(data)
            except OSError:
                with self._cond:
                    self.closed = True
                    self._queue.clear()
                    self._cond.notify_all()
                return
            with self._cond:
                self._pending -= len(data)
                self._cond.notify_all()

    def finish(self, timeout: float) -> None:
        """Write what is queued (up to `timeout` seconds), then stop taking messages."""
        with self._cond:
            self._ending = True
            self._cond.notify_all()
        self._thread.join(timeout)
        with self._cond:
            self.closed = True
            self._cond.notify_all()
