"""Admission control: running jobs share the machine budget; a job that would oversubscribe waits.

Each running job holds a reservation (its memory ceiling). A job asks for `start` bytes and
may later grow up to `most` while the machine has room and nobody waits; the sum of
reservations never exceeds the machine budget, and at most `max_jobs` run at once.
Waiting is fair: first come, first admitted.

A daemon sets `ledger` (sidecar/daemon/ledger.py): then the reservations of the user's other
daemons count against the same machine budget, read and written under the ledger's file lock.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from contextlib import nullcontext
from typing import Any, Callable

__all__ = ["Admission", "Reservation"]


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
        self.ledger: Any = None
        """Shared with the user's other daemons: `locked()` yields a book with `others` and `set()`."""

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
        """Block until `start` bytes fit (or `cancelled()`); None when cancelled while waiting."""
        start = min(start, self.machine_budget)
        ticket = next(self._tickets)
        with self._cond:
            self._queue.append(ticket)
            told = False
            try:
                while True:
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
        return len(self.running) < self.max_jobs and elsewhere + self.reserved + wanted <= self.machine_budget

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
