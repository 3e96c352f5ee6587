"""`initialize` and `shutdown`: the start and the end of a client's session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import msgspec

from sidecar import PROTOCOL_VERSION, SERVER_NAME, __version__
from sidecar.config import Diagnostic, FlagState, Settings
from sidecar.errors import InputError
from sidecar.methods import registry
from sidecar.methods.daemon import DaemonInfo
from sidecar.protocol.dispatcher import Call
from sidecar.protocol.framing import MAX_LINE_BYTES
from sidecar.resources import Resources

__all__ = ["InitializeParams", "InitializeResult", "ServerInfo"]


class ClientInfo(msgspec.Struct, frozen=True):
    name: str
    version: str | None = None


class InitializeParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    client: ClientInfo | None = None
    config_dir: str | None = None
    """The expansion pack's directory (default: BMAD_DATA_CONFIG_DIR, else the repo's expansion-pack/)."""
    profile: str | None = None
    """A named profile from the memory templates file; default `auto` (sized from the machine)."""
    overrides: dict[str, Any] | None = None
    """Settings for this client, above the profile and below environment variables."""
    env: dict[str, str] | None = None
    """The client's BMAD_DATA_* environment variables, in place of the sidecar's own (a daemon
    started by one command serves later ones, each with its environment)."""


class ServerInfo(msgspec.Struct, frozen=True):
    name: str
    version: str


class InitializeResult(msgspec.Struct, frozen=True, omit_defaults=True):
    server: ServerInfo
    protocol_version: str
    duckdb_version: str
    resources: Resources
    settings: Settings
    flags: dict[str, FlagState]
    methods: list[str]
    diagnostics: list[Diagnostic]
    max_request_bytes: int
    """The longest request line the sidecar reads; a client refuses a longer request before sending it."""
    daemon: DaemonInfo | None = None
    """Present when a shared daemon answers: its pid, start and clients."""


@registry.method("initialize", params=InitializeParams, result=InitializeResult, inline=True)
def initialize(call: Call, p: InitializeParams) -> InitializeResult:
    """Choose the config dir, profile and overrides; learn the server, the machine and the settings.

    Served inline, so requests sent after it are dispatched only once it has applied.
    """
    session = call.session
    config_dir = None
    if p.config_dir is not None:
        config_dir = Path(p.config_dir).expanduser()
        if not config_dir.is_dir():
            raise InputError(
                f"config_dir {p.config_dir!r} is not a directory",
                hint="Point config_dir at the expansion pack folder (the one holding data/ and config/).",
            )
    session.client = msgspec.to_builtins(p.client) if p.client else None
    session.configure(config_dir=config_dir, profile=p.profile, overrides=p.overrides, env=p.env)
    return InitializeResult(
        server=ServerInfo(SERVER_NAME, __version__),
        protocol_version=PROTOCOL_VERSION,
        duckdb_version=duckdb.__version__,
        resources=session.refresh_resources(),
        settings=session.settings,
        flags=dict(session.pack.flags.states),
        methods=sorted([*registry.methods, "$/cancelRequest", "exit"]),
        diagnostics=list(session.pack.diagnostics),
        max_request_bytes=MAX_LINE_BYTES,
        daemon=session.daemon.info() if session.daemon is not None else None,
    )


@registry.method("shutdown", params=None, result=None)
def shutdown(call: Call, _: None) -> None:
    """Stop taking work, let running requests finish (up to the grace period), then answer null."""
    call.session.shutdown_requested = True
    server = call.session.server
    server.dispatcher.stop_accepting()
    if not server.dispatcher.wait_idle(server.shutdown_grace_s, exclude=call):
        server.dispatcher.cancel_all("shutdown")
        server.dispatcher.wait_idle(5.0, exclude=call)
    return None
