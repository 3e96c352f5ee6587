"""Threads that take turns reading request lines (leader/follower).

One thread at a time holds the turn and reads. When the line it read is work (a `query.run`, not
a cheap inline method), the reader passes the turn to a waiting thread and runs the request
itself, so the request starts on the thread that read it, with no hand-off to a pool thread on
its way: a hand-off costs a wake-up, which on an idle machine is a good part of a small query's
round trip (docs/performance/latency.md). The next line is read by the thread that took the turn,
so a `$/cancelRequest` still arrives while requests run. Threads are made as requests overlap,
up to a limit (then the dispatcher's pool runs the request), and kept for the sidecar's life.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Iterator, TypeVar

__all__ = ["Turns"]

log = logging.getLogger(__name__)

Line = TypeVar("Line")


class Turns:
    def __init__(
        self,
        lines: Iterator[Line],
        handle: Callable[[Line], None],
        *,
        stop: threading.Event,
        max_threads: int,
    ) -> None:
        self._lines = lines
        self._handle = handle
        self._stop = stop
        self._max_threads = max_threads
        self._turn = threading.Lock()
        """Held by the thread that reads."""
        self._local = threading.local()
        self._lock = threading.Lock()
        self._waiting = 0
        self._threads = 0
        self.finished = threading.Event()
        """Set at EOF (or a read error) and once `stop` is set: no more lines are read."""

    def serve(self) -> None:
        """Read and handle lines until EOF or `stop`, on threads of their own; this thread waits
        (so a signal still reaches it, and whatever it raises ends the wait)."""
        with self._lock:
            self._spawn()
        self.finished.wait()

    def pass_turn(self) -> bool:
        """On the reading thread: hand reading to another thread, which is made if none is waiting,
        and return True (the caller then runs its request itself). False on any other thread, or
        when the thread limit is reached."""
        if not getattr(self._local, "reading", False):
            return False
        with self._lock:
            if self._waiting == 0:
                if self._threads >= self._max_threads:
                    return False
                self._spawn()
        self._local.reading = False
        self._turn.release()
        return True

    def _spawn(self) -> None:  # with self._lock held
        self._threads += 1
        threading.Thread(target=self._take_turns, name=f"reader-{self._threads}", daemon=True).start()

    def _take_turns(self) -> None:
        while not self.finished.is_set():
            with self._lock:
                self._waiting += 1
            self._turn.acquire()
            with self._lock:
                self._waiting -= 1
            self._local.reading = True
            try:
                self._read_one()
            finally:
                if self._local.reading:  # else the turn was passed while handling the line
                    self._local.reading = False
                    self._turn.release()

    def _read_one(self) -> None:
        if self.finished.is_set():
            return
        try:
            line = next(self._lines, None)
        except OSError as exc:  # a reset connection, or a socket shut down under the reader
            log.debug("reading requests ended: %s", exc)
            line = None
        except Exception:
            log.exception("reading requests failed; taking it as the end of input")
            line = None
        if line is None:
            self.finished.set()
            return
        self._handle(line)
        if self._stop.is_set():
            self.finished.set()
