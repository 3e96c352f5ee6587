"""Turning the engine's samples into `$/progress` notifications for a call."""

from __future__ import annotations

from typing import Callable

from sidecar.engine.monitor import Sample
from sidecar.protocol.dispatcher import Call
from sidecar.protocol.messages import ProgressValue

__all__ = ["progress_listener"]


def progress_listener(call: Call) -> Callable[[Sample], None] | None:
    """A listener for the engine, or None when the client asked for no progress."""
    if not call.wants_progress:
        return None

    def listen(sample: Sample) -> None:
        call.progress(
            ProgressValue(
                phase=sample.phase,  # type: ignore[arg-type]
                percent=None if sample.percent is None else round(sample.percent, 1),
                elapsed_ms=sample.elapsed_ms,
                rss_bytes=sample.rss_bytes,
                buffer_bytes=sample.buffer_bytes,
                spill_bytes=sample.spill_bytes,
                part=sample.part,
                parts=sample.parts,
                nodes=sample.nodes,
            )
        )

    return listen
