"""The `log` channel: alerts as JSON lines, rotated by size and by day.

Each line goes out in one `write` on a file opened with O_APPEND, so a process killed at any
moment leaves whole lines only (the kernel finishes a write to a regular file once started);
tests/test_monitor_live.py kills a sidecar with SIGKILL and parses every line.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from pathlib import Path

import msgspec

from sidecar.monitor.config import LogChannel

__all__ = ["AlertLog"]

log = logging.getLogger(__name__)


class AlertLog:
    def __init__(self, channel: LogChannel) -> None:
        self.channel = channel
        self.path = Path(channel.log_file)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._day: dt.date | None = None

    def write(self, record: msgspec.Struct) -> None:
        """Append one record as one line; a failure is logged and counted, never raised to the sampler."""
        line = msgspec.json.encode(record) + b"\n"
        with self._lock:
            try:
                self._rotate_if_due(len(line))
                if self._fd is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                    self._day = dt.date.today()
                os.write(self._fd, line)
            except OSError:
                log.warning("cannot write the alert log %s", self.path, exc_info=True)

    send = write  # the name every channel shares (sidecar.monitor.service.Sink)

    def _rotate_if_due(self, incoming: int) -> None:
        if not self.path.exists():
            return
        today = dt.date.today()
        rotation = self.channel.rotation
        day = self._day or dt.date.fromtimestamp(self.path.stat().st_mtime)
        if rotation == "daily" and day != today:
            target = self.path.with_name(f"{self.path.name}.{day.isoformat()}")
        elif rotation != "none" and self.path.stat().st_size + incoming > self.channel.max_size:
            target = self.path.with_name(f"{self.path.name}.{dt.datetime.now():%Y-%m-%dT%H%M%S%f}")
        else:
            return
        self.close()
        os.replace(self.path, target)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
