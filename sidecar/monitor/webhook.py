"""The `webhook` channel: each alert POSTed as JSON, off the sampler's thread.

The URL may name environment variables (`${DUCKDB_WEBHOOK_URL}`), expanded when the channel
starts. A sender thread takes alerts from a bounded queue and POSTs each with a timeout,
retrying a failure (a connection error or a 5xx/429 answer) with exponential backoff; when the
queue is full, the alert is dropped and counted, so a dead endpoint never holds up sampling.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
import urllib.error
import urllib.request
from typing import Mapping

import msgspec

__all__ = ["WebhookChannel", "WebhookSender", "expand_env", "QUEUE_SIZE", "BACKOFF_S"]

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000
BACKOFF_S = 0.5
"""The first retry waits this long; each next one twice as long."""
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class WebhookChannel(msgspec.Struct, frozen=True, kw_only=True):
    enabled: bool = False
    url: str = ""
    timeout: int = 5000
    """Milliseconds per attempt."""
    retry_attempts: int = 3
    """Retries after the first attempt fails."""


def expand_env(url: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """The URL with `${NAME}` expanded, and the names that are not set (left as they are).

    >>> expand_env("http://${HOST}/hook/${ID}", {"HOST": "127.0.0.1:9"})
    ('http://127.0.0.1:9/hook/${ID}', ['ID'])
    """
    missing = [name for name in _ENV.findall(url) if name not in env]
    return _ENV.sub(lambda m: env.get(m.group(1), m.group(0)), url), missing


class WebhookSender:
    def __init__(self, channel: WebhookChannel, url: str, *, backoff_s: float = BACKOFF_S) -> None:
        self.channel = channel
        self.url = url
        self.backoff_s = backoff_s
        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUE_SIZE)
        self._thread = threading.Thread(target=self._loop, name="monitor-webhook", daemon=True)
        self._thread.start()

    def send(self, record: msgspec.Struct) -> None:
        """Queue one alert; never blocks."""
        try:
            self._queue.put_nowait(msgspec.json.encode(record))
        except queue.Full:
            self.dropped += 1
            log.warning("webhook queue full; alert dropped (%d so far)", self.dropped)

    def _loop(self) -> None:
        while True:
            body = self._queue.get()
            if body is None:
                return
            self._post(body)

    def _post(self, body: bytes) -> None:
        delay = self.backoff_s
        for attempt in range(self.channel.retry_attempts + 1):
            request = urllib.request.Request(
                self.url, data=body, method="POST", headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=self.channel.timeout / 1000) as answer:
                    answer.read()
                self.sent += 1
                return
            except urllib.error.HTTPError as err:
                if err.code < 500 and err.code != 429:  # the endpoint refused it: a retry cannot help
                    log.warning("webhook %s refused an alert: HTTP %d", self.url, err.code)
                    break
                why = f"HTTP {err.code}"
            except (urllib.error.URLError, OSError) as err:
                why = str(getattr(err, "reason", err))
            if attempt < self.channel.retry_attempts:
                log.info("webhook attempt %d failed (%s); retrying in %.1f s", attempt + 1, why, delay)
                time.sleep(delay)
                delay *= 2
        self.failed += 1
        log.warning("webhook %s: an alert could not be delivered (%d failed so far)", self.url, self.failed)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued (for up to `timeout` seconds), then stop."""
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout=timeout)
