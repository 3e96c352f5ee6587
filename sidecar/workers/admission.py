"""Admission control: running jobs share the machine budget; a job that would oversubscribe waits.

Each running job holds a reservation (its memory ceiling). A job asks for `start` bytes and
may later grow up to `most` while the machine has room and nobody waits; the sum of
reservations never exceeds the machine budget, and at most `max_jobs` run at once.
Waiting is fair: first come, first admitted.

The monitor's remediation actions act here through holds, one per firing rule: a hold may pause
admission (no new job starts), narrow it (at most `max_jobs` run at once) or resize new jobs
(their starting ceiling, and so DuckDB's limit, times `scale`). Several holds combine: any pause
pauses, the smallest `max_jobs` and `scale` win.

A daemon sets `ledger` (sidecar/daemon/ledger.py): then the reservations of the user's other
daemons count against the same machine budget, read and written under the ledger's file lock.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Admission", "Reservation", "Hold"]


@dataclass(frozen=True)
class Hold:
    """What one firing rule asks of admission control until it lifts the hold."""

    rule: str
    pause: bool = False
    max_jobs: int | None = None
    scale: float | None = None
    min_bytes: int = 0
    """A resized job never starts below this (a scale-down trigger's `min_memory`)."""
    max_bytes: int | None = None
    """... nor above this (a scale-up trigger's `max_memory`)."""


class Reservation:
    def __init__(self, ticket: int, start: int, most: int) -> None:
        self.ticket = ticket
        self.bytes = start
        self.most = most


class Admission:
    def __init__(self, machine_budget: int, max_jobs: int) -> None:
        self.machine_budget = machine_budget
        self.max_jobs = max_jobs
        self.running: dict[int, Reservation] = {}
        self._queue: deque[int] = deque()
        self._cond = threading.Condition()
        self._tickets = itertools.count(1)
        self.holds: dict[str, Hold] = {}
        self.ledger: Any = None
        """Shared with the user's other daemons: `locked()` yields a book with `others` and `set()`."""

    def hold(self, hold: Hold) -> None:
        """Put (or replace) a rule's hold; it applies to jobs not yet admitted."""
        with self._cond:
            self.holds[hold.rule] = hold
            self._cond.notify_all()

    def lift(self, rule: str) -> bool:
        """Remove a rule's hold; False when it held nothing."""
        with self._cond:
            gone = self.holds.pop(rule, None) is not None
            self._cond.notify_all()
        return gone

    def _sized(self, start: int, most: int) -> tuple[int, int]:
        scales = [h for h in self.holds.values() if h.scale is not None]
        if not scales:
            return start, most
        h = min(scales, key=lambda x: x.scale or 1.0)
        scale = h.scale or 1.0
        sized = max(int(start * scale), h.min_bytes)
        if h.max_bytes is not None:
            sized = min(sized, max(h.max_bytes, h.min_bytes))
        return sized, max(sized, int(most * scale)) if scale < 1 else max(sized, most)

    def configure(self, machine_budget: int, max_jobs: int) -> None:
        with self._cond:
            self.machine_budget, self.max_jobs = machine_budget, max_jobs
            self._cond.notify_all()

    @property
    def reserved(self) -> int:
        return sum(r.bytes for r in self.running.values())

    def admit(
        self,
        start: int,
        most: int,
        *,
        cancelled: Callable[[], bool],
        on_wait: Callable[[], None] | None = None,
    ) -> Reservation | None:
        """Block until `start` bytes fit (or `cancelled()`); None when cancelled while waiting.

        A hold that resizes new jobs applies at the moment the job is admitted."""
        wanted, wanted_most = start, most
        ticket = next(self._tickets)
        with self._cond:
            self._queue.append(ticket)
            told = False
            try:
                while True:
                    start, most = self._sized(wanted, wanted_most)
                    start = min(start, self.machine_budget)
                    if self._queue[0] == ticket:
                        with self._book() as book:
                            if self._fits(start, book.others if book is not None else 0):
                                reservation = Reservation(ticket, start, max(start, min(most, self.machine_budget)))
                                self.running[ticket] = reservation
                                if book is not None:
                                    book.set(self.reserved)
                                return reservation
                    if cancelled():
                        return None
                    if not told and on_wait is not None:
                        told = True
                        on_wait()
                    self._cond.wait(0.1)  # also how a release by another daemon is noticed
            finally:
                self._queue.remove(ticket)
                self._cond.notify_all()

    def _book(self) -> Any:
        return self.ledger.locked() if self.ledger is not None else nullcontext(None)

    def _fits(self, wanted: int, elsewhere: int = 0) -> bool:
        holds = self.holds.values()
        if any(h.pause for h in holds):
            return False
        limit = min((h.max_jobs for h in holds if h.max_jobs is not None), default=self.max_jobs)
        return len(self.running) < max(limit, 1) and elsewhere + self.reserved + wanted <= self.machine_budget

    def grow(self, reservation: Reservation, wanted: int) -> int:
        """Raise a running job's reservation toward `wanted` if the machine has room and nobody waits.

        Returns the new size (unchanged when there is no room).
        """
        with self._cond:
            if self._queue or reservation.ticket not in self.running:
                return reservation.bytes
            with self._book() as book:
                room = self.machine_budget - self.reserved - (book.others if book is not None else 0)
                target = min(wanted, reservation.most, reservation.bytes + room)
                if target > reservation.bytes:
                    reservation.bytes = target
                    if book is not None:
                        book.set(self.reserved)
            return reservation.bytes

    def release(self, reservation: Reservation) -> None:
        with self._cond:
            self.running.pop(reservation.ticket, None)
            if self.ledger is not None:
                with self.ledger.locked() as book:
                    book.set(self.reserved)
            self._cond.notify_all()

    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.running:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True
