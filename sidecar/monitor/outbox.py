"""A channel's outbox: a bounded queue and one sender thread, so a slow or dead endpoint never
holds up the monitor's sampling.

Each alert is encoded once and handed to `attempt`; a failure it calls transient is retried
`retries` times, waiting `backoff_s`, then twice as long each time; a permanent one is not.
With the queue full, an alert is dropped and counted (tests/test_monitor_webhook.py,
tests/test_monitor_channels.py).
"""

from __future__ import annotations

import logging
import queue
import threading
import time

import msgspec

__all__ = ["Outbox", "Permanent", "QUEUE_SIZE", "BACKOFF_S"]

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000
BACKOFF_S = 0.5
"""The first retry waits this long; each next one twice as long."""


class Permanent(Exception):
    """A failure no retry can help (the endpoint refused the alert)."""


class Outbox:
    """Subclasses say how one alert is delivered (`attempt`); this class queues, retries, counts."""

    name = "channel"

    def __init__(self, retries: int, *, backoff_s: float = BACKOFF_S) -> None:
        self.retries = retries
        self.backoff_s = backoff_s
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._queue: queue.Queue[msgspec.Struct | None] = queue.Queue(maxsize=QUEUE_SIZE)
        self._thread = threading.Thread(target=self._loop, name=f"monitor-{self.name}", daemon=True)
        self._thread.start()

    def attempt(self, record: msgspec.Struct) -> None:
        """Deliver one alert; raise Permanent, or any OSError for a failure worth a retry."""
        raise NotImplementedError

    def send(self, record: msgspec.Struct) -> None:
        """Queue one alert; never blocks."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            log.warning("%s queue full; alert dropped (%d so far)", self.name, self.dropped)

    def _loop(self) -> None:
        while True:
            record = self._queue.get()
            if record is None:
                return
            self._deliver(record)

    def _deliver(self, record: msgspec.Struct) -> None:
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                self.attempt(record)
                self.sent += 1
                return
            except Permanent as refused:
                log.warning("%s refused an alert: %s", self.name, refused)
                break
            except OSError as err:  # connection errors, timeouts, 5xx (urllib's HTTPError is an OSError)
                why = str(getattr(err, "reason", err))
            if attempt < self.retries:
                log.info("%s attempt %d failed (%s); retrying in %.1f s", self.name, attempt + 1, why, delay)
                time.sleep(delay)
                delay *= 2
        self.failed += 1
        log.warning("%s: an alert could not be delivered (%d failed so far)", self.name, self.failed)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (for up to `timeout` seconds), then stop."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout=timeout)
