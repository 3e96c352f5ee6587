"""The machine ledger: what every daemon of this user holds of the machine budget, in one file.

There is one daemon per working directory, so an agent working in two projects runs two. Each
computes the machine budget (80% of what the machine has) and admits its own jobs within it; the
ledger makes the budget one for all of them. Under an exclusive `flock`, a daemon reads what the
others hold, admits a job only if its own reservations, the others' and the new one fit, and
writes its new total back. Lines of daemons that are gone (killed, so they never cleaned up) are
dropped when read. The file is `ledger` in the runtime directory when BMAD_DATA_RUNTIME_DIR is
set (tests), else in the user's state directory ($XDG_STATE_HOME/bmad-data, ~/.local/state/bmad-data).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Mapping

from sidecar.daemon.paths import RUNTIME_ENV
from sidecar.engine.outputs import pid_alive

__all__ = ["Book", "MachineLedger", "ledger_path", "parse_ledger"]


def ledger_path(env: Mapping[str, str]) -> Path:
    """Where this user's daemons keep the ledger.

    >>> ledger_path({"BMAD_DATA_RUNTIME_DIR": "/tmp/bd"}).as_posix()
    '/tmp/bd/ledger'
    >>> ledger_path({"XDG_STATE_HOME": "/home/ada/.state"}).as_posix()
    '/home/ada/.state/bmad-data/ledger'
    """
    if env.get(RUNTIME_ENV):
        return Path(env[RUNTIME_ENV]).expanduser().absolute() / "ledger"
    base = Path(env["XDG_STATE_HOME"]) if env.get("XDG_STATE_HOME") else Path.home() / ".local" / "state"
    return base / "bmad-data" / "ledger"


def parse_ledger(text: str) -> dict[int, int]:
    """`pid bytes` per line; a line that is not two integers is ignored (a torn write cannot happen
    under the lock, but a hand-edited file can).

    >>> parse_ledger("101 4096\\nnonsense\\n102 0\\n")
    {101: 4096, 102: 0}
    """
    entries: dict[int, int] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
            entries[int(fields[0])] = int(fields[1])
    return entries


class Book:
    """The ledger as read under the lock: the others' total, and this daemon's line to set."""

    def __init__(self, entries: dict[int, int], pid: int) -> None:
        self.entries = entries
        self.pid = pid
        self.dirty = False

    @property
    def others(self) -> int:
        return sum(held for pid, held in self.entries.items() if pid != self.pid)

    def set(self, held: int) -> None:
        if self.entries.get(self.pid, 0) != held:
            self.entries[self.pid] = held
            self.dirty = True


class MachineLedger:
    """What `Admission` consults (its `ledger`) so that several daemons share one machine budget."""

    def __init__(self, path: Path, pid: int | None = None) -> None:
        self.path = path
        self.pid = os.getpid() if pid is None else pid
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)

    @contextmanager
    def locked(self) -> Iterator[Book]:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            read = parse_ledger(os.pread(fd, size, 0).decode(errors="replace")) if size else {}
            live = {pid: held for pid, held in read.items() if held and (pid == self.pid or pid_alive(pid))}
            book = Book(dict(live), self.pid)
            yield book
            if book.dirty or live != read:
                text = "".join(f"{pid} {held}\n" for pid, held in sorted(book.entries.items()) if held)
                os.ftruncate(fd, 0)
                os.pwrite(fd, text.encode(), 0)
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    def others(self) -> int:
        with self.locked() as book:
            return book.others

    def leave(self) -> None:
        """This daemon holds nothing any more (it stops)."""
        with self.locked() as book:
            book.set(0)
