"""One request in flight (`Call`) and the table of methods a sidecar serves (`Registry`).

Methods receive a `Call`: its id, whether it was cancelled (and why), and its `$/progress`
channel. The dispatcher (`sidecar/protocol/dispatcher.py`) builds one per request.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

from sidecar.engine.monitor import Cancellation
from sidecar.errors import Cancelled, SidecarError, Timeout
from sidecar.protocol.framing import MessageWriter
from sidecar.protocol.messages import ProgressParams, ProgressValue

__all__ = ["Call", "MethodSpec", "Registry"]


class Call(Cancellation):
    """One request in flight: its id, its cancellation, its progress channel."""

    def __init__(
        self, id: Any, method: str, progress_token: str | int | None, writer: MessageWriter, session: Any
    ):
        super().__init__()
        self.finished = threading.Event()
        """Set once the request has been answered (or dropped)."""
        self.id = id
        self.method = method
        self.progress_token = progress_token
        self.session = session
        self.started = time.monotonic()
        self.future: Future[None] | None = None
        """The pool's handle on a request run off the reader thread; None for inline ones."""
        self._writer = writer

    def cancelled_error(self) -> SidecarError:
        elapsed = int((time.monotonic() - self.started) * 1000)
        if self.cancel_reason == "timeout":
            return Timeout(f"request {self.id!r} ran past its timeout and was stopped after {elapsed} ms")
        if self.cancel_reason == "shutdown":
            return Cancelled(
                "the sidecar is shutting down; the request was stopped",
                hint="Resend it to a running sidecar.",
            )
        return Cancelled(f"request {self.id!r} was cancelled after {elapsed} ms")

    def raise_if_cancelled(self) -> None:
        if self.cancel_event.is_set():
            raise self.cancelled_error()

    @property
    def wants_progress(self) -> bool:
        return self.progress_token is not None

    def progress(self, value: ProgressValue) -> None:
        if self.progress_token is not None:
            notification = {
                "jsonrpc": "2.0",
                "method": "$/progress",
                "params": ProgressParams(self.progress_token, value),
            }
            self._writer.send(notification)


@dataclass(frozen=True)
class MethodSpec:
    name: str
    handler: Callable[[Call, Any], Any]
    params: type | None
    result: type | None
    summary: str
    inline: bool = False
    """Served on the reader thread: must be fast and never block on DuckDB."""
    claim: Callable[[Call, Any], None] | None = None
    """Run on the reader thread before the request is queued, in the order requests arrive: what a
    later request must already see (query.run's job_id, for a jobs.status sent right after it)."""


@dataclass
class Registry:
    methods: dict[str, MethodSpec] = field(default_factory=dict)

    def method(
        self,
        name: str,
        *,
        params: type | None,
        result: type | None,
        inline: bool = False,
        claim: Callable[[Call, Any], None] | None = None,
    ) -> Callable[[Callable[[Call, Any], Any]], Callable[[Call, Any], Any]]:
        def register(handler: Callable[[Call, Any], Any]) -> Callable[[Call, Any], Any]:
            summary = (handler.__doc__ or "").strip().splitlines()[0] if handler.__doc__ else ""
            self.methods[name] = MethodSpec(name, handler, params, result, summary, inline, claim)
            return handler

        return register
