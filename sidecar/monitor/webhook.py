"""The `webhook` channel: each alert POSTed as JSON, off the sampler's thread.

The URL may name environment variables (`${DUCKDB_WEBHOOK_URL}`), expanded when the channel
starts. A sender thread takes alerts from a bounded queue and POSTs each with a timeout,
retrying a failure (a connection error or a 5xx/429 answer) with exponential backoff; when the
queue is full, the alert is dropped and counted, so a dead endpoint never holds up sampling.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from typing import Mapping

import msgspec

from sidecar.monitor.outbox import BACKOFF_S, QUEUE_SIZE, Outbox, Permanent

__all__ = ["WebhookChannel", "WebhookSender", "expand_env", "QUEUE_SIZE", "BACKOFF_S"]
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


class WebhookSender(Outbox):
    name = "webhook"

    def __init__(self, channel: WebhookChannel, url: str, *, backoff_s: float = BACKOFF_S) -> None:
        self.channel = channel
        self.url = url
        super().__init__(channel.retry_attempts, backoff_s=backoff_s)

    def attempt(self, record: msgspec.Struct) -> None:
        request = urllib.request.Request(
            self.url, data=msgspec.json.encode(record), method="POST", headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.channel.timeout / 1000) as answer:
                answer.read()
        except urllib.error.HTTPError as err:
            if err.code < 500 and err.code != 429:  # the endpoint refused it: a retry cannot help
                raise Permanent(f"{self.url}: HTTP {err.code}") from err
            raise OSError(f"HTTP {err.code}") from err
