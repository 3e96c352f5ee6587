"""`system.resources`: what the machine (or container) really has, right now."""

from __future__ import annotations

from sidecar.methods import registry
from sidecar.protocol.dispatcher import Call
from sidecar.resources import Resources


@registry.method("system.resources", params=None, result=Resources, inline=True)
def resources(call: Call, _: None) -> Resources:
    """Memory (physical, available, cgroup limit), CPUs (usable, quota) and the spill disk's free space."""
    return call.session.refresh_resources()
