"""Hot reload: watch the pack directory and hand each valid edit to the caller.

A save that breaks a file must not take the running configuration down with it: the watcher
reloads, and when the new pack has errors it calls `on_error(diagnostics)` instead of
`on_change(pack)`, so the caller keeps its last good Pack and tells the user what to fix.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable, Mapping

import watchfiles

from sidecar.config.diagnostics import Diagnostic
from sidecar.config.pack import Pack, load_pack

__all__ = ["ConfigWatcher"]

logger = logging.getLogger(__name__)


def _is_config_file(change: watchfiles.Change, path: str) -> bool:
    return path.endswith((".yaml", ".yml"))


class ConfigWatcher:
    """Reload the pack in a daemon thread whenever one of its YAML files changes."""

    def __init__(
        self,
        config_dir: Path,
        on_change: Callable[[Pack], None],
        on_error: Callable[[list[Diagnostic]], None],
        *,
        env: Mapping[str, str] | None = None,
        debounce_ms: int = 300,
        force_polling: bool | None = None,
    ) -> None:
        self.config_dir = Path(config_dir)
        self.on_change = on_change
        self.on_error = on_error
        self.env = env
        self.debounce_ms = debounce_ms
        self.force_polling = force_polling
        self.callback_failures = 0
        self.reloads = 0
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Begin watching; returns once the watcher is set up (so an edit right after is seen)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="config-watcher", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=5)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            if self._thread.is_alive():
                logger.warning("config watcher thread did not stop within %.1fs", timeout)
            self._thread = None

    def __enter__(self) -> ConfigWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        watcher = watchfiles.watch(
            self.config_dir,
            watch_filter=_is_config_file,
            stop_event=self._stop,
            debounce=self.debounce_ms,
            step=50,
            rust_timeout=200,
            yield_on_timeout=True,  # the first (empty) yield proves the OS watch is in place
            force_polling=self.force_polling,
            raise_interrupt=False,
        )
        try:
            for changes in watcher:
                self._ready.set()
                if not changes:
                    continue
                logger.info("config files changed: %s", sorted(p for _, p in changes))
                self._reload()
        except Exception:  # the watcher dying silently would freeze config forever: report and stop
            logger.exception("config watcher stopped on an error")
            raise
        finally:
            self._ready.set()

    def _reload(self) -> None:
        pack = load_pack(self.config_dir, self.env)
        self.reloads += 1
        try:
            if pack.ok:
                self.on_change(pack)
            else:
                self.on_error(pack.errors)
        except Exception:  # a callback bug must not stop future reloads; it is logged and counted
            self.callback_failures += 1
            logger.exception("config reload callback failed (%d so far)", self.callback_failures)
