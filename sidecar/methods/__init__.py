"""The methods the sidecar serves, one module per family, all in one registry."""

from __future__ import annotations

from sidecar.protocol.dispatcher import Registry

__all__ = ["registry", "load_all"]

registry = Registry()


def load_all() -> Registry:
    """Import every method module so each registers itself; returns the registry."""
    from sidecar.methods import (  # noqa: F401
        bench,
        config,
        convert,
        daemon,
        dataset,
        dataset_partition,
        jobs,
        lifecycle,
        maintenance,
        monitor,
        query,
        system,
    )

    return registry
