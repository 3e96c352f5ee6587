"""The methods the sidecar serves, one module per family, all in one registry."""

from __future__ import annotations

from sidecar.protocol.dispatcher import Registry

__all__ = ["registry", "load_all"]

registry = Registry()


def load_all() -> Registry:
    """Import every method module so each registers itself; returns the registry."""
    from sidecar.methods import config, convert, dataset, jobs, lifecycle, maintenance, partition, query, system  # noqa: F401
    from sidecar.methods import bench  # noqa: F401

    return registry
