"""`daemon.status` and `daemon.stop`: what a shared daemon serves, and ending it.

Served only by a daemon (`python -m sidecar daemon`, `sidecar/daemon/`); a stdio sidecar answers
INVALID_REQUEST with a hint. The daemon itself is reached through `call.session.daemon`, an
object with `info()`, `status()` and `request_stop(when_idle)`, so this module imports nothing of it.
"""

from __future__ import annotations

from typing import Any

import msgspec

from sidecar.errors import InvalidRequest
from sidecar.methods import registry
from sidecar.protocol.dispatcher import Call

__all__ = ["DaemonInfo", "DaemonClient", "DaemonBudget", "DaemonStatus", "StopParams", "StopResult"]


class DaemonInfo(msgspec.Struct, frozen=True):
    """Who answers: initialize's `daemon` member (absent on a stdio sidecar)."""

    pid: int
    started_ms: int
    """When the daemon started (milliseconds since the epoch)."""
    clients: int
    """Connections open now, this one included."""
    socket: str


class DaemonClient(msgspec.Struct, frozen=True):
    number: int
    name: str | None
    connected_ms: int
    """How long it has been connected (milliseconds)."""
    running: int
    """Its requests in flight."""
    config_dir: str


class DaemonBudget(msgspec.Struct, frozen=True):
    machine_budget_bytes: int
    reserved_bytes: int
    """Held by running jobs of every client."""
    running_jobs: int
    waiting_jobs: int
    elsewhere_bytes: int
    """Held by the user's other daemons (other working directories), read from the machine ledger."""


class DaemonStatus(msgspec.Struct, frozen=True):
    pid: int
    version: str
    socket: str
    started_ms: int
    uptime_ms: int
    idle_timeout_s: float
    clients: list[DaemonClient]
    jobs: list[str]
    """Named jobs running now (any client's)."""
    budget: DaemonBudget


class StopParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    when_idle: bool = False
    """Stop once no other client is connected and no job runs (an upgrade replacing an old daemon),
    instead of now (running requests of every client are then cancelled)."""


class StopResult(msgspec.Struct, frozen=True):
    pid: int
    stopping: bool
    """True: the daemon stops now; False: it stops when idle."""


def _daemon(call: Call) -> Any:
    daemon = call.session.daemon
    if daemon is None:
        raise InvalidRequest(
            f"{call.method} is served by a daemon only; this sidecar runs for one client on stdio",
            hint="Start one with `bmad-data daemon start` (or `python -m sidecar daemon`).",
        )
    return daemon


@registry.method("daemon.status", params=None, result=DaemonStatus, inline=True)
def status(call: Call, _: None) -> DaemonStatus:
    """The daemon's pid, version, socket, clients, running jobs, uptime and machine budget."""
    result: DaemonStatus = _daemon(call).status()
    return result


@registry.method("daemon.stop", params=StopParams, result=StopResult, inline=True)
def stop(call: Call, p: StopParams) -> StopResult:
    """Stop the daemon now (cancelling every client's requests), or once it is idle."""
    result: StopResult = _daemon(call).request_stop(when_idle=p.when_idle)
    return result
