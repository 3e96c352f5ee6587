"""msgspec types for what crosses the wire besides method params and results.

Method params and results live beside their methods (sidecar/methods/); the envelope,
the error object and the notifications the sidecar sends live here. `schemas/` is
generated from all of them.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from sidecar.config.diagnostics import Diagnostic
from sidecar.monitor.events import AlertEvent as MonitorAlertParams
from sidecar.monitor.events import MetricsNotice as MonitorMetricsParams

__all__ = [
    "ErrorData",
    "ErrorObject",
    "ProgressValue",
    "ProgressParams",
    "CancelParams",
    "ConfigChangedParams",
    "ConfigErrorParams",
    "LogParams",
    "MonitorAlertParams",
    "MonitorMetricsParams",
    "Phase",
]

Phase = Literal[
    "queued", "starting", "running", "fetching", "writing", "analyzing", "retrying", "partition", "done"
]


class ErrorData(msgspec.Struct, frozen=True):
    """`error.data` of every error answer: what went wrong and what to do next."""

    code: str
    message: str
    hint: str
    severity: Literal["info", "warning", "error", "critical"]
    retryable: bool
    details: dict[str, Any] = {}


class ErrorObject(msgspec.Struct, frozen=True):
    code: int
    message: str
    data: ErrorData


class ProgressValue(msgspec.Struct, frozen=True, omit_defaults=True):
    """One progress sample of a running request.

    `percent` is null when DuckDB cannot tell (it reports per-pipeline progress, which can be
    badly wrong for fan-out joins and blocking operators): null means unknown, never zero.
    """

    phase: Phase
    percent: float | None
    elapsed_ms: int
    rss_bytes: int
    buffer_bytes: int
    spill_bytes: int
    part: int | None = None
    """In a query run in parts: the part (or exact quantile pass) running now, counted from 1 (`phase` is `partition` as it
    starts, then that of the part's own job); absent otherwise."""
    parts: int | None = None
    """How many parts, with `part`."""
    nodes: dict[str, dict[str, int]] | None = None
    """A query whose parts run on Ray: per Ray node id, its parts `done`, `running` and `failed`."""


class ProgressParams(msgspec.Struct, frozen=True):
    """`$/progress`: sent a few times a second for a request that carried `progress_token`."""

    token: str | int
    value: ProgressValue


class CancelParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`$/cancelRequest` from the client: interrupt the request with this id."""

    id: str | int


class ConfigChangedParams(msgspec.Struct, frozen=True):
    """`config/changed`: a valid edit of the config files now applies to new work."""

    config_dir: str
    profile: str
    changed_files: list[str]
    warnings: list[Diagnostic] = []


class ConfigErrorParams(msgspec.Struct, frozen=True):
    """`config/error`: an edit broke the config; the last good one stays in force."""

    config_dir: str
    diagnostics: list[Diagnostic]


class LogParams(msgspec.Struct, frozen=True):
    level: Literal["debug", "info", "warning", "error"]
    message: str
