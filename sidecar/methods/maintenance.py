"""`cleanup`: remove what failed or killed work left behind."""

from __future__ import annotations

import msgspec

from sidecar.methods import registry
from sidecar.protocol.dispatcher import Call


class CleanupParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    aggressive: bool = False
    """Also drop idle pooled connections and their caches."""


class CleanupResult(msgspec.Struct, frozen=True):
    bytes_freed: int
    files_removed: int
    spill_directory: str


@registry.method("cleanup", params=CleanupParams, result=CleanupResult)
def cleanup(call: Call, p: CleanupParams) -> CleanupResult:
    """Remove orphaned spill directories and temporary output files; report what was freed."""
    session = call.session
    freed, removed = session.engine.cleanup(aggressive=p.aggressive)
    return CleanupResult(freed, removed, session.settings.temp_directory)
