"""Config for many sessions: parsed packs kept while their files are unchanged, one watcher per dir.

A CLI command opens a connection, initializes and leaves within a second; parsing the pack's
YAML (a quarter second) and starting a file watcher for each would be most of a warm command's
time. The daemon keeps each parsed pack, keyed by its directory and the environment it was read
with, and reuses it while the stat signature of the pack (its files and folders) is unchanged.
It runs one `ConfigWatcher` per config directory; an edit reloads the pack for each session
watching that directory, with that session's own environment, and no other.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Callable, Mapping

from sidecar.config import PACK_FILES, ConfigWatcher, Diagnostic, Pack, load_pack

__all__ = ["SharedConfigs", "Subscription"]

log = logging.getLogger(__name__)

Signature = tuple[tuple[str, int, int], ...]


def signature(config_dir: Path) -> Signature:
    """(path, mtime_ns, size) of the pack's folders and files: any edit, addition or removal changes it."""
    names = [config_dir, config_dir / "config", config_dir / "data", config_dir / "config.yaml"]
    names += [config_dir / rel for rel in PACK_FILES.values()] + [config_dir / Path(rel).name for rel in PACK_FILES.values()]
    found = []
    for name in names:
        try:
            info = os.stat(name)
        except OSError:
            found.append((str(name), -1, -1))
            continue
        found.append((str(name), info.st_mtime_ns, info.st_size))
    return tuple(found)


class Subscription:
    """One session's interest in a config directory (what `Session` calls its watcher)."""

    def __init__(
        self,
        hub: SharedConfigs,
        config_dir: Path,
        on_change: Callable[[Pack], None],
        on_error: Callable[[list[Diagnostic]], None],
        env: Mapping[str, str],
    ) -> None:
        self.hub = hub
        self.config_dir = config_dir
        self.on_change = on_change
        self.on_error = on_error
        self.env = dict(env)

    def start(self) -> None:
        self.hub.subscribe(self)

    def stop(self) -> None:
        self.hub.unsubscribe(self)


class SharedConfigs:
    def __init__(self, *, watch: bool = True) -> None:
        self.watch = watch
        self._packs: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[Signature, Pack]] = {}
        self._watchers: dict[str, ConfigWatcher] = {}
        self._subscribers: dict[str, list[Subscription]] = {}
        self._lock = threading.Lock()

    def load(self, config_dir: Path, env: Mapping[str, str] | None = None) -> Pack:
        """`load_pack`, answered from the cache while the pack's files are unchanged."""
        env = dict(os.environ if env is None else env)
        key = (str(config_dir), tuple(sorted(env.items())))
        before = signature(Path(config_dir))
        with self._lock:
            cached = self._packs.get(key)
        if cached is not None and cached[0] == before:
            return cached[1]
        pack = load_pack(Path(config_dir), env)
        if signature(Path(config_dir)) == before:  # not edited while it was read
            with self._lock:
                self._packs[key] = (before, pack)
        return pack

    def watcher(
        self,
        config_dir: Path,
        *,
        on_change: Callable[[Pack], None],
        on_error: Callable[[list[Diagnostic]], None],
        env: Mapping[str, str] | None = None,
    ) -> Subscription:
        """What a daemon's session uses in place of a `ConfigWatcher` of its own."""
        return Subscription(self, Path(config_dir), on_change, on_error, dict(os.environ if env is None else env))

    def subscribe(self, sub: Subscription) -> None:
        key = str(sub.config_dir)
        start: ConfigWatcher | None = None
        with self._lock:
            self._subscribers.setdefault(key, []).append(sub)
            if self.watch and key not in self._watchers:
                start = ConfigWatcher(sub.config_dir, on_change=lambda _: self._changed(key), on_error=lambda _: self._changed(key))
                self._watchers[key] = start
        if start is not None:
            start.start()

    def unsubscribe(self, sub: Subscription) -> None:
        key = str(sub.config_dir)
        with self._lock:
            subs = self._subscribers.get(key, [])
            if sub in subs:
                subs.remove(sub)
            # the watcher stays while the daemon runs: the next command on this dir needs it at once

    def _changed(self, key: str) -> None:
        with self._lock:
            subs = list(self._subscribers.get(key, []))
        for sub in subs:
            pack = self.load(sub.config_dir, sub.env)
            try:
                if pack.ok:
                    sub.on_change(pack)
                else:
                    sub.on_error(pack.errors)
            except Exception:  # one session's callback failing must not keep the others unreloaded
                log.exception("config reload of a session watching %s failed", key)

    def close(self) -> None:
        with self._lock:
            watchers = list(self._watchers.values())
            self._watchers.clear()
        for watcher in watchers:
            watcher.stop()
