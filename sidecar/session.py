"""The sidecar's state for one client: its config, its settings, its engine.

A stdio sidecar has one session, which owns its engine. A daemon (`sidecar/daemon/`) gives each
connection a session of its own (config dir, profile, overrides, environment, config watcher)
over one shared engine, handed in as `engine`: such a session never retunes nor closes it.

Config is read once at start and again on `initialize`, `config.reload` or a file edit
(hot reload). A broken edit never replaces a good config: the last good one stays in
force and the client is told what is wrong. Every data method first asks the session for
its settings, which resolves the request's own `settings` on top of everything else.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable, Mapping

import msgspec

from sidecar.config.settings import SIDECAR_WIDE_KEYS
from sidecar.config import (
    ConfigWatcher,
    Diagnostic,
    Pack,
    Settings,
    default_config_dir,
    load_pack,
    require_feature,
    resolve_settings,
)
from sidecar.jobs.runner import JobRunner
from sidecar.errors import ConfigInvalid, InvalidParams
from sidecar.protocol.messages import ConfigChangedParams, ConfigErrorParams
from sidecar.resources import ResourceReader, Resources

__all__ = ["Session", "DATA_FEATURE"]

log = logging.getLogger(__name__)

DATA_FEATURE = "duckdb_analytics"
"""The flag every data method needs (with its dependencies)."""

Notify = Callable[[str, Any], None]


class Session:
    def __init__(
        self,
        notify: Notify,
        *,
        env: Mapping[str, str] | None = None,
        watch: bool = True,
        engine: Any = None,
        running_jobs: dict[str, Any] | None = None,
        daemon: Any = None,
        configs: Any = None,
    ) -> None:
        self.env = dict(os.environ if env is None else env)
        self.base_env = dict(self.env)
        """The process's own environment; a client's `initialize.env` replaces its BMAD_DATA_* part."""
        self.daemon = daemon
        """The daemon serving this connection (`daemon.*` methods, initialize's `daemon`); None on stdio."""
        self._load_pack: Callable[[Path, Mapping[str, str]], Pack] = load_pack if configs is None else configs.load
        self._new_watcher: Callable[..., Any] = ConfigWatcher if configs is None else configs.watcher
        """A daemon's `SharedConfigs` (sidecar/daemon/configs.py): parsed packs and one watcher per dir."""
        self.notify = notify
        self.client: dict[str, Any] | None = None
        self.profile: str | None = None
        self.overrides: dict[str, Any] = {}
        self.config_dir = default_config_dir(self.env).resolve()
        self._machine = ResourceReader()
        self.resources: Resources = self._machine.read()
        self.exit_requested = threading.Event()
        self.running_jobs: dict[str, Any] = {} if running_jobs is None else running_jobs
        """Requests in flight that named a job_id (jobs.cancel stops them); a daemon's sessions share one."""
        self.shutdown_requested = False
        self.monitor: Any = None
        """The MonitorService, started by the first monitor.* call (sidecar/methods/monitor.py)."""
        self._lock = threading.Lock()
        self._watch = watch
        self._watcher: Any = None
        # a daemon's sessions start from its engine's settings, so their auto spill sizes agree
        start = engine.settings if engine is not None else None
        self.pack, self.settings = self._load(self.config_dir, strict=False, previous=start)
        self.owns_engine = engine is None
        self.engine = JobRunner(self.settings, self.env) if engine is None else engine
        if self.owns_engine:
            apply_log_level(self.settings.log_level)
        self._start_watcher()

    # -- config --------------------------------------------------------------------------

    def _load(
        self, config_dir: Path, *, strict: bool, previous: Settings | None = None
    ) -> tuple[Pack, Settings]:
        """Load and resolve; with `strict`, a config with errors raises instead of being kept.
        `previous` keeps an auto spill size steady (`steady_spill_size`)."""
        pack = self._load_pack(config_dir, self.env)
        if strict and not pack.ok:
            raise _invalid(pack)
        if not pack.ok:
            log.error("config in %s has errors; data methods will answer CONFIG_INVALID", config_dir)
        settings = resolve_settings(
            pack,
            self.resources,
            profile=self.profile,
            overrides=self.overrides,
            env=self.env,
            previous=previous,
        )
        return pack, settings

    def configure(
        self,
        *,
        config_dir: Path | None,
        profile: str | None,
        overrides: Mapping[str, Any] | None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Apply `initialize`'s choices; nothing changes if they are invalid."""
        with self._lock:
            previous = (self.config_dir, self.profile, self.overrides, self.env)
            if env is not None:
                self.env = client_env(self.base_env, env)
                if config_dir is None:
                    config_dir = default_config_dir(self.env)
            self.config_dir = (config_dir or self.config_dir).resolve()
            self.profile = profile if profile is not None else self.profile
            self.overrides = dict(overrides) if overrides is not None else self.overrides
            try:
                self.pack, self.settings = self._load(self.config_dir, strict=False, previous=self.settings)
            except Exception:
                self.config_dir, self.profile, self.overrides, self.env = previous
                raise
        self._settle(self.settings)
        self._start_watcher()

    def reload(self) -> Pack:
        """Re-read the files; keep the last good config when the new one has errors."""
        with self._lock:
            pack, settings = self._load(self.config_dir, strict=True, previous=self.settings)
            self.pack, self.settings = pack, settings
        self._settle(settings)
        return pack

    def _settle(self, settings: Settings) -> None:
        """New settings reach what runs: the job runner, and the sidecar's log level. A daemon's
        session leaves both alone: they hold for every client, and each request carries its settings."""
        if not self.owns_engine:
            return
        self.engine.retune(settings)
        apply_log_level(settings.log_level)

    def _start_watcher(self) -> None:
        if not self._watch:
            return
        if self._watcher is not None:
            self._watcher.stop()
        self._watcher = self._new_watcher(
            self.config_dir, on_change=self._on_change, on_error=self._on_error, env=self.env
        )
        self._watcher.start()

    def _on_change(self, pack: Pack) -> None:
        try:
            with self._lock:
                settings = resolve_settings(
                    pack,
                    self.resources,
                    profile=self.profile,
                    overrides=self.overrides,
                    env=self.env,
                    previous=self.settings,
                )
                self.pack, self.settings = pack, settings
            self._settle(settings)
        except ConfigInvalid as err:
            diagnostics = msgspec.convert(err.details.get("diagnostics", []), list[Diagnostic])
            self.notify("config/error", ConfigErrorParams(str(self.config_dir), diagnostics))
            return
        warnings = [d for d in pack.diagnostics if d.severity == "warning"]
        self.notify(
            "config/changed",
            ConfigChangedParams(
                str(self.config_dir), settings.profile, sorted(pack.paths.values()), warnings
            ),
        )

    def _on_error(self, diagnostics: list[Diagnostic]) -> None:
        self.notify("config/error", ConfigErrorParams(str(self.config_dir), list(diagnostics)))

    # -- what methods ask ----------------------------------------------------------------

    def require(self, feature: str = DATA_FEATURE) -> None:
        """Data methods need a usable config and their feature flag (with its dependencies) on."""
        pack = self.pack
        if not pack.ok:
            raise _invalid(pack)
        require_feature(pack.flags, feature)

    def settings_for(self, request: Mapping[str, Any] | None) -> Settings:
        """The settings for one request: its own `settings` on top of everything else."""
        if not request:
            return self.settings
        wide = [key for key in SIDECAR_WIDE_KEYS if key in request]
        if wide:
            raise InvalidParams(
                f"`{wide[0]}` holds for the whole sidecar and cannot change per request",
                hint=f"Set it in initialize's overrides or BMAD_DATA_{wide[0].upper()}.",
            )
        return resolve_settings(
            self.pack,
            self.resources,
            profile=self.profile,
            overrides=self.overrides,
            env=self.env,
            request=request,
            previous=self.settings,
        )

    def refresh_resources(self) -> Resources:
        self.resources = self._machine.read(Path(self.settings.temp_directory))
        return self.resources

    # -- lifecycle -----------------------------------------------------------------------

    def request_exit(self) -> None:
        self.exit_requested.set()

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
        if self.monitor is not None:
            self.monitor.close()
        if self.owns_engine:
            self.engine.close()


def client_env(base: Mapping[str, str], client: Mapping[str, str]) -> dict[str, str]:
    """The environment a client's requests resolve with: the process's, with its BMAD_DATA_*
    variables replaced by the client's (a daemon started by one command serves the next ones).

    >>> client_env({"HOME": "/h", "BMAD_DATA_PROFILE": "a"}, {"BMAD_DATA_MAX_ROWS": "5"})
    {'HOME': '/h', 'BMAD_DATA_MAX_ROWS': '5'}
    >>> client_env({}, {"PATH": "/bin"})
    Traceback (most recent call last):
    sidecar.errors.InvalidParams: initialize's `env` holds BMAD_DATA_* variables only, not 'PATH'
    """
    foreign = [key for key in client if not key.startswith("BMAD_DATA_")]
    if foreign:
        raise InvalidParams(
            f"initialize's `env` holds BMAD_DATA_* variables only, not {foreign[0]!r}",
            hint="Send only BMAD_DATA_* environment variables; every other variable stays the sidecar's own.",
        )
    return {**{k: v for k, v in base.items() if not k.startswith("BMAD_DATA_")}, **client}


def apply_log_level(level: str) -> None:
    """The resolved `log_level` (env, then the profile's `monitoring.log_level`) as the level of
    every `sidecar.*` logger; `--log-level` on the command line ranks as the environment variable.

    >>> apply_log_level("warning")
    >>> logging.getLogger("sidecar.x").getEffectiveLevel() == logging.WARNING
    True
    >>> apply_log_level("notset")  # back to the root logger's level
    """
    logging.getLogger("sidecar").setLevel(level.upper())


def _invalid(pack: Pack) -> ConfigInvalid:
    errors = pack.errors
    first = errors[0] if errors else None
    where = f" First: {first}" if first is not None else ""
    return ConfigInvalid(
        f"the config in {pack.config_dir} has {len(errors)} error(s).{where}",
        details={"config_dir": pack.config_dir, "diagnostics": [msgspec.to_builtins(d) for d in errors]},
    )
